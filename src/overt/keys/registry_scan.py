"""The newest builder registry in a home's own log, found by scanning the log's entries once.

A home must not trust a builder registry only because ``public/builders/registry.dsse.json`` holds one: an
older version, validly signed by the release key, can be copied over it (``cp v2.dsse.json registry.dsse.json``)
and would bring back a builder a later version removed. Every version is a log entry, so the log says which is
newest. :func:`scan` finds the logged envelope of the highest version signed by a trusted release key (a later
entry wins between equal versions); :class:`overt.keys.builders.BuilderStore` trusts the file only if it is
byte-identical to that envelope.

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
4. **The mark is a cache, checked before use.** ``<home>/builders-scan.json`` records the scanned size, the
   tree's root at that size, the keys trusted and the newest version found. It is used only if the current
   tree still has that root at that size (the scanned prefix is unchanged) and the same keys are trusted;
   otherwise, or if it is missing or unreadable, the whole log is scanned again. It is not signed: it is
   as trusted as the rest of the home's own state (``config.toml``, ``keys/registry/``). Whoever can
   rewrite those can also forge a mark that names an older version as the newest; what the scan stops is a
   public file copied, restored or altered. (The conveyor's jurisdiction is pinned by the log key's record,
   :class:`overt.home.Home`; an operator who edits that record too is seen only in the log's statements.)
5. **A cheap filter first.** Only entries whose bytes contain the base64 of ``builder-registry/v1`` (in any
   of its three alignments) are parsed; the others cannot be a registry overt wrote, since overt writes
   payloads in standard base64 of canonical JSON. An envelope re-encoded by hand to dodge the filter must
   still carry a release key's signature, and its holder can sign any registry anyway; hiding an older
   copy gains nothing, since the highest version wins. (Hiding a version from ``own`` by re-encoding it
   takes a hand-made log entry; overt's own commands never write one.)

Does not judge or parse registries beyond their version (that is :mod:`overt.keys.builders`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key

from overt.atomic import atomic_write
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.errors import FormatError, StorageError, VerificationError
from overt.keys.jurisdiction import BUILDER_REGISTRY_V1
from overt.tlog import guard
from overt.tlog.log import LocalLog
from overt.tlog.merkle import EMPTY_ROOT, hash_range, leaf_hash
from overt.tlog.tiles import TILE_WIDTH, decode_bundle, entries_path, tile_width


def _base64_forms(text: bytes) -> tuple[bytes, ...]:
    """The base64 of ``text`` as it appears inside a longer base64 string, for each of the three offsets."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + text)
        first = (offset * 4 + 2) // 3  # characters that also encode the bytes before
        last = ((offset + len(text)) // 3) * 4  # characters that also encode the bytes after
        forms.append(encoded[first:last])
    return tuple(forms)


_MARKERS = _base64_forms(BUILDER_REGISTRY_V1.rsplit("/attestation/", 1)[1].encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedRegistry:
    """The newest builder registry in the log: its version, its log index and the SHA-256 of the entry."""

    version: int
    index: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "index": self.index, "sha256": self.sha256}


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryScan:
    """What the log holds: the newest registry a trusted key signed (``newest``), and the newest any of the
    home's own release keys signed, trusted or not (``own``; the same entry when they agree)."""

    newest: LoggedRegistry | None
    own: LoggedRegistry | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanMark:
    """How far the scan got: the tree size and its root, the keys it used, and the newest versions found."""

    tree_size: int
    root: bytes
    keys: str  # SHA-256 of the trusted and the own keyids: other keys, another scan
    newest: LoggedRegistry | None
    own: LoggedRegistry | None

    def to_bytes(self) -> bytes:
        doc = {
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "keys": self.keys,
            "newest": None if self.newest is None else self.newest.to_dict(),
            "own": None if self.own is None else self.own.to_dict(),
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def read(cls, path: Path) -> ScanMark | None:
        """The mark at ``path``, or None if it is missing or not a mark (then everything is scanned)."""
        try:
            doc = json.loads(path.read_bytes())
            mark = cls(
                tree_size=_count(doc["tree_size"]),
                root=bytes.fromhex(doc["root"]),
                keys=str(doc["keys"]),
                newest=_logged(doc["newest"]),
                own=_logged(doc["own"]),  # a mark from before ``own`` was kept: KeyError, a full scan
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return mark if len(mark.root) == 32 else None


def _logged(doc: Any) -> LoggedRegistry | None:
    if doc is None:
        return None
    return LoggedRegistry(
        version=_count(doc["version"]), index=_count(doc["index"]), sha256=str(doc["sha256"])
    )


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("not a count")
    return value


def registry_version(entry: bytes, keys: Sequence[Key]) -> int | None:
    """The version of the builder registry ``entry`` carries if one of ``keys`` signed it, else None."""
    if not keys or not any(marker in entry for marker in _MARKERS):
        return None
    try:
        envelope = Envelope.from_bytes(entry)
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO or not envelope.signatures:
            return None
        if Statement.from_bytes(envelope.payload).predicate_type != BUILDER_REGISTRY_V1:
            return None
        version = verify_statement(envelope, keys).predicate.get("version")
    except (FormatError, VerificationError):
        return None  # not a registry this home's release keys signed: it counts for nothing
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return None
    return version


def _entries(log: LocalLog, start: int, tree_size: int) -> Iterator[tuple[int, bytes]]:
    """(index, entry) for ``[start, tree_size)``, each bundle checked against its level-0 tile (step 3)."""
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


def _newer(
    found: LoggedRegistry | None, version: int | None, index: int, entry: bytes
) -> LoggedRegistry | None:
    """``found``, or the entry at ``index`` if it carries ``version`` and that is at least as new."""
    if version is None or (found is not None and version < found.version):
        return found
    return LoggedRegistry(version=version, index=index, sha256=hashlib.sha256(entry).hexdigest())


def scan(log: LocalLog, keys: Sequence[Key], mark_path: Path, *, own: Sequence[Key] = ()) -> RegistryScan:
    """The newest builder registry ``keys`` signed in ``log``, and the newest ``keys`` or ``own`` signed,
    scanning only what the mark has not covered.

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
    start, newest, newest_own = 0, None, None
    if (
        mark is not None
        and mark.keys == digest
        and mark.tree_size <= state.tree_size
        and root_at(mark.tree_size) == mark.root
    ):
        start, newest, newest_own = mark.tree_size, mark.newest, mark.own  # step 4: the prefix is unchanged
    for index, entry in _entries(log, start, state.tree_size):
        version = registry_version(entry, every)
        if version is not None:
            newest_own = _newer(newest_own, version, index, entry)
            newest = _newer(newest, registry_version(entry, keys), index, entry)
    updated = ScanMark(
        tree_size=state.tree_size, root=state.root_hash, keys=digest, newest=newest, own=newest_own
    )
    if updated != mark:
        atomic_write(mark_path, updated.to_bytes(), durable=False)
    return RegistryScan(newest=newest, own=newest_own)
