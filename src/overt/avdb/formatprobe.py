"""``document-only`` decided by yara-x: each candidate rule alone over small files of every format, all carrying
the rule's own strings, so that the rule's format test is the only thing that tells them apart.

:mod:`overt.avdb.checks` reads document magic from the source, in the spellings it was written to parse. A
condition can compute the magic instead (``(uint32be(0) ^ 0x11111111) == 0x34415557``, ``uint32be(0) >> 8``,
``with hdr = uint32be(0) : ...``, ``for any m in (...)``, masks, ``int32be``, "anything but an executable").
Here the engine evaluates the condition, whatever its spelling:

1. Candidates: public rules the static check does not already report, with no code or exploit indicator
   (:mod:`overt.avdb.ruleview`'s, on patterns and condition; executable magic in the condition is left to
   yara-x, since ``not uint16(0) == 0x5A4D`` excludes executables), whose patterns are natural language or
   format structure (or absent), and whose condition (or a rule it names) reads the file by position: an
   integer read, ``at``, ``in``, an ``@`` offset, ``entrypoint`` or a module. A rule of patterns alone
   matches every file that carries them alike, so it is not probed.
2. Seeds: every pattern's literal bytes (text in its encodings: ascii, ``wide`` UTF-16LE, ``xor`` under its
   lowest key, ``base64``; hex with wildcards filled by a space, jumps at their minimum, the first
   alternative; a regex read as its literal text, best effort), the patterns of the rules it names too, except
   patterns that name a format: the files carry their own magic and structure, each only its own.
3. Files, each valid of its kind with the seeds in its body: documents (a PDF with an exact xref, OLE2 ``doc``
   and ``xls``, stored OOXML ``docx``/``xlsx``/``pptx`` and ODF ``odt``, RTF), executables (PE, ELF) and other
   files (a Mach-O executable, a shell script, a PNG). An email is no document here.
4. Each candidate compiles alone as :mod:`overt.avdb.canary_check` compiles it (no ``global`` rule of the tree,
   its own ``global``/``private`` dropped, ``filesize`` bounds lifted, the rules it names brought along; many
   rules share a compiler, one namespace per unit), and runs over its seeded files.
5. Finding (``document-only``, blocking): it matches a seeded document and no PE or ELF, and either no other
   file or every one of them with every document: "anything but an executable" hunts documents too. A rule
   that matches documents and some other files (images, a Mach-O) is broader, not reported here.

It decides nothing about markings, paths or collection, and does not run the canary corpus
(:mod:`overt.avdb.canary_check` does). Compiles and scans in memory; no other I/O.
"""

from __future__ import annotations

import base64
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache

import yara_x

from overt.avdb.binaries import write_elf, write_pe, write_png
from overt.avdb.canary_check import RuleIndex, compile_units, group_units
from overt.avdb.cfb import cfb
from overt.avdb.checks import PDF_STRUCTURE, check_document_only, global_rules, is_natural
from overt.avdb.docmodel import ordinary_doc
from overt.avdb.findings import Finding, finding
from overt.avdb.pdfdoc import pdf_file
from overt.avdb.rules import YaraRule
from overt.avdb.ruleview import BINARY_MAGIC, INT_READ, RuleView, pattern_code, pattern_format, readings
from overt.avdb.yarasource import HEX, TEXT, PatternSource
from overt.avdb.zipdocs import write_docx, write_odt, write_pptx, write_xlsx

CHECK = "document-only"
MESSAGE = "matches documents carrying its own strings, and no executable carrying them"
FILL = 0x20  # what a hex wildcard or jump becomes
TIMEOUT_S = 5

# --- seeds: a rule's own pattern bytes ------------------------------------------------------------------


def _hex_bytes(value: str) -> bytes:
    """One byte string a hex pattern matches: wildcards filled, jumps at their minimum, first alternatives."""
    body = re.sub(r"/\*.*?\*/|//[^\n]*", " ", value.strip()[1:-1], flags=re.S)
    out = bytearray()
    depth, skipping = 0, 0  # skipping: the depth whose later alternatives are being skipped (0: none)
    for token in re.findall(r"\[[^\]]*\]|~?[0-9A-Fa-f?]{2}|[()|]", body):
        if token == "(":
            depth += 1
        elif token == ")":
            skipping = 0 if skipping == depth else skipping
            depth -= 1
        elif token == "|":
            skipping = skipping or depth
        elif skipping:
            continue
        elif token.startswith("["):
            low = token[1:-1].split("-")[0].strip()
            out += bytes([FILL]) * (int(low) if low.isdigit() else 0)
        else:
            hi, lo = token.lstrip("~")
            byte = (FILL & 0xF0 if hi == "?" else int(hi, 16) << 4) | (
                FILL & 0x0F if lo == "?" else int(lo, 16)
            )
            if token.startswith("~"):  # any byte but the one given: flip the nibbles it names
                byte ^= (0 if hi == "?" else 0xF0) | (0 if lo == "?" else 0x0F)
            out.append(byte)
    return bytes(out)


def _xor_key(modifiers: str) -> int:
    m = re.search(r"\bxor\s*\(\s*(0x[0-9A-Fa-f]+|\d+)", modifiers)
    return int(m.group(1), 0) if m else 0


def _base64(data: bytes, modifiers: str, name: str) -> bytes:
    m = re.search(rf'\b{name}\s*\(\s*"((?:[^"\\]|\\.)*)"', modifiers)
    encoded = base64.b64encode(data)
    if m and len(alphabet := m.group(1).encode("latin-1")) == 64:
        standard = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        encoded = encoded.rstrip(b"=").translate(bytes.maketrans(standard, alphabet))
    return encoded.rstrip(b"=")[1:-1] if len(encoded) > 4 else encoded


def _wide(data: bytes) -> bytes:
    return b"".join(bytes([b, 0]) for b in data)


def _text_forms(p: PatternSource) -> list[bytes]:
    data, names = p.text_bytes(), set(p.modifier_names())
    if "xor" in names:
        key = _xor_key(p.modifiers)
        data = bytes(b ^ key for b in data)
    forms = []
    if "base64" in names:
        forms.append(_base64(data, p.modifiers, "base64"))
    if "base64wide" in names:
        forms.append(_wide(_base64(data, p.modifiers, "base64wide")))
    if forms:
        return forms
    if "wide" in names:
        forms.append(_wide(data))
    if "ascii" in names or "wide" not in names:
        forms.append(data)
    return forms


def seed(p: PatternSource) -> list[bytes]:
    """Byte strings the pattern matches (best effort for a regex: its literal text)."""
    if p.kind == TEXT:
        return _text_forms(p)
    if p.kind == HEX:
        return [_hex_bytes(p.value)]
    text = readings(p)[0].replace("\0", " ")
    data = text.encode("utf-8")
    return [_wide(data), data] if "wide" in p.modifier_names() else [data]


# Every pair of adjacent magic bytes, as hex: a hex pattern holding none cannot carry a magic (each needs
# three quarters of its bytes known), and reading one that cannot is the costly part of choosing candidates.
_MAGIC_PAIRS = re.compile(
    "|".join(m[i : i + 2].hex().upper() for _, m in BINARY_MAGIC for i in range(len(m) - 1))
)


def _is_gate(p: PatternSource) -> bool:
    """A pattern that names a format or its structure: the files carry it natively, when they are of it."""
    if p.kind == HEX and not _MAGIC_PAIRS.search(re.sub(r"\s+", "", p.value).upper()):
        return False
    return bool(pattern_format(p)) or any(PDF_STRUCTURE.fullmatch(t.strip()) for t in readings(p)[:1])


def seed_block(rule: YaraRule) -> bytes:
    """The rule's own strings as a document or a program would carry them, one per line; code indicators left
    out (a candidate only mentions them: ``not $js``), so that the files hold no code."""
    parts = [s for p in rule.source.patterns if not _is_gate(p) and not pattern_code(p) for s in seed(p)]
    return b"\n" + b"\n".join(parts) + b"\n"


# --- files of every format, each carrying the seeds ------------------------------------------------------

_TITLE = "Quarterly planning review"


def _pdf(body: bytes) -> bytes:
    content = b"BT /F1 11 Tf 72 720 Td (" + _TITLE.encode() + b") Tj ET\n" + body
    return pdf_file(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents 6 0 R >>",
            b"<< /Title (" + _TITLE.encode() + b") /Producer (Microsoft Word for Microsoft 365) >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        ],
        seed=_TITLE,
    )


def _doc(body: bytes) -> bytes:
    fib = struct.pack("<HHHHHH", 0xA5EC, 0x00C1, 0, 0x0409, 0, 0x0200).ljust(0x800, b"\x00")
    word_clsid = bytes.fromhex("0609020000000000c000000000000046")
    return cfb([("WordDocument", fib + body), ("1Table", bytes(512))], clsid=word_clsid)


def _xls(body: bytes) -> bytes:
    bof = struct.pack("<HHHHHHII", 0x0809, 16, 0x0600, 0x0005, 0x1FA4, 0x07CC, 0x000100C1, 0x00000406)
    chunks = [body[i : i + 8224] for i in range(0, len(body), 8224)]
    records = b"".join(struct.pack("<HH", 0x003C, len(c)) + c for c in chunks)  # CONTINUE records
    return cfb([("Workbook", bof + records + struct.pack("<HH", 0x000A, 0))])


def _rtf(body: bytes) -> bytes:
    head = b"{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\froman Times New Roman;}}"
    return head + b"{\\info{\\title " + _TITLE.encode() + b"}}\\f0\\fs24 " + body + b"\\par\n}"


@lru_cache(maxsize=8)
def _package_parts(kind: str) -> tuple[tuple[zipfile.ZipInfo, bytes], ...]:
    writers: dict[str, Callable[..., bytes]] = {
        "docx": write_docx,
        "xlsx": write_xlsx,
        "pptx": write_pptx,
        "odt": write_odt,
    }
    data = writers[kind](ordinary_doc(_TITLE, [], 2), stored=True)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return tuple((info, z.read(info)) for info in z.infolist())


def _zipped(kind: str, part: str) -> Callable[[bytes], bytes]:
    def write(body: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            first, *rest = _package_parts(kind)  # [Content_Types].xml or mimetype stays first
            z.writestr(*first)
            z.writestr(zipfile.ZipInfo(part, (2024, 3, 12, 10, 15, 0)), body)  # stored: seeds stay readable
            for info, data in rest:
                z.writestr(info, data)
        return out.getvalue()

    return write


def _macho(body: bytes) -> bytes:
    return struct.pack("<IiiIIIII", 0xFEEDFACF, 0x01000007, 3, 2, 0, 0, 0x00200085, 0) + body


def _png(body: bytes) -> bytes:
    png = write_png()
    data = b"Comment\x00" + body
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:-12] + chunk + png[-12:]


DOCUMENTS: dict[str, Callable[[bytes], bytes]] = {
    "pdf": _pdf,
    "doc": _doc,
    "xls": _xls,
    "docx": _zipped("docx", "customXml/item1.xml"),
    "xlsx": _zipped("xlsx", "customXml/item1.xml"),
    "pptx": _zipped("pptx", "customXml/item1.xml"),
    "odt": _zipped("odt", "Configurations2/notes.xml"),
    "rtf": _rtf,
}
EXECUTABLES: dict[str, Callable[[bytes], bytes]] = {
    "pe": lambda body: write_pe() + body,
    "elf": lambda body: write_elf() + body,
}
OTHERS: dict[str, Callable[[bytes], bytes]] = {
    "macho": _macho,
    "script": lambda body: b"#!/bin/sh\n# backup helper\n" + body + b"\nexit 0\n",
    "png": _png,
}
FILES = {**DOCUMENTS, **EXECUTABLES, **OTHERS}


# --- which rules are probed -----------------------------------------------------------------------------


def _reads_position(rule: YaraRule, index: RuleIndex) -> bool:
    """Whether the rule or a rule it names reads the file by position (what a format test does)."""
    for r in index.needed(rule):
        tokens = index.tokens(r)
        for k, t in enumerate(tokens):
            if INT_READ.match(t.text) or t.text in ("at", "in", "entrypoint") or t.text.startswith("@"):
                return True
            if t.kind == "id" and tokens[k + 1 : k + 2] and tokens[k + 1].text == ".":  # a module
                return True
    return False


def _candidate(rule: YaraRule, index: RuleIndex, globals: Sequence[RuleView]) -> bool:
    if "private" in rule.source.modifiers or not _reads_position(rule, index):
        return False
    view = RuleView(rule)
    if not all(is_natural(p) or _is_gate(p) or view.code[p.name] for p in rule.source.patterns):
        return False
    return not _code(view) and not check_document_only(view, globals)


def _code(view: RuleView) -> str:
    """The code or exploit indicator the condition can match on (one only mentioned, ``#js >= 0`` or ``not
    $js``, does not count), executable magic apart: whether the format test admits executables is for yara-x
    to say (``not uint16(0) == 0x5A4D`` excludes them)."""
    return view.admits_code(executables=False)


# --- running them ---------------------------------------------------------------------------------------


def _matches(scanner: yara_x.Scanner, data: bytes) -> set[tuple[str, str]]:
    try:
        results = scanner.scan(data)
    except (yara_x.TimeoutError, yara_x.ScanError):
        return set()
    return {(m.namespace, m.identifier) for m in results.matching_rules}


def _verdict(rule: YaraRule, matched: Sequence[str]) -> Finding | None:
    docs = [f for f in matched if f in DOCUMENTS]
    others = [f for f in matched if f in OTHERS]
    if not docs or any(f in EXECUTABLES for f in matched):
        return None
    shown = "/".join(EXECUTABLES)
    if not others:
        return finding(rule, CHECK, MESSAGE, f"yara-x matched {'/'.join(docs)}; no {shown}")
    if len(others) == len(OTHERS) and len(docs) == len(DOCUMENTS):
        return finding(
            rule, CHECK, MESSAGE, f"yara-x matched every seeded file but the executables ({shown})"
        )
    return None  # documents and some other files: a broader rule


def probe_formats(rules: Sequence[YaraRule]) -> dict[tuple[str, str], tuple[str, ...]]:
    """The seeded files (by format name) yara-x finds each candidate rule matches, by (file, rule name).

    ``rules``: the whole tree (the rules a candidate names come from it). A candidate that does not compile
    is left out (the ``compile`` check reports it)."""
    index = RuleIndex.of(rules)
    globals = [RuleView(r) for r in global_rules(rules)]
    targets = [r for r in rules if _candidate(r, index, [g for g in globals if g.rule is not r])]
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    if not targets:
        return out
    for compiled in compile_units(group_units(targets, index), index):
        scanner = yara_x.Scanner(compiled.rules)
        scanner.set_timeout(TIMEOUT_S)
        by_block: dict[bytes, dict[str, set[tuple[str, str]]]] = {}
        for key, (rule, _lifted) in compiled.targets.items():
            block = b"".join(seed_block(r) for r in index.needed(rule))
            if block not in by_block:
                by_block[block] = {fmt: _matches(scanner, write(block)) for fmt, write in FILES.items()}
            out[(rule.file, rule.name)] = tuple(fmt for fmt, hits in by_block[block].items() if key in hits)
    return out


def check_formats(rules: Sequence[YaraRule]) -> list[Finding]:
    """``document-only`` findings on rules whose format test, as yara-x evaluates it, admits documents and no
    executable, where :func:`overt.avdb.checks.check_document_only` reports nothing."""
    matched = probe_formats(rules)
    verdicts = (_verdict(r, matched[(r.file, r.name)]) for r in rules if (r.file, r.name) in matched)
    return [v for v in verdicts if v is not None]
