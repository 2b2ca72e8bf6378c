"""The rule auditor: finds rules that hunt for documents instead of malware, before a database is released.

Checks, each a ``check`` name on a :class:`Finding`:

* ``sensitive-marking``: a pattern that decodes to a classification marking or a sensitive word, in any form
  the rule could match or hide it: text strings whatever their modifiers (ascii, wide, nocase, xor, base64
  match the plain value), base64 or hex written inside a text string, hex strings read as Latin-1, UTF-8,
  UTF-16LE/BE, CP1251 and KOI8-R, also after every single-byte XOR key, and literal runs of regexes;
* ``document-only``: the rule targets a document format (PDF, OLE2, OOXML, RTF) with natural-language strings
  and no code or exploit indicator;
* ``targeting``: the condition uses externals (filename, filepath, extension, owner, hostname, username,
  customer...), i.e. targets specific hosts, users, paths or customers;
* ``collection``: names or metadata implying silent collection or upload (an ``action``/``upload``/``collect``
  meta key, such a value in an action-like key, or a ``Collect_``/``Upload_``/``Exfil_``... rule name);
* ``include``, ``unknown-module``, ``compile``, ``missing-metadata``: source problems, which no waiver lifts (the
  database cannot be built from such a rule: fix it);
* ``performance:<code>``: yara-x compiler warnings;
* ``canary-hit``: a new or changed rule matches a file of the canary corpus (:mod:`overt.avdb.canary`).

A finding's ``id`` is stable for the same rule text, check and evidence, so a waiver can name it. Pure apart
from compiling rules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yara_x

from overt.avdb.canary import Canary, corpus
from overt.avdb.findings import Finding, make_finding
from overt.avdb.rules import EXTERNALS, HashSignature, RuleSet, YaraRule, new_compiler
from overt.avdb.yarasource import PatternSource, condition_tokens

DEFAULT_MARKINGS = (
    "TOP SECRET",
    "TS/SCI",
    "NOFORN",
    "SECRET//",
    "FOUO",
    "CONFIDENTIAL",
    "СОВЕРШЕННО СЕКРЕТНО",
    "СЕКРЕТНО",
    "ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ",
    "STRENG GEHEIM",
    "GEHEIM",
    "VS-VERTRAULICH",
    "VS-NUR FÜR DEN DIENSTGEBRAUCH",
    "VERSCHLUSSSACHE",
)
DOCUMENT_MAGIC = (
    "%PDF",
    "\\xD0\\xCF\\x11\\xE0",
    "{\\rtf",
    "[Content_Types].xml",
    "word/document.xml",
    "PK\\x03\\x04",
)
DOCUMENT_HEX = ("25 50 44 46", "D0 CF 11 E0", "7B 5C 72 74 66", "50 4B 03 04")
DOCUMENT_INTS = ("0x46445025", "0xe011cfd0", "0x74725c7b", "0x04034b50")
CODE_INDICATORS = (
    "/javascript",
    "/js",
    "/openaction",
    "/launch",
    "/embeddedfile",
    "/aa",
    "eval(",
    "unescape",
    "shellcode",
    "cmd.exe",
    "powershell",
    "wscript",
    "createobject",
    "autoopen",
    "document_open",
    "vba",
    "vbaproject",
    "macro",
    "objdata",
    "objupdate",
    "equation",
    "urlmon",
    "urldownloadtofile",
    "activex",
    "ddeauto",
    "objocx",
    "http://",
    "https://",
    "kernel32",
    "virtualalloc",
    "exploit",
    "cve-",
)
COLLECTION_KEYS = (
    "action",
    "collect",
    "upload",
    "exfil",
    "exfiltrate",
    "submit",
    "sample_upload",
    "silent",
    "capture",
)
COLLECTION_WORDS = ("collect", "upload", "exfil", "submit", "send", "harvest", "grab")
COLLECTION_NAME = re.compile(r"(?i)^(collect|upload|exfil|harvest|grab|hunt|find|steal)[_-]")
_NORMALISE = re.compile(r"[\s_.\-]+")


SOURCE_PROBLEMS = frozenset({"include", "unknown-module", "compile", "missing-metadata"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleAuditReport:
    findings: tuple[Finding, ...]
    rules_audited: int
    new_or_changed: int
    canaries: int

    def to_predicate(self) -> dict[str, Any]:
        return {
            "rulesAudited": self.rules_audited,
            "newOrChanged": self.new_or_changed,
            "canaries": self.canaries,
            "findings": [f.to_dict() for f in self.findings],
        }


def _finding(
    rule_id: str, rule: str, file: str, check: str, message: str, evidence: str, digest: str
) -> Finding:
    return make_finding(
        rule_id=rule_id, rule=rule, file=file, digest=digest, check=check, message=message, evidence=evidence
    )


def normalise(text: str) -> str:
    return _NORMALISE.sub(" ", text.upper())


def unescape_text(value: str) -> bytes:
    """A YARA text string's bytes (escapes \\\\ \\" \\n \\t \\r \\xNN)."""
    out = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            n = value[i + 1]
            if n == "x" and i + 3 < len(value) + 1 and re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 2 : i + 4]):
                out.append(int(value[i + 2 : i + 4], 16))
                i += 4
                continue
            out.extend({"n": b"\n", "t": b"\t", "r": b"\r"}.get(n, n.encode()))
            i += 2
            continue
        out.extend(c.encode())
        i += 1
    return bytes(out)


def hex_runs(value: str) -> list[bytes]:
    """Concrete byte runs of a hex string (wildcards, jumps and alternatives split runs)."""
    body = value.strip().strip("{}")
    runs: list[bytes] = []
    current = bytearray()
    for token in re.findall(r"\[[^\]]*\]|\([^)]*\)|[0-9A-Fa-f?~]{2}|\S", body):
        if re.fullmatch(r"[0-9A-Fa-f]{2}", token):
            current.append(int(token, 16))
        else:
            if current:
                runs.append(bytes(current))
            current = bytearray()
            if token.startswith("("):  # alternatives: each concrete alternative is its own run
                runs.extend(b for alt in token.strip("()").split("|") for b in hex_runs(alt))
    if current:
        runs.append(bytes(current))
    return runs


def _texts_from_bytes(data: bytes) -> Iterable[str]:
    for codec in ("latin-1", "utf-8", "utf-16-le", "utf-16-be", "cp1251", "koi8-r"):
        try:
            yield data.decode(codec)
        except UnicodeDecodeError:
            continue


def _embedded(text: str) -> Iterable[bytes]:
    """Bytes hidden inside a text value: base64 or hex written out."""
    compact = text.strip()
    if len(compact) >= 8 and re.fullmatch(r"[A-Za-z0-9+/=_-]+", compact):
        for candidate in (compact, compact + "=" * (-len(compact) % 4)):
            try:
                yield base64.b64decode(candidate.replace("-", "+").replace("_", "/"), validate=True)
                break
            except (binascii.Error, ValueError):
                continue
    if len(compact) >= 8 and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", compact):
        yield bytes.fromhex(compact)


def candidate_texts(pattern: PatternSource) -> Iterable[str]:
    """Every reading of one rule pattern the marking check looks at."""
    kind, value = pattern.kind, pattern.value
    if kind == "text":
        raw = pattern.text_bytes()
        yield from _texts_from_bytes(raw)
        for hidden in _embedded(raw.decode("latin-1")):
            yield from _texts_from_bytes(hidden)
    elif kind == "hex":
        for run in hex_runs(value):
            yield from _texts_from_bytes(run)
            for key in range(1, 256):
                yield from _texts_from_bytes(bytes(b ^ key for b in run))
            for hidden in _embedded(run.decode("latin-1")):
                yield from _texts_from_bytes(hidden)
    elif kind == "regex":
        body = value.strip().rsplit("/", 1)[0].lstrip("/")
        # Separators a regex may allow between words read as a space; other metacharacters drop out.
        spaced = re.sub(r"\\[sW][?*+]?|\[[^\]]*\][?*+]?|\.[?*+]?|\{\d*,?\d*\}", " ", body)
        for alternative in spaced.split("|"):
            yield re.sub(r"[\\^$?*+()]", "", alternative)


def check_markings(rule: YaraRule, markings: Sequence[str]) -> list[Finding]:
    wanted = [(m, normalise(m)) for m in markings]
    found: list[Finding] = []
    for s in rule.source.patterns:
        hits: set[str] = set()
        for text in candidate_texts(s):
            norm = normalise(text)
            hits.update(m for m, nm in wanted if nm in norm)
        for marking in sorted(hits):
            found.append(
                _finding(
                    rule.id,
                    rule.name,
                    rule.file,
                    "sensitive-marking",
                    f"pattern {s.name} matches the marking {marking!r}",
                    f"{s.name}:{marking}",
                    rule.digest,
                )
            )
    return found


def _is_natural_language(text: str) -> bool:
    letters = sum(ch.isalpha() for ch in text)
    return len(text) >= 4 and letters >= 0.6 * len(text) and not re.search(r"[(){};=<>$\\]", text)


def check_document_only(rule: YaraRule) -> list[Finding]:
    condition = " ".join(condition_tokens(rule.source.condition)).lower()
    strings = rule.source.patterns
    values = [s.value for s in strings]
    targets_document = (
        any(m.lower() in v.lower() for v in values for m in DOCUMENT_MAGIC)
        or any(h.lower() in v.lower() for v in values for h in DOCUMENT_HEX)
        or any(i in condition for i in DOCUMENT_INTS)
    )
    if not targets_document:
        return []
    everything = " ".join([*values, condition]).lower()
    if any(ind in everything for ind in CODE_INDICATORS) or re.search(
        r"\b(pe|elf|dotnet|macho|dex)\.", condition
    ):
        return []
    texts = [
        s.text_bytes().decode("latin-1")
        for s in strings
        if s.kind == "text" and not any(m.lower() in s.value.lower() for m in DOCUMENT_MAGIC)
    ]
    if not texts or not all(_is_natural_language(t) for t in texts):
        return []
    return [
        _finding(
            rule.id,
            rule.name,
            rule.file,
            "document-only",
            "matches only document formats, with natural-language strings and no code or exploit indicator",
            "|".join(sorted(texts))[:200],
            rule.digest,
        )
    ]


def check_targeting(rule: YaraRule) -> list[Finding]:
    used = sorted({t for t in condition_tokens(rule.source.condition) if t in EXTERNALS})
    return [
        _finding(
            rule.id,
            rule.name,
            rule.file,
            "targeting",
            f"the condition uses {name}: it targets specific hosts, users, paths or customers",
            name,
            rule.digest,
        )
        for name in used
    ]


def check_collection(rule: YaraRule) -> list[Finding]:
    reasons = []
    if COLLECTION_NAME.match(rule.name):
        reasons.append(f"name {rule.name}")
    for key, value in rule.meta.items():
        k = str(key).lower()
        if k in COLLECTION_KEYS or (
            k in ("mode", "purpose", "intent", "task")
            and any(w in str(value).lower() for w in COLLECTION_WORDS)
        ):
            reasons.append(f"meta {key} = {value!r}")
    return [
        _finding(
            rule.id,
            rule.name,
            rule.file,
            "collection",
            f"implies silent collection or upload: {r}",
            r,
            rule.digest,
        )
        for r in reasons
    ]


def check_canaries(rules: RuleSet, changed: set[str], canaries: Sequence[Canary]) -> list[Finding]:
    found: list[Finding] = []
    by_name = {r.name: r for r in rules.yara}
    try:
        compiler = new_compiler()
        for path, text in sorted(rules.yara_files.items()):
            compiler.add_source(text, origin=path)
        compiled = compiler.build()
    except yara_x.CompileError:
        compiled = None
    for canary in canaries:
        if compiled is not None:
            for m in yara_x.Scanner(compiled).scan(canary.data).matching_rules:
                rule = by_name.get(m.identifier)
                if rule is not None and rule.id in changed:
                    found.append(
                        _finding(
                            rule.id,
                            rule.name,
                            rule.file,
                            "canary-hit",
                            f"matches the {canary.kind} canary {canary.name}",
                            canary.name,
                            rule.digest,
                        )
                    )
        digests = {
            hashlib.md5(canary.data).hexdigest(),
            hashlib.sha1(canary.data).hexdigest(),
            hashlib.sha256(canary.data).hexdigest(),
        }
        for h in rules.hashes:
            if h.id in changed and h.hash in digests and h.size == len(canary.data):
                found.append(
                    _finding(
                        h.id,
                        h.id,
                        h.file,
                        "canary-hit",
                        f"hash signature matches canary {canary.name}",
                        canary.name,
                        h.digest,
                    )
                )
    return found


def changed_rules(rules: RuleSet, previous: RuleSet | None) -> set[str]:
    before: dict[str, str] = {}
    if previous is not None:
        before = {r.id: r.digest for r in previous.yara} | {h.id: h.digest for h in previous.hashes}
    now: list[YaraRule | HashSignature] = [*rules.yara, *rules.hashes]
    return {r.id for r in now if before.get(r.id) != r.digest}


def audit(
    rules: RuleSet, *, previous: RuleSet | None = None, markings: Sequence[str] = DEFAULT_MARKINGS
) -> RuleAuditReport:
    """Every check over ``rules``; canaries run on rules new or changed since ``previous``."""
    findings: list[Finding] = []
    for r in rules.yara:
        findings += check_markings(r, markings)
        findings += check_document_only(r)
        findings += check_targeting(r)
        findings += check_collection(r)
    by_name = {(r.file, r.name): r for r in rules.yara}
    for p in rules.problems:
        rule = by_name.get((p.file, p.rule))
        rid = rule.id if rule else f"{p.file}:{p.rule}" if p.rule else p.file
        digest = (
            rule.digest if rule else hashlib.sha256(rules.yara_files.get(p.file, "").encode()).hexdigest()
        )
        findings.append(_finding(rid, p.rule, p.file, p.check, p.message, p.message, digest))
    for w in rules.warnings:
        rule = by_name.get((w.file, w.rule))
        rid = rule.id if rule else w.file
        digest = rule.digest if rule else ""
        findings.append(_finding(rid, w.rule, w.file, f"performance:{w.check}", w.message, w.check, digest))
    changed = changed_rules(rules, previous)
    canaries = corpus()
    findings += check_canaries(rules, changed, canaries)
    unique = {f.id: f for f in findings}
    return RuleAuditReport(
        findings=tuple(sorted(unique.values(), key=lambda f: (f.rule_id, f.check, f.id))),
        rules_audited=len(rules.yara) + len(rules.hashes),
        new_or_changed=len(changed),
        canaries=len(canaries),
    )
