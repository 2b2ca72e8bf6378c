"""The versions of a signed, versioned registry in a home's own log, found by scanning the log's entries once.

Two registries are issued this way: the builder registry (``builder-registry/v1``, :mod:`overt.keys.builders`)
and the jurisdiction registry (``residency-registry/v1``, :mod:`overt.residency.registry_store`). A home must
not trust such a registry only because ``registry.dsse.json`` holds one: an older version, validly signed by
the release key, can be copied over it (``cp v2.dsse.json registry.dsse.json``) and would bring back a builder
a later version removed, or place a tenant where the promise no longer does. Every version is a log entry, so
the log says which is newest. :func:`scan` finds the logged envelope of every version signed by a trusted
release key (a later entry wins between equal versions); :class:`overt.keys.versioned.VersionedStore` trusts a
file only if it is byte-identical to one of those envelopes.

It also finds the highest version signed by any release key the home holds or has published, in any
jurisdiction (``own``): a new version must be newer than that one, so that a home that forgot a version it
logged (its release key's record moved away, its jurisdiction switched) never issues that version number a
second time. Statements signed by keys the home never held do not count: ``POST /add`` takes entries from
anyone, and a forged statement with a huge version must not freeze the registry.

Which entries count, and why this is sound:

1. **The committed tree, not the published one.** The scan reads the database's committed tree size, which
   includes entries appended but not yet published (a witness quorum unmet): such an entry is appended and
   the registry file saved all the same, so "newest in the log" and "newest saved" stay equal. (Through a
   running ``overt serve``, the server's appends are in the same database.) Reading bundle files beyond the
   committed size would be unsound: a crash before the commit leaves files for entries that were never
   acknowledged and that the next batch overwrites.
2. **The database is checked against what the log signed.** A database restored from an older backup is
   behind the published checkpoint and would hide newer versions; :func:`overt.tlog.guard.check_database`
   refuses it (as every append does) before anything is scanned.
3. **Every scanned bundle is checked against the tree.** The tiles were checked against the committed root
   when the log was opened (:class:`overt.tlog.sequencer.TileLog`); each scanned entry's leaf hash must
   match its level-0 tile, so an edited bundle is an error, never a hidden version.
4. **The mark is a cache, checked before use.** The mark (``<home>/builders-scan.json``,
   ``<home>/residency/registry-scan.json``) records the scanned size, the tree's root at that size, the keys
   trusted and the versions found. It is used only if the current tree still has that root at that size (the
   scanned prefix is unchanged) and the same keys are trusted; otherwise, or if it is missing or unreadable,
   the whole log is scanned again. It is not signed: it is as trusted as the rest of the home's own state
   (``config.toml``, ``keys/registry/``). Whoever can rewrite those can also forge a mark that names an older
   version as the newest; what the scan stops is a public file copied, restored or altered. (The conveyor's
   jurisdiction is pinned by the log key's record, :class:`overt.home.Home`; an operator who edits that
   record too is seen only in the log's statements.)
5. **A cheap filter first.** Only entries whose bytes contain the base64 of the registry's type (e.g.
   ``builder-registry/v1``, in any of its three alignments) are parsed; the others cannot be a registry overt
   wrote, since overt writes payloads in standard base64 of canonical JSON. An envelope re-encoded by hand to
   dodge the filter must still carry a release key's signature, and its holder can sign any registry anyway;
   hiding an older copy gains nothing, since the highest version wins. (Hiding a version from ``own`` by
   re-encoding it takes a hand-made log entry; overt's own commands never write one.)

Does not judge or parse registries beyond their version (that is each registry's own module), and does not
read the published files (:mod:`overt.keys.versioned`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key

from overt.atomic import atomic_write
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.errors import FormatError, StorageError, VerificationError
from overt.tlog import guard
from overt.tlog.log import LocalLog
from overt.tlog.merkle import EMPTY_ROOT, hash_range, leaf_hash
from overt.tlog.tiles import TILE_WIDTH, decode_bundle, entries_path, tile_width


def base64_forms(text: bytes) -> tuple[bytes, ...]:
    """The base64 of ``text`` as it appears inside a longer base64 string, for each of the three offsets."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + text)
        first = (offset * 4 + 2) // 3  # characters that also encode the bytes before
        last = ((offset + len(text)) // 3) * 4  # characters that also encode the bytes after
        forms.append(encoded[first:last])
    return tuple(forms)


@dataclass(frozen=True, slots=True)
class RegistryPredicate:
    """The predicate type of one registry's statements, and the filter that finds them in a log (step 5)."""

    predicate_type: str
    markers: tuple[bytes, ...] = field(init=False)

    def __post_init__(self) -> None:
        name = self.predicate_type.rsplit("/attestation/", 1)[-1]  # e.g. builder-registry/v1
        object.__setattr__(self, "markers", base64_forms(name.encode()))

    def version(self, entry: bytes, keys: Sequence[Key]) -> int | None:
        """The version of the registry ``entry`` carries if one of ``keys`` signed it, else None."""
        if not keys or not any(marker in entry for marker in self.markers):
            return None
        try:
            envelope = Envelope.from_bytes(entry)
            if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO or not envelope.signatures:
                return None
            if Statement.from_bytes(envelope.payload).predicate_type != self.predicate_type:
                return None
            version = verify_statement(envelope, keys).predicate.get("version")
        except (FormatError, VerificationError):
            return None  # not a registry this home's release keys signed: it counts for nothing
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            return None
        return version


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedVersion:
    """A registry version as the log holds it: its number, its log index and the SHA-256 of the entry."""

    version: int
    index: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "index": self.index, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, doc: Any) -> LoggedVersion:
        """From a scan mark; raises ValueError, KeyError or TypeError for anything else."""
        return cls(version=_count(doc["version"]), index=_count(doc["index"]), sha256=str(doc["sha256"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedVersions:
    """What the log holds: every version a trusted key signed (by number; a later entry wins between equal
    numbers), and the newest any of the home's own release keys signed, trusted or not (``own``; the same
    entry as :attr:`newest` when they agree)."""

    versions: tuple[LoggedVersion, ...] = ()
    own: LoggedVersion | None = None

    @property
    def newest(self) -> LoggedVersion | None:
        return self.versions[-1] if self.versions else None

    def get(self, version: int) -> LoggedVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    def with_entry(self, found: LoggedVersion, *, trusted: bool) -> LoggedVersions:
        own = self.own if self.own is not None and self.own.version > found.version else found
        if not trusted:
            return LoggedVersions(versions=self.versions, own=own)
        kept = [v for v in self.versions if v.version != found.version]
        return LoggedVersions(versions=tuple(sorted((*kept, found), key=lambda v: v.version)), own=own)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanMark:
    """How far the scan got: the tree size and its root, the keys it used, and the versions found."""

    tree_size: int
    root: bytes
    keys: str  # SHA-256 of the trusted and the own keyids: other keys, another scan
    found: LoggedVersions

    def to_bytes(self) -> bytes:
        doc = {
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "keys": self.keys,
            "versions": [v.to_dict() for v in self.found.versions],
            "own": None if self.found.own is None else self.found.own.to_dict(),
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def read(cls, path: Path) -> ScanMark | None:
        """The mark at ``path``, or None if it is missing or not a mark (then the whole log is scanned)."""
        try:
            doc = json.loads(path.read_bytes())
            versions = tuple(LoggedVersion.from_dict(v) for v in doc["versions"])
            own = None if doc["own"] is None else LoggedVersion.from_dict(doc["own"])
            mark = cls(
                tree_size=_count(doc["tree_size"]),
                root=bytes.fromhex(doc["root"]),
                keys=str(doc["keys"]),
                found=LoggedVersions(versions=versions, own=own),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return mark if len(mark.root) == 32 else None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("not a count")
    return value


def logged_entries(log: LocalLog, start: int, tree_size: int) -> Iterator[tuple[int, bytes]]:
    """(index, entry) for ``[start, tree_size)``, each bundle checked against its level-0 tile (step 3).

    Raises:
        StorageError: a bundle is damaged, or holds an entry its tile does not commit to.
    """
    reader = log.tiles.reader(tree_size)
    for bundle in range(start // TILE_WIDTH, (tree_size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = tile_width(0, bundle, tree_size)
        path = entries_path(bundle, width)
        try:
            entries = decode_bundle(log.tiles.read(path), width)
        except FormatError as e:
            raise StorageError(f"log file {path} is damaged: {e}; run 'overt log fsck'") from e
        hashes = reader.tile(0, bundle)
        for offset, entry in enumerate(entries):
            if leaf_hash(entry) != hashes[offset]:
                raise StorageError(
                    f"log file {path} holds an entry that is not the one its tile commits to (index "
                    f"{bundle * TILE_WIDTH + offset}); run 'overt log fsck'"
                )
            index = bundle * TILE_WIDTH + offset
            if index >= start:
                yield index, entry


def _keys_digest(keys: Sequence[Key], own: Sequence[Key]) -> str:
    text = "\n".join(sorted(k.keyid for k in keys)) + "\n/\n" + "\n".join(sorted(k.keyid for k in own))
    return hashlib.sha256(text.encode()).hexdigest()


def scan(
    log: LocalLog,
    predicate: RegistryPredicate,
    keys: Sequence[Key],
    mark_path: Path,
    *,
    own: Sequence[Key] = (),
) -> LoggedVersions:
    """Every version of ``predicate``'s registry ``keys`` signed in ``log``, and the newest ``keys`` or ``own``
    signed, scanning only what the mark at ``mark_path`` has not covered.

    Raises:
        StorageError: the database is behind what the log signed, or a scanned file is damaged.
    """
    state = log.tiles.state
    reader = log.tiles.reader()  # the current tree's tiles, not stale partial tiles of older sizes

    def root_at(size: int) -> bytes:
        return hash_range(0, size, reader.node) if size else EMPTY_ROOT

    guard.check_database(state, log.heads(), root_at)  # step 2
    every = [*keys, *(k for k in own if k.keyid not in {t.keyid for t in keys})]
    digest = _keys_digest(keys, every)
    mark = ScanMark.read(mark_path)
    start, found = 0, LoggedVersions()
    if (
        mark is not None
        and mark.keys == digest
        and mark.tree_size <= state.tree_size
        and root_at(mark.tree_size) == mark.root
    ):
        start, found = mark.tree_size, mark.found  # step 4: the prefix is unchanged
    for index, entry in logged_entries(log, start, state.tree_size):
        version = predicate.version(entry, every)
        if version is not None:
            logged = LoggedVersion(version=version, index=index, sha256=hashlib.sha256(entry).hexdigest())
            found = found.with_entry(logged, trusted=predicate.version(entry, keys) is not None)
    updated = ScanMark(tree_size=state.tree_size, root=state.root_hash, keys=digest, found=found)
    if updated != mark:
        atomic_write(mark_path, updated.to_bytes(), durable=False)
    return found
