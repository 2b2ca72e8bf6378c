"""``overt avdb import``: a third-party YARA collection (a directory of ``.yar``/``.yara`` files) becomes an overt
rule tree that loads strictly (:func:`overt.avdb.rules.load_rules`) and audits.

Each rule's text is kept byte for byte except its ``meta`` section, where overt's required fields are put first
(the first of a repeated meta key is the one overt reads) and every original entry follows verbatim:

======================  =========================================================  ==============================
overt field             taken from (the first non-empty)                           default
======================  =========================================================  ==============================
``id``                  ``id``, ``uuid`` (if unique in the tree)                   ``<source>:<path>:<rule>``
``version``             ``version``, ``revision``                                  ``1``
``author``              ``author``                                                 the source name
``date``                ``date``, ``last_modified``, ``last_updated``, ``created`` ``unknown``
``description``         ``description``, ``desc``                                  ``<rule> from <source>``
``reference``           ``reference``, ``ref``, ``url``                            ``<source>:<path>``
======================  =========================================================  ==============================

A field the rule already carries under its own name is not repeated. Lines written are ended as the file's
lines are (CRLF if most of its lines end so, else LF); nothing else of the file changes, except that what
cannot be in an overt tree is left out, each with its reason:

* files of ``include`` lines only (``*_index.yar``) are skipped, and ``include`` lines elsewhere dropped: an
  overt tree is self-contained;
* files that are not UTF-8, or that the lexer cannot read (``unparsed``);
* rules needing a module yara-x lacks (``unknown-module``; the file's ``import`` of it is dropped, so its other
  rules stay), rules that do not compile with yara-x alone with what precedes them in their file (``compile``,
  with the compiler's first line);
* a rule whose name an earlier file (in path order) or earlier rule already has (``duplicate-name``: a
  database compiles every file into one namespace).

Top-level licence files (``LICENSE*``, ``COPYING*``) are copied: third-party rules travel with their terms.
Deterministic: the same collection gives the same bytes. The tree is written beside ``dest`` and renamed into
place, so an interrupted import leaves nothing half-written at ``dest``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yara_x

from overt.avdb.rules import new_compiler
from overt.avdb.scan import Progress
from overt.avdb.yarasource import RuleSource, split_rules
from overt.errors import FormatError, UsageError

RULE_SUFFIXES = (".yar", ".yara")
LICENCE_NAMES = ("LICENSE", "LICENCE", "COPYING")
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# overt field -> the collection keys it is read from, in order of preference.
MAPPING: dict[str, tuple[str, ...]] = {
    "id": ("id", "uuid"),
    "version": ("version", "revision"),
    "author": ("author",),
    "date": ("date", "last_modified", "last_updated", "created"),
    "description": ("description", "desc"),
    "reference": ("reference", "ref", "url"),
}
DEFAULTS = {
    "id": "<source>:<path>:<rule>",
    "version": "1",
    "author": "<source>",
    "date": "unknown",
    "description": "<rule> from <source>",
    "reference": "<source>:<path>",
}
_DROPPED_LINE = re.compile(r'(?m)^[ \t]*(include|import)[ \t]+"([^"\n]*)"[ \t]*(?://[^\r\n]*)?(\r?\n|$)')
_UNKNOWN_IDENT = re.compile(r"unknown identifier `([A-Za-z_][A-Za-z0-9_]*)`")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeftOut:
    """A file or rule not in the imported tree, and why (``check`` as the auditor names source problems)."""

    file: str
    rule: str  # "" for a whole file
    check: str  # include-only, empty, symlink, not-utf8, unparsed, unknown-module, compile, duplicate-name;
    # for a changed file: bom, include
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "rule": self.rule, "check": self.check, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    """What ``overt avdb import`` did: counts, which metadata came from where, and what was left out."""

    source: str
    dest: str
    files_read: int
    files_written: int
    rules_read: int
    rules_written: int
    mapped: Mapping[str, int]  # "date<-last_modified": rules whose overt field came from that key
    defaults: Mapping[str, int]  # overt field: rules that got its stated default
    crlf_files: int
    skipped: tuple[LeftOut, ...]  # whole files with no rule to import (include lists, empty files)
    left_out: tuple[LeftOut, ...]  # files and rules that could not be imported
    missing_modules: Mapping[str, int] = field(default_factory=dict)  # module: rules left out for it
    licences: tuple[str, ...] = ()
    changed: tuple[LeftOut, ...] = ()  # files imported with more than meta changed: a BOM, include lines

    def to_dict(self) -> dict[str, Any]:
        """What ``overt avdb import --json`` prints."""
        return {
            "source": self.source,
            "dest": self.dest,
            "filesRead": self.files_read,
            "filesWritten": self.files_written,
            "rulesRead": self.rules_read,
            "rulesWritten": self.rules_written,
            "mapped": dict(sorted(self.mapped.items())),
            "defaults": {k: {"value": DEFAULTS[k], "rules": n} for k, n in sorted(self.defaults.items())},
            "crlfFiles": self.crlf_files,
            "missingModules": dict(sorted(self.missing_modules.items())),
            "skipped": [s.to_dict() for s in self.skipped],
            "leftOut": [s.to_dict() for s in self.left_out],
            "changed": [s.to_dict() for s in self.changed],
            "licences": list(self.licences),
        }


@dataclass(slots=True)
class _Tally:
    mapped: Counter[str] = field(default_factory=Counter)
    defaults: Counter[str] = field(default_factory=Counter)
    modules: Counter[str] = field(default_factory=Counter)
    skipped: list[LeftOut] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    changed: list[LeftOut] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # rule name -> the file that has it
    rules_read: int = 0
    rules_written: int = 0
    crlf_files: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Lexed:
    path: str
    text: str
    imports: tuple[str, ...]
    includes: tuple[str, ...]
    rules: list[RuleSource]


def check_source_name(source: str) -> str:
    if not _SOURCE_NAME.fullmatch(source):
        raise UsageError(
            f"source name {source!r}: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return source


def import_tree(src: Path, dest: Path, *, source: str, progress: Progress | None = None) -> ImportReport:
    """Import the collection at ``src`` as an overt rule tree at ``dest`` (which must not exist, or be empty).

    Raises UsageError for a bad source name or destination, FormatError when ``src`` holds no rule file.
    """
    check_source_name(source)
    if not src.is_dir():
        raise UsageError(f"{src} is not a directory of YARA rules")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not an empty directory; import into a new one")
    found = sorted(
        (p.relative_to(src).as_posix(), p)
        for p in src.rglob("*")
        if p.suffix in RULE_SUFFIXES and (p.is_symlink() or p.is_file())
    )
    paths = [(rel, p) for rel, p in found if not p.is_symlink()]
    if not paths:
        raise FormatError(f"{src} holds no .yar or .yara file")
    ids = _source_ids(paths)
    tally = _Tally()
    for rel, _ in (x for x in found if x[1].is_symlink()):
        message = "a symbolic link: only regular files of the collection are imported"
        tally.skipped.append(LeftOut(file=rel, rule="", check="symlink", message=message))
    out: dict[str, bytes] = {}
    for n, (rel, path) in enumerate(paths, 1):
        text = _import_file(rel, path.read_bytes(), source=source, ids=ids, tally=tally)
        if text is not None:
            out[rel] = text.encode("utf-8")
        if progress is not None:
            progress(n, len(paths))
    licences = sorted(
        p.name for p in src.iterdir() if p.is_file() and p.name.upper().startswith(LICENCE_NAMES)
    )
    for name in licences:
        out[name] = (src / name).read_bytes()
    _write_tree(dest, out)
    return ImportReport(
        source=source,
        dest=str(dest),
        files_read=len(paths),
        files_written=len(out) - len(licences),
        rules_read=tally.rules_read,
        rules_written=tally.rules_written,
        mapped=dict(tally.mapped),
        defaults=dict(tally.defaults),
        crlf_files=tally.crlf_files,
        skipped=tuple(tally.skipped),
        left_out=tuple(tally.left_out),
        missing_modules=dict(tally.modules),
        licences=tuple(licences),
        changed=tuple(tally.changed),
    )


def _lex(rel: str, data: bytes, tally: _Tally) -> _Lexed | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        tally.left_out.append(
            LeftOut(file=rel, rule="", check="not-utf8", message=f"not UTF-8 (byte {e.start})")
        )
        return None
    if text.startswith("\ufeff"):  # yara-x does not take a byte-order mark
        text = text[1:]
        tally.changed.append(
            LeftOut(file=rel, rule="", check="bom", message="its UTF-8 byte-order mark removed")
        )
    try:
        imports, includes, rules = split_rules(text, where=rel)
    except FormatError as e:
        tally.left_out.append(LeftOut(file=rel, rule="", check="unparsed", message=f"cannot be read: {e}"))
        return None
    if not rules:
        what = "include-only" if includes else "empty"
        message = f"holds only include lines ({len(includes)})" if includes else "holds no rule"
        tally.skipped.append(LeftOut(file=rel, rule="", check=what, message=message))
        return None
    if includes:
        shown = ", ".join(includes[:3]) + (" ..." if len(includes) > 3 else "")
        message = f"its include lines dropped ({shown}): sources must be self-contained"
        tally.changed.append(LeftOut(file=rel, rule="", check="include", message=message))
    return _Lexed(path=rel, text=text, imports=imports, includes=includes, rules=rules)


def _source_ids(paths: Sequence[tuple[str, Path]]) -> dict[tuple[str, str], str]:
    """The collection's own id of each rule (file, name) that can be overt's: non-empty and unique in the tree."""
    found: dict[tuple[str, str], str] = {}
    for rel, path in paths:
        try:
            _, _, rules = split_rules(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, FormatError):
            continue
        for r in rules:
            meta = r.meta_dict()
            value = next((str(meta[k]).strip() for k in MAPPING["id"] if str(meta.get(k, "")).strip()), "")
            if value:
                found.setdefault((rel, r.name), value)
    counts = Counter(found.values())
    return {key: value for key, value in found.items() if counts[value] == 1}


def _import_file(
    rel: str, data: bytes, *, source: str, ids: Mapping[tuple[str, str], str], tally: _Tally
) -> str | None:
    """The imported text of one file, or None when nothing of it is imported."""
    lexed = _lex(rel, data, tally)
    if lexed is None:
        return None
    tally.rules_read += len(lexed.rules)
    newline = "\r\n" if lexed.text.count("\r\n") * 2 > lexed.text.count("\n") else "\n"
    tally.crlf_files += newline == "\r\n"
    unknown = tuple(m for m in dict.fromkeys(lexed.imports) if not _module_known(m))
    texts: dict[str, str] = {}
    origins: dict[str, list[tuple[str, str]]] = {}
    for r in lexed.rules:
        first = tally.names.get(r.name)
        if first is not None or r.name in texts:
            where = f"in {first}" if first is not None else "earlier in this file"
            message = f"rule {r.name} is already defined {where}"
            tally.left_out.append(LeftOut(file=rel, rule=r.name, check="duplicate-name", message=message))
            continue
        fields = overt_fields(r, rel=rel, source=source, ids=ids)
        texts[r.name] = with_overt_meta(r, [(k, v) for k, v, _ in fields], newline=newline)
        origins[r.name] = [(k, key) for k, _, key in fields]
    whole = _assemble(lexed, texts, unknown)
    if not _compile_error(rel, whole):
        kept = list(texts)
    else:
        header = "".join(f'import "{m}"\n' for m in lexed.imports if m not in unknown)
        kept = _compiling(rel, header, unknown, texts, tally)
        whole = _assemble(lexed, {name: texts[name] for name in kept}, unknown)
    for name in kept:
        tally.names[name] = rel
        for k, key in origins[name]:
            if key:
                tally.mapped[f"{k}<-{key}"] += 1
            else:
                tally.defaults[k] += 1
    tally.rules_written += len(kept)
    return whole if kept else None


def _compile_error(rel: str, text: str) -> str:
    """The compiler's first line about ``text``, or "" if it compiles."""
    try:
        new_compiler().add_source(text, origin=rel)
    except yara_x.CompileError as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else "compile error"
    return ""


def _module_known(module: str) -> bool:
    compiler = yara_x.Compiler()
    try:
        compiler.add_source(f'import "{module}"')
    except yara_x.CompileError:
        return False
    return True


def _compiling(
    rel: str, header: str, unknown: Sequence[str], texts: Mapping[str, str], tally: _Tally
) -> list[str]:
    """The rules of a file that does not compile whole which compile one by one, each after the rules kept
    before it (yara-x leaves its compiler as it was when a source fails); the rest are left out."""
    compiler = new_compiler()
    kept = []
    for name, text in texts.items():
        try:
            compiler.add_source(header + text, origin=rel)
        except yara_x.CompileError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else "compile error"
            ident = _UNKNOWN_IDENT.search(first)
            if ident and ident.group(1) in unknown:
                tally.modules[ident.group(1)] += 1
                message = f"needs the module {ident.group(1)}, which yara-x lacks"
                tally.left_out.append(LeftOut(file=rel, rule=name, check="unknown-module", message=message))
            else:
                message = f"does not compile: {first[:300]}"
                tally.left_out.append(LeftOut(file=rel, rule=name, check="compile", message=message))
            continue
        kept.append(name)
    return kept


def _assemble(lexed: _Lexed, kept: Mapping[str, str], unknown: Sequence[str]) -> str:
    """The file again: the text between rules verbatim (without include lines and imports of unknown modules),
    each kept rule with its new meta, left-out rules gone."""

    def gap(text: str) -> str:
        return _DROPPED_LINE.sub(
            lambda m: "" if m.group(1) == "include" or m.group(2) in unknown else m.group(0), text
        )

    parts: list[str] = []
    done: set[str] = set()
    at = 0
    for r in lexed.rules:
        parts.append(gap(lexed.text[at : r.start]))
        if r.name in kept and r.name not in done:  # a later rule of the same name is a left-out duplicate
            parts.append(kept[r.name])
            done.add(r.name)
        at = r.end
    parts.append(gap(lexed.text[at:]))
    return "".join(parts)


def _quote(value: str) -> str:
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def overt_fields(
    rule: RuleSource, *, rel: str, source: str, ids: Mapping[tuple[str, str], str]
) -> list[tuple[str, str, str]]:
    """The overt fields this rule lacks under their own names: (field, value, the key it came from or "" for
    the default)."""
    meta = rule.meta_dict()
    own = {k: str(v).strip() for k, v in meta.items() if not isinstance(v, bool)}
    defaults = {
        "id": f"{source}:{rel}:{rule.name}",
        "version": "1",
        "author": source,
        "date": "unknown",
        "description": f"{rule.name} from {source}",
        "reference": f"{source}:{rel}",
    }
    out = []
    for name, keys in MAPPING.items():
        if name == "id":
            value, key = ids.get((rel, rule.name), ""), next((k for k in keys if own.get(k)), "")
            if value and key == "id":
                continue  # the rule's own id is overt's
        else:
            key = next((k for k in keys if own.get(k)), "")
            if key == name:
                continue
            value = own.get(key, "")
        if value:
            out.append((name, value, key))
        else:
            out.append((name, defaults[name], ""))
    return out


def with_overt_meta(rule: RuleSource, fields: Sequence[tuple[str, str]], *, newline: str) -> str:
    """The rule's text with ``fields`` written first in its meta section (one is made if it has none);
    everything else verbatim."""
    if not fields:
        return rule.text
    text = rule.text
    span = meta_span(rule)
    if span is not None:
        keyword, colon, first = span
        own_line = _starts_line(text, first)
        indent = _indent_of(text, first) if own_line else _indent_of(text, keyword) + "    "
        lines = "".join(f"{newline}{indent}{k} = {_quote(v)}" for k, v in fields)
        if not own_line:  # 'meta: a = 1 ...' on one line: the original entries go on a line of their own
            return text[:colon] + lines + newline + indent + text[first:]
        return text[:colon] + lines + text[colon:]
    at = section_at(rule)
    indent = _indent_of(text, at) if _starts_line(text, at) else ""
    lines = "".join(f"{newline}{indent}    {k} = {_quote(v)}" for k, v in fields)
    return text[:at] + "meta:" + lines + newline + indent + text[at:]


def _starts_line(text: str, at: int) -> bool:
    line_start = text.rfind("\n", 0, at) + 1
    return not text[line_start:at].strip()


def _indent_of(text: str, at: int) -> str:
    line_start = text.rfind("\n", 0, at) + 1
    line = text[line_start:at]
    return line[: len(line) - len(line.lstrip(" \t"))]


def meta_span(rule: RuleSource) -> tuple[int, int, int] | None:
    """Offsets in the rule's text of its ``meta`` keyword, just past its ``:``, and its first entry (or None)."""
    return next(((k, c, f) for name, k, c, f in rule.sections if name == "meta"), None)


def section_at(rule: RuleSource) -> int:
    """Offset in the rule's text of its first section keyword."""
    return rule.sections[0][1]


def _write_tree(dest: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` under a temporary directory beside ``dest``, then rename it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.import-", dir=dest.parent))
    try:
        for rel, data in sorted(files.items()):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        tmp.chmod(0o755)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
