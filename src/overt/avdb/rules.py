"""Rule sources: YARA rules (``*.yar``) and ClamAV hash signatures (``*.hdb``, ``*.hsb``), with their metadata.

A rule tree is a directory (escrowed like any source) holding ``.yar``, ``.hdb`` and ``.hsb`` files anywhere.

* Every YARA rule carries ``meta`` fields ``id``, ``version``, ``author``, ``date``, ``description``,
  ``reference``. Rules are split out of their file by :mod:`overt.avdb.yarasource`, so each rule's digest covers
  its exact source text (CRLF line endings included); the whole file is compiled by yara-x to prove it is valid.
* A YARA rule name is unique across the tree (the database compiles every file into one namespace): a second
  rule of the same name is a ``duplicate-name`` problem.
* The tree's audit settings live in ``overt-audit.toml`` at its root (:class:`TreeSettings`)::

      [notices]
      blocking = true   # yara-x compiler notices block a release (default: advisory)

* Hash signature files use ClamAV's line formats (``hash:size:name``, MD5 in ``.hdb``; SHA-1 or SHA-256 in
  ``.hsb``). Their metadata comes from ``# key: value`` header lines at the top of the file (overt's source
  convention; the database ships the lines without them). Each signature's id is its name.

Owns parsing and validation; what is suspicious about a rule is :mod:`overt.avdb.audit`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yara_x

from overt.avdb.yarasource import RuleSource, split_rules
from overt.errors import FormatError
from overt.source.snapshot import FILE, SnapshotFile

REQUIRED_META = ("id", "version", "author", "date", "description", "reference")
# The classic YARA externals, defined so rules using them compile; the auditor flags every use.
EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner", "hostname", "username", "customer")
YARA = "yara"
HASH = "hash"
_HASH_LEN = {32: "md5", 40: "sha1", 64: "sha256"}
_SIG_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_HEADER = re.compile(r"#\s*([a-z_]+)\s*:\s*(.*)")
SETTINGS_FILE = "overt-audit.toml"
_SETTINGS_KEYS: dict[str, tuple[str, ...]] = {"notices": ("blocking",)}


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeSettings:
    """How the auditor treats this tree: ``notices_block``, yara-x compiler notices block a release."""

    notices_block: bool = False

    @classmethod
    def from_toml(cls, data: bytes, *, where: str = SETTINGS_FILE) -> TreeSettings:
        """The settings of ``overt-audit.toml``; FormatError naming the file and the key for anything else."""
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise FormatError(f"{where} is not valid TOML: {e}") from e
        for table, value in doc.items():
            if table not in _SETTINGS_KEYS or not isinstance(value, dict):
                known = ", ".join(f"[{t}]" for t in _SETTINGS_KEYS)
                raise FormatError(f"{where}: unknown setting {table!r}; the known tables are {known}")
            for key in value:
                if key not in _SETTINGS_KEYS[table]:
                    keys = ", ".join(_SETTINGS_KEYS[table])
                    raise FormatError(f"{where}: unknown setting {table}.{key}; [{table}] holds {keys}")
        blocking = doc.get("notices", {}).get("blocking", False)
        if not isinstance(blocking, bool):
            raise FormatError(f"{where}: notices.blocking must be true or false, not {blocking!r}")
        return cls(notices_block=blocking)


@dataclass(frozen=True, slots=True, kw_only=True)
class YaraRule:
    id: str
    name: str
    file: str
    text: str  # the rule's exact source lines
    meta: Mapping[str, Any]
    source: RuleSource
    tags: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    missing_meta: tuple[str, ...] = ()
    lines: tuple[int, int] = (0, 0)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class HashSignature:
    id: str  # the signature name
    algorithm: str
    hash: str
    size: int
    file: str
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"{self.hash}:{self.size}:{self.id}"

    @property
    def version(self) -> str:
        return self.meta.get("version", "")

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.line.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """A source problem found while loading leniently (for the auditor): a file, maybe a rule, and what."""

    file: str
    rule: str
    check: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    yara: tuple[YaraRule, ...]
    hashes: tuple[HashSignature, ...]
    yara_files: Mapping[str, str]  # path -> full text, as escrowed
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()  # yara-x compiler warnings (performance and the like)
    settings: TreeSettings = field(default_factory=TreeSettings)

    def by_id(self) -> dict[str, YaraRule | HashSignature]:
        out: dict[str, YaraRule | HashSignature] = {r.id: r for r in self.yara}
        out.update({h.id: h for h in self.hashes})
        return out


def new_compiler() -> yara_x.Compiler:
    compiler = yara_x.Compiler()
    for name in EXTERNALS:
        compiler.define_global(name, "")
    return compiler


def parse_yara_file(
    path: str, text: str, *, strict: bool = True
) -> tuple[list[YaraRule], list[Problem], list[Problem]]:
    """Split and check one ``.yar`` file: it must compile with yara-x and every rule needs the metadata.

    Strict, any problem raises FormatError; lenient, problems come back for the auditor to report.
    Returns (rules, problems, compiler warnings).
    """
    problems: list[Problem] = []
    raw_warnings: list[tuple[int, str, str]] = []
    includes = tuple(re.findall(r'^[ \t]*include[ \t]+"([^"\n]+)"', text, flags=re.M))
    for inc in includes:
        problems.append(
            Problem(
                file=path,
                rule="",
                check="include",
                message=f"includes {inc!r}: sources must be self-contained",
            )
        )
    compiler = new_compiler()
    try:
        compiler.add_source(text, origin=path)
        # Warnings must be read before build(), which consumes the compiler.
        for w in compiler.warnings():
            raw_warnings.append(
                (int(w.get("line", 0)), str(w.get("code", "warning")), str(w.get("title", "")))
            )
        compiler.build()
    except yara_x.CompileError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "compile error"
        if text.startswith("\ufeff"):
            first = "it starts with a UTF-8 byte-order mark, which yara-x does not take (remove it)"
        check = "unknown-module" if "unknown module" in first else "compile"
        if not (includes and "include" in first):
            problems.append(
                Problem(file=path, rule="", check=check, message=f"does not compile: {first[:300]}")
            )
    try:
        imports, _, parsed = split_rules(text, where=path)
    except FormatError as e:
        problems.append(Problem(file=path, rule="", check="unparsed", message=f"cannot be read: {e}"))
        imports, parsed = (), []
    out = []
    for r in parsed:
        meta = r.meta_dict()
        missing = tuple(k for k in REQUIRED_META if k not in meta or meta[k] in ("", None))
        if missing:
            problems.append(
                Problem(
                    file=path,
                    rule=r.name,
                    check="missing-metadata",
                    message=f"lacks metadata {', '.join(missing)}",
                )
            )
        out.append(
            YaraRule(
                id=str(meta.get("id") or f"{path}:{r.name}"),
                name=r.name,
                file=path,
                text=r.text,
                meta=meta,
                source=r,
                tags=r.tags,
                imports=imports,
                includes=includes,
                missing_meta=missing,
                lines=(r.line, r.line + r.text.count("\n")),
            )
        )
    warnings = [
        Problem(
            file=path,
            rule=next((r.name for r in out if r.lines[0] <= line <= r.lines[1]), ""),
            check=code,
            message=title,
        )
        for line, code, title in raw_warnings
    ]
    if strict and problems:
        p = problems[0]
        where = f"{p.file}: rule {p.rule}" if p.rule else p.file
        raise FormatError(f"{where}: {p.message}")
    return out, problems, warnings


def parse_hash_file(path: str, text: str) -> list[HashSignature]:
    """ClamAV ``.hdb``/``.hsb`` lines, with ``# key: value`` metadata headers for the whole file."""
    meta: dict[str, str] = {}
    sigs = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        header = _HEADER.fullmatch(line)
        if header:
            meta[header.group(1)] = header.group(2).strip()
            continue
        if line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) not in (3, 4):
            raise FormatError(f"{path}:{n}: expected hash:size:name[:min-flevel]")
        digest, size, name = parts[0].lower(), parts[1], parts[2]
        algorithm = _HASH_LEN.get(len(digest))
        if algorithm is None or not re.fullmatch(r"[0-9a-f]+", digest):
            raise FormatError(f"{path}:{n}: {parts[0][:20]!r} is not an MD5, SHA-1 or SHA-256 in hex")
        if path.endswith(".hdb") and algorithm != "md5":
            raise FormatError(f"{path}:{n}: .hdb files hold MD5 hashes; put {algorithm} in a .hsb file")
        if path.endswith(".hsb") and algorithm == "md5":
            raise FormatError(f"{path}:{n}: .hsb files hold SHA-1 or SHA-256 hashes; put MD5 in a .hdb file")
        if not size.isdigit():
            raise FormatError(f"{path}:{n}: file size {size!r} is not a number")
        if not _SIG_NAME.fullmatch(name):
            raise FormatError(
                f"{path}:{n}: signature name {name!r} may hold only letters, digits, '.', '_', '-'"
            )
        sigs.append(
            HashSignature(id=name, algorithm=algorithm, hash=digest, size=int(size), file=path, meta=meta)
        )
    missing = [k for k in REQUIRED_META if k != "id" and not meta.get(k)]
    if sigs and missing:
        raise FormatError(f"{path}: missing '# key: value' metadata headers: {', '.join(missing)}")
    return sigs


def load_rules(files: Sequence[SnapshotFile], *, strict: bool = True) -> RuleSet:
    """Every rule of a rule tree, checked: valid sources, required metadata, ids unique across the tree.

    ``strict=False`` (the auditor) turns source problems into :class:`Problem` entries instead of errors.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    yara_rules: list[YaraRule] = []
    hashes: list[HashSignature] = []
    yara_files: dict[str, str] = {}
    settings = TreeSettings()
    for f in sorted((f for f in files if f.kind == FILE), key=lambda f: f.path):
        if f.path == SETTINGS_FILE:
            settings = TreeSettings.from_toml(f.data)
            continue
        if not f.path.endswith((".yar", ".yara", ".hdb", ".hsb")):
            continue
        try:
            text = f.data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{f.path} is not UTF-8") from e
        if f.path.endswith((".yar", ".yara")):
            yara_files[f.path] = text
            rules, probs, warns = parse_yara_file(f.path, text, strict=strict)
            yara_rules.extend(rules)
            problems.extend(probs)
            warnings.extend(warns)
        else:
            hashes.extend(parse_hash_file(f.path, text))
    duplicates = duplicate_names(yara_rules)
    if strict and duplicates:
        p = duplicates[0]
        raise FormatError(f"{p.file}: rule {p.rule}: {p.message}")
    problems.extend(duplicates)
    seen: dict[str, str] = {}
    every: list[YaraRule | HashSignature] = [*yara_rules, *hashes]
    for r in every:
        if r.id in seen:
            raise FormatError(f"rule id {r.id} is used twice ({seen[r.id]} and {r.file})")
        seen[r.id] = r.file
    if not seen and strict:
        raise FormatError("the rule tree holds no YARA rule and no hash signature")
    return RuleSet(
        yara=tuple(yara_rules),
        hashes=tuple(hashes),
        yara_files=yara_files,
        problems=tuple(problems),
        warnings=tuple(warnings),
        settings=settings,
    )


def duplicate_names(rules: Sequence[YaraRule]) -> list[Problem]:
    """A ``duplicate-name`` problem for every rule whose name an earlier rule of the tree (in path order)
    already has: the database compiles every file into one namespace, where a name can be defined once."""
    first: dict[str, YaraRule] = {}
    out = []
    for r in rules:
        earlier = first.setdefault(r.name, r)
        if earlier is not r:
            where = "earlier in this file" if earlier.file == r.file else f"in {earlier.file}"
            out.append(
                Problem(
                    file=r.file,
                    rule=r.name,
                    check="duplicate-name",
                    message=f"rule name {r.name} is already defined {where} (line {earlier.lines[0]})",
                )
            )
    return out
