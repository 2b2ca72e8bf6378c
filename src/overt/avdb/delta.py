"""Delta updates between consecutive database versions, and the rule-level diff reviewers read.

A delta is transport only, never what is signed. It carries, for every file that changed between version N-1
and N (the derived ``manifest.json`` and compiled rules excepted), line operations against the old file: keep
a range of old lines, or insert new ones (for hash-signature files, which are sorted sets of lines: the removed
lines by position and the added ones column by column, digests, sizes, names); plus the new version's name
and version, and whether it carries compiled rules. Applying it rebuilds the files, recompiles the rules if
needed, packs the archive deterministically (:func:`overt.avdb.package.pack`) and checks the result's SHA-256
against the digest the signed, logged provenance of version N names. Any mismatch (another yara-x or zlib on
the endpoint, a damaged delta, a gap in the chain) raises, and the caller falls back to the full database.

What ``overt avdb diff`` and ``overt avdb delta`` report is :class:`RuleDiff` and :class:`SavedDelta`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import lzma
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt import jsonio
from overt.avdb.audit import audit
from overt.avdb.findings import Finding
from overt.avdb.package import COMPILED, Database, pack, read_database, serialise
from overt.errors import FormatError, VerificationError

FORMAT = "overt-avdb-delta/1"
MAX_DELTA = 256 << 20
MAX_DELTA_TEXT = 256 << 20  # decompressed: a small delta may not expand into an unbounded one (an xz bomb)


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8").splitlines(keepends=True)


def _ops(old: list[str], new: list[str]) -> list[Any]:
    """Line operations, relative so they compress: n >= 0 copies the next n old lines, n < 0 skips -n old
    lines, a string inserts new text."""
    ops: list[Any] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(i2 - i1)
            continue
        if i2 > i1:
            ops.append(i1 - i2)
        if j2 > j1:
            ops.append("".join(new[j1:j2]))
    return ops


def _set_ops(before: bytes, after: bytes) -> dict[str, Any]:
    """Hash signature files are sorted sets of lines: carry the added lines and the gaps between removed ones."""
    old, new = before.decode().splitlines(), after.decode().splitlines()
    old_set, new_set = set(old), set(new)
    removed = [i for i, line in enumerate(old) if line not in new_set]
    gaps = [b - a for a, b in zip([-1, *removed], removed, strict=False)]
    # Added lines go in signature-name order (names are often sequential, so they compress); applying re-sorts.
    added = sorted(new_set - old_set, key=_name_key)
    if added and all(line.count(":") >= 2 for line in added):
        # Column by column (digests, sizes, the rest): the compressor then meets like with like.
        fields = [line.split(":", 2) for line in added]
        return {"columns": ["\n".join(f[k] for f in fields) for k in range(3)], "remove": gaps}
    return {"add": "\n".join(added), "remove": gaps}


def _added_lines(change: dict[str, Any]) -> list[str]:
    add, columns = change.get("add"), change.get("columns")
    if isinstance(add, str) and columns is None:
        return add.split("\n") if add else []
    if (
        add is None
        and isinstance(columns, list)
        and len(columns) == 3
        and all(isinstance(c, str) for c in columns)
    ):
        split = [c.split("\n") for c in columns]
        if len({len(c) for c in split}) == 1:
            return [":".join(f) for f in zip(*split, strict=True)]
    raise FormatError("delta holds a malformed signature-set change")


def _name_key(line: str) -> list[Any]:
    name = line.split(":")[2] if line.count(":") >= 2 else line
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _apply_set_ops(before: bytes, change: dict[str, Any]) -> bytes:
    old = before.decode().splitlines()
    gaps = change.get("remove")
    if not isinstance(gaps, list) or not all(isinstance(g, int) and g > 0 for g in gaps):
        raise FormatError("delta holds a malformed signature-set change")
    removed, at = set(), -1
    for g in gaps:
        at += g
        removed.add(at)
    if removed and max(removed) >= len(old):
        raise FormatError("delta removes lines the old file does not have")
    lines = sorted([line for i, line in enumerate(old) if i not in removed] + _added_lines(change))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def make_delta(old: Database, new: Database) -> bytes:
    """The patch from ``old`` to ``new`` (xz: a JSON header, then the inserted texts)."""
    if old.name != new.name:
        raise FormatError(f"cannot make a delta between databases {old.name} and {new.name}")
    files: dict[str, Any] = {}
    for path in sorted(set(old.files) | set(new.files)):
        if path == COMPILED:
            continue
        before, after = old.files.get(path), new.files.get(path)
        if before == after:
            continue
        if after is None:
            files[path] = None
        elif before is None:
            files[path] = [after.decode("utf-8")]
        elif path.startswith("clamav/"):
            files[path] = _set_ops(before, after)
        else:
            files[path] = _ops(_lines(before), _lines(after))
    doc = {
        "format": FORMAT,
        "name": new.name,
        # Digest prefixes identify the versions; trust comes only from the signed digest the result must match.
        "from": {"version": old.version, "sha256": old.digest[:16]},
        "to": {"version": new.version, "sha256": new.digest[:16]},
        "compiled": new.compiled is not None,
        "files": files,
    }
    texts: list[str] = []
    doc["files"] = {path: _extract_texts(change, texts) for path, change in sorted(files.items())}
    # The JSON header, a NUL, then the inserted texts raw and NUL-separated (rule sources hold no NUL), so the
    # compressor sees the text itself rather than its JSON escaping.
    header = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return lzma.compress(header + b"\0" + "\0".join(texts).encode(), preset=9 | lzma.PRESET_EXTREME)


def _extract_texts(change: Any, texts: list[str]) -> Any:
    """Move inserted texts out of the header; ``null`` marks where the next text goes (files in path order)."""
    if isinstance(change, list):
        out: list[Any] = []
        for op in change:
            if isinstance(op, str):
                texts.append(op)
                out.append(None)
            else:
                out.append(op)
        return out
    if isinstance(change, dict) and "columns" in change:
        texts.extend(change["columns"])
        return {**change, "columns": [None] * len(change["columns"])}
    if isinstance(change, dict):
        texts.append(change["add"])
        return {**change, "add": None}
    return change


def _resolve_texts(change: Any, texts: Iterator[str]) -> Any:
    def take() -> str:
        try:
            return next(texts)
        except StopIteration:
            raise FormatError("delta refers to more texts than it carries") from None

    if isinstance(change, list):
        return [take() if op is None else op for op in change]
    if isinstance(change, dict) and isinstance(change.get("columns"), list):
        return {**change, "columns": [take() if c is None else c for c in change["columns"]]}
    if isinstance(change, dict) and "add" in change:
        return {**change, "add": take() if change["add"] is None else change["add"]}
    return change


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta:
    name: str
    from_version: int
    from_sha256: str
    to_version: int
    to_sha256: str
    compiled: bool
    files: dict[str, Any]

    @classmethod
    def from_bytes(cls, data: bytes) -> Delta:
        if len(data) > MAX_DELTA:
            raise FormatError("delta is too large")
        try:
            decompressor = lzma.LZMADecompressor()
            raw = decompressor.decompress(data, max_length=MAX_DELTA_TEXT + 1)
        except lzma.LZMAError as e:
            raise FormatError(f"not a delta: {e}") from e
        if len(raw) > MAX_DELTA_TEXT:
            raise FormatError(f"delta expands past {MAX_DELTA_TEXT >> 20} MiB")
        if not decompressor.eof or decompressor.unused_data:
            raise FormatError("not a delta: the xz stream is truncated or followed by other data")
        header, _, body = raw.partition(b"\0")
        doc = jsonio.load_object(header, "delta", max_size=1 << 30)
        try:
            stream = iter(body.decode("utf-8").split("\0"))
        except UnicodeDecodeError as e:
            raise FormatError("delta texts are not UTF-8") from e
        if doc.get("format") != FORMAT:
            raise FormatError(f"delta format is {doc.get('format')!r}, expected {FORMAT!r}")
        try:
            return cls(
                name=str(doc["name"]),
                from_version=int(doc["from"]["version"]),
                from_sha256=str(doc["from"]["sha256"]),
                to_version=int(doc["to"]["version"]),
                to_sha256=str(doc["to"]["sha256"]),
                compiled=bool(doc["compiled"]),
                files={
                    path: _resolve_texts(change, stream)
                    for path, change in sorted(dict(doc["files"]).items())
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FormatError(f"delta is missing fields: {e}") from e


def _apply_ops(old: list[str], ops: Sequence[Any]) -> str:
    out: list[str] = []
    at = 0
    for op in ops:
        if isinstance(op, str):
            out.append(op)
        elif isinstance(op, int) and not isinstance(op, bool) and at + abs(op) <= len(old):
            if op >= 0:
                out.extend(old[at : at + op])
            at += abs(op)
        else:
            raise FormatError("delta holds a malformed line operation")
    if at != len(old):
        raise FormatError("delta line operations do not cover the old file")
    return "".join(out)


def apply_delta(old_data: bytes, delta_data: bytes, expected_sha256: str, *, check: bool = True) -> bytes:
    """The version-N archive from version N-1 and a delta, checked against the trusted ``expected_sha256``
    (``check=False`` only for intermediate steps of a chain whose final result is checked)."""
    old = read_database(old_data)
    delta = Delta.from_bytes(delta_data)
    if not old.digest.startswith(delta.from_sha256) or delta.name != old.name:
        raise VerificationError("this delta does not start from the installed database")
    if check and not expected_sha256.startswith(delta.to_sha256):
        raise VerificationError("this delta does not lead to the database the provenance names")
    files = {p: d for p, d in old.files.items() if p != COMPILED}
    for path, change in delta.files.items():
        if change is None:
            files.pop(path, None)
        elif isinstance(change, dict) and path in files:
            files[path] = _apply_set_ops(files[path], change)
        elif isinstance(change, list) and path in files:
            files[path] = _apply_ops(_lines(files[path]), change).encode()
        elif isinstance(change, list) and len(change) == 1 and isinstance(change[0], str):
            files[path] = change[0].encode()
        else:
            raise FormatError(f"delta change for {path} is malformed")
    if delta.compiled:
        sources = {p.removeprefix("yara/"): d.decode() for p, d in files.items() if p.startswith("yara/")}
        files[COMPILED] = serialise(sources)
    data = pack(files, name=delta.name, version=delta.to_version)
    got = hashlib.sha256(data).hexdigest()
    if not check:
        if not got.startswith(delta.to_sha256):
            raise VerificationError("the patched database is not the version this delta names")
        return data
    if got != expected_sha256:
        raise VerificationError(
            "the patched database does not match its signed digest", expected=expected_sha256, got=got
        )
    return data


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleChange:
    rule_id: str
    change: str  # added, removed, changed
    old_version: str
    new_version: str
    diff: str
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "change": self.change,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "diff": self.diff,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleDiff:
    """The rule-level changes between two versions of database ``name`` (``overt avdb diff``)."""

    name: str
    from_version: int
    from_sha256: str
    to_version: int
    to_sha256: str
    changes: tuple[RuleChange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": {"version": self.from_version, "sha256": self.from_sha256},
            "to": {"version": self.to_version, "sha256": self.to_sha256},
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedDelta:
    """A delta written to ``path``: its size beside the size of the full database it stands in for."""

    path: Path
    size: int
    full_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"delta": str(self.path), "bytes": self.size, "full_bytes": self.full_size}


def rule_diff(old: Database, new: Database) -> list[RuleChange]:
    """Rule-level changes from ``old`` to ``new``, each with the audit findings of the new rule."""
    before, after = old.rules(), new.rules()
    report = audit(after, previous=before)
    by_rule: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule_id, []).append(f)
    old_by, new_by = before.by_id(), after.by_id()
    out = []
    for rid in sorted(set(old_by) | set(new_by)):
        a, b = old_by.get(rid), new_by.get(rid)
        if a is not None and b is not None and a.digest == b.digest:
            continue
        text_a = getattr(a, "text", getattr(a, "line", "")) if a is not None else ""
        text_b = getattr(b, "text", getattr(b, "line", "")) if b is not None else ""
        diff = "".join(
            difflib.unified_diff(
                text_a.splitlines(keepends=True),
                text_b.splitlines(keepends=True),
                f"{old.version}/{rid}",
                f"{new.version}/{rid}",
            )
        )
        out.append(
            RuleChange(
                rule_id=rid,
                change="added" if a is None else "removed" if b is None else "changed",
                old_version=a.version if a is not None else "",
                new_version=b.version if b is not None else "",
                diff=diff,
                findings=tuple(by_rule.get(rid, [])),
            )
        )
    return out


def diff_databases(*, old: Database, new: Database) -> RuleDiff:
    """:func:`rule_diff` from ``old`` to ``new``, with the two versions it runs between."""
    return RuleDiff(
        name=old.name,
        from_version=old.version,
        from_sha256=old.digest,
        to_version=new.version,
        to_sha256=new.digest,
        changes=tuple(rule_diff(old, new)),
    )


def write_delta(*, old: bytes, new: bytes, out: Path) -> SavedDelta:
    """Write the delta from the database archive ``old`` to ``new`` to ``out``."""
    data = make_delta(read_database(old), read_database(new))
    out.write_bytes(data)
    return SavedDelta(path=out, size=len(data), full_size=len(new))
