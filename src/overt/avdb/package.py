"""The database artifact: one deterministic archive per database version.

``<name>-<version>.avdb`` is a gzip (mtime 0, level 9) of a canonical tar (:mod:`overt.source.snapshot`) with::

    manifest.json        format, name, version (monotonic), per-rule id/kind/version/digest/file, per-file
                         sha256, yara-x version, whether compiled rules are included
    yara/<path>          every YARA source file, as escrowed
    clamav/<name>.hdb    MD5 hash signatures, ClamAV line format, sorted, no headers (clamscan -d reads them)
    clamav/<name>.hsb    SHA-1/SHA-256 hash signatures, likewise
    compiled/rules.yarx  yara-x's serialised rules, only if two compilations in separate build sandboxes gave the
                         same bytes (checked at every build, :mod:`overt.avdb.compile`); otherwise endpoints
                         compile from source

The database digest is the SHA-256 of the archive, which is what provenance signs and endpoints check.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import yara_x

from overt import jsonio
from overt.avdb.rules import HASH, YARA, HashSignature, RuleSet, load_rules, new_compiler
from overt.errors import FormatError, VerificationError
from overt.source.snapshot import FILE, SnapshotFile, canonical_tar, read_tar

FORMAT = "overt-avdb/1"
MTIME = 315_532_800
COMPILED = "compiled/rules.yarx"
MAX_DATABASE = 1 << 30


def yara_x_version() -> str:
    return package_version("yara-x")


def compile_sources(sources: Mapping[str, str]) -> yara_x.Rules:
    compiler = new_compiler()
    for path, text in sorted(sources.items()):
        compiler.add_source(text, origin=path)
    return compiler.build()


def serialise(sources: dict[str, str]) -> bytes:
    out = io.BytesIO()
    compile_sources(sources).serialize_into(out)
    return out.getvalue()


@dataclass(frozen=True, slots=True, kw_only=True)
class Database:
    name: str
    version: int
    manifest: Mapping[str, Any]
    files: Mapping[str, bytes]
    digest: str

    @property
    def yara_sources(self) -> dict[str, str]:
        return {p.removeprefix("yara/"): d.decode() for p, d in self.files.items() if p.startswith("yara/")}

    @property
    def compiled(self) -> bytes | None:
        return self.files.get(COMPILED)

    def hash_lines(self) -> list[str]:
        out: list[str] = []
        for p, d in sorted(self.files.items()):
            if p.startswith("clamav/"):
                out.extend(d.decode().splitlines())
        return out

    def rules(self) -> RuleSet:
        """The database's rules (hash signatures without their source headers, which databases do not ship)."""
        sources = [
            SnapshotFile(path=p, kind=FILE, data=d) for p, d in self.files.items() if p.startswith("yara/")
        ]
        yara = load_rules(sources, strict=False)
        hashes = []
        for p, d in sorted(self.files.items()):
            if p.startswith("clamav/"):
                for line in d.decode().splitlines():
                    digest, size, name = line.split(":")[:3]
                    algorithm = {32: "md5", 40: "sha1", 64: "sha256"}[len(digest)]
                    hashes.append(
                        HashSignature(id=name, algorithm=algorithm, hash=digest, size=int(size), file=p)
                    )
        return RuleSet(yara=yara.yara, hashes=tuple(hashes), yara_files=yara.yara_files)


def _hash_files(rules: RuleSet, name: str) -> dict[str, bytes]:
    out = {}
    for ext, algs in ((".hdb", ("md5",)), (".hsb", ("sha1", "sha256"))):
        lines = sorted(h.line for h in rules.hashes if h.algorithm in algs)
        if lines:
            out[f"clamav/{name}{ext}"] = ("\n".join(lines) + "\n").encode()
    return out


def make_manifest(files: Mapping[str, bytes], *, name: str, version: int) -> bytes:
    """The manifest, derived from the files (so a delta never needs to carry it)."""
    rules = Database(name=name, version=version, manifest={}, files=dict(files), digest="").rules()
    entries = [
        {"id": r.id, "kind": YARA, "version": r.version, "digest": r.digest, "file": r.file}
        for r in rules.yara
    ]
    entries += [
        {"id": h.id, "kind": HASH, "version": h.version, "digest": h.digest, "file": h.file}
        for h in rules.hashes
    ]
    manifest = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "yara_x": yara_x_version(),
        "compiled": COMPILED in files,
        "rules": sorted(entries, key=lambda e: e["id"]),
        "files": {p: hashlib.sha256(d).hexdigest() for p, d in sorted(files.items())},
    }
    # One rule per line, so that line-based tools (and reviewers) see rule-level changes.
    return (json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def pack(files: Mapping[str, bytes], *, name: str, version: int) -> bytes:
    """The archive for ``files`` (without manifest.json, which is derived and added here)."""
    if version < 1:
        raise FormatError("database version must be a positive integer")
    everything = dict(files)
    everything["manifest.json"] = make_manifest(files, name=name, version=version)
    tar = canonical_tar([SnapshotFile(path=p, kind=FILE, mtime=MTIME, data=d) for p, d in everything.items()])
    return gzip.compress(tar, compresslevel=9, mtime=0)


def build_database(rules: RuleSet, *, name: str, version: int, compiled: bytes | None) -> bytes:
    """The deterministic archive for ``rules`` (same rules, name, version → same bytes)."""
    files: dict[str, bytes] = {f"yara/{p}": t.encode() for p, t in rules.yara_files.items()}
    files.update(_hash_files(rules, name))
    if compiled is not None:
        files[COMPILED] = compiled
    return pack(files, name=name, version=version)


def read_database(data: bytes) -> Database:
    """Parse an archive and check every file against the manifest."""
    if len(data) > MAX_DATABASE:
        raise FormatError("database archive is too large")
    try:
        tar = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise FormatError(f"database is not a gzip archive: {e}") from e
    files = {f.path: f.data for f in read_tar(tar, strip_top=False) if f.kind == FILE}
    if "manifest.json" not in files:
        raise FormatError("database has no manifest.json")
    manifest = jsonio.load_object(files.pop("manifest.json"), "database manifest", max_size=MAX_DATABASE)
    if manifest.get("format") != FORMAT:
        raise FormatError(f"database format is {manifest.get('format')!r}, expected {FORMAT!r}")
    listed = manifest.get("files")
    if not isinstance(listed, dict) or set(listed) != set(files):
        raise VerificationError("database files do not match its manifest")
    for p, d in files.items():
        if hashlib.sha256(d).hexdigest() != listed[p]:
            raise VerificationError(f"database file {p} does not match its manifest digest")
    name, ver = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not isinstance(ver, int) or isinstance(ver, bool):
        raise FormatError("database manifest needs a string name and an integer version")
    return Database(
        name=name, version=ver, manifest=manifest, files=files, digest=hashlib.sha256(data).hexdigest()
    )
