"""Evidence bundles: many small evidence files in one, so an endpoint reads its evidence in a few round trips.

A bundle is transport only. It carries, byte for byte, files of the evidence layout
(:mod:`overt.distribute.evidence`, :mod:`overt.distribute.verdicts`), under the paths they have there::

    evidence/metadata/<N>.timestamp.json/bundle.json   the statement and tlog-proof of timestamp N, of the
                                                       snapshot it names, of the targets and release
                                                       versions that snapshot lists, and of the root
    evidence/targets/<target path>/bundle.json         the target's provenance and each verdict published
                                                       when it was written: envelope and tlog-proof each

as ``{"files": {"<path>": "<base64>"}}``. It holds only files that never change once written (an entry, its
proof); the verdict index, which grows, is never bundled and is always read on its own. An endpoint asks for
every file by its path as before (:func:`bundled`): a file the bundle carries is taken from it, any other is
read on its own, and every file is checked the same way wherever it came from. So a bundle that is missing,
stale, malformed or lying costs round trips or fails a check, and cannot make a check pass. Bins are not
bundled: an update reads one or two of thousands. Offline (``overt verify --evidence DIR``) reads the files.

Owns the format and the paths; which files mean what is left to the modules that check them.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from overt import jsonio
from overt.atomic import atomic_write
from overt.distribute.evidence import EvidenceSource, metadata_evidence, target_evidence
from overt.distribute.layout import metadata_name
from overt.errors import Error, FormatError
from overt.tlog.client import MAX_BUNDLE_BYTES

BUNDLE = "bundle.json"
MAX_FILES = 2 * 1000 + 8  # a provenance and up to MAX_VERDICTS verdicts, two files each


def metadata_bundle_path(timestamp: str) -> str:
    """The bundle of the metadata evidence the timestamp file ``timestamp`` (``7.timestamp.json``) makes
    current."""
    return f"evidence/metadata/{timestamp}/{BUNDLE}"


def target_bundle_path(path: str) -> str:
    """The bundle of the evidence of the target ``path`` (its provenance and verdicts)."""
    return f"evidence/targets/{path}/{BUNDLE}"


def _scope(bundle: str) -> str:
    """The part of the evidence layout a bundle may carry files of: what is beside it."""
    if bundle.startswith("evidence/metadata/"):
        return "evidence/metadata/"
    return bundle.removesuffix(BUNDLE)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceBundle:
    """Evidence files under their layout paths, relative to ``public/tuf/``."""

    files: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if len(self.files) > MAX_FILES:
            raise FormatError(f"an evidence bundle holds at most {MAX_FILES} files")
        paths = [p for p, _ in self.files]
        if len(set(paths)) != len(paths):
            raise FormatError("an evidence bundle names a file twice")
        for p in paths:
            parts = p.split("/")
            if p.startswith("/") or any(x in ("", ".", "..") for x in parts) or parts[0] != "evidence":
                raise FormatError(f"an evidence bundle names {p[:200]!r}, not a path of the evidence layout")

    @classmethod
    def from_bytes(cls, data: bytes) -> EvidenceBundle:
        obj = jsonio.load_object(data, "evidence bundle", max_size=MAX_BUNDLE_BYTES)
        listed = jsonio.opt_dict(obj, "files", "evidence bundle")
        files = []
        for path, b64 in listed.items():
            if not isinstance(b64, str):
                raise FormatError("evidence bundle: each file must be a base64 string")
            try:
                files.append((path, base64.b64decode(b64, validate=True)))
            except binascii.Error as e:
                raise FormatError(f"evidence bundle: {path[:200]!r} is not base64: {e}") from e
        return cls(files=tuple(files))

    def to_bytes(self) -> bytes:
        return jsonio.dump({"files": {p: base64.b64encode(d).decode() for p, d in self.files}}) + b"\n"


# --- writing (the repository) ------------------------------------------------------------------------------


def write_bundle(public: Path, bundle: str, paths: Iterable[str]) -> int:
    """Write the bundle ``bundle`` under ``public`` with each of ``paths`` that exists there (a proof still
    pending is left out, and read on its own until then); how many files it holds."""
    files = []
    for rel in dict.fromkeys(paths):
        try:
            files.append((rel, (public / rel).read_bytes()))
        except FileNotFoundError:
            continue
    atomic_write(public / bundle, EvidenceBundle(files=tuple(files)).to_bytes())
    return len(files)


def write_metadata_bundle(public: Path, *, timestamp: int, names: Iterable[str]) -> int:
    """The bundle of timestamp version ``timestamp``: the entries and proofs of the metadata ``names``."""
    paths = [f for n in names for f in (metadata_evidence(n).entry, metadata_evidence(n).proof)]
    return write_bundle(public, metadata_bundle_path(metadata_name("timestamp", timestamp)), paths)


def write_target_bundle(public: Path, path: str) -> int:
    """The bundle of target ``path``: its provenance and every verdict published beside it, entry and proof."""
    base = public / "evidence" / "targets" / path
    files = target_evidence(path)
    found = [files.entry, files.proof]
    vsa = base / "vsa"
    if vsa.is_dir():
        for f in sorted(vsa.glob("*/vsa.*")):
            if f.name in ("vsa.dsse.json", "vsa.tlog-proof"):
                found.append(str(f.relative_to(public)))
    return write_bundle(public, target_bundle_path(path), found)


# --- reading (an endpoint) ---------------------------------------------------------------------------------


class BundleSet:
    """The files some bundles carry (an :data:`~overt.distribute.evidence.EvidenceSource` that never reads
    anything else): a path is looked up in the bundles whose scope holds it, each bundle read once, when a
    path in its scope is first asked for."""

    def __init__(self, get: EvidenceSource, bundles: Iterable[str]) -> None:
        self._get = get
        self._bundles = list(dict.fromkeys(bundles))
        self._read: dict[str, dict[str, bytes]] = {}
        self._lock = threading.Lock()

    def _files(self, bundle: str) -> dict[str, bytes]:
        with self._lock:
            if bundle not in self._read:
                self._read[bundle] = _read(self._get, bundle)
            return self._read[bundle]

    def __call__(self, rel: str) -> bytes | None:
        for bundle in self._bundles:
            if rel.startswith(_scope(bundle)):
                data = self._files(bundle).get(rel)
                if data is not None:
                    return data
        return None


def _read(get: EvidenceSource, bundle: str) -> dict[str, bytes]:
    """The files of ``bundle`` in its scope; none if it is missing, unreadable or malformed (transport only:
    the files are then read one by one, and checked the same)."""
    try:
        raw = get(bundle)
        parsed = EvidenceBundle.from_bytes(raw) if raw is not None else EvidenceBundle(files=())
    except Error:
        return {}
    scope = _scope(bundle)
    return {p: d for p, d in parsed.files if p.startswith(scope)}
