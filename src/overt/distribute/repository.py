"""The TUF repository of a home: create it, add targets, renew signatures, publish a new root version. Every
version is signed with python-tuf (``tuf.api.metadata``), logged by digest, and only then written.

Roles (TUF 1.0 §2.1), with the keys of the home's registry (:class:`~overt.keys.registry.Role`):

* **root**: k of n offline keys, never in the home (:mod:`overt.distribute.root` runs the ceremony);
* **targets**: delegates the paths of :data:`~overt.distribute.layout.RELEASE_PATHS` to ``release``,
  terminating; it lists no target itself;
* **release**: the conveyor's release key, in its signing jurisdiction. It lists the targets until it would
  hold more than ``bins_threshold``; then it delegates every path to ``bin_count`` succinct hash bins
  (TAP 15, python-tuf's ``SuccinctRoles``) signed by the same key, so a client fetches one bin per lookup;
* **snapshot** and **timestamp**: online keys, consistent snapshots; the snapshot carries the length and
  sha256 of every targets file, so a release key cannot serve two files under one version.

Which key signs is decided by the metadata, not the registry: the home's one active key of the role that
the delegator lists (root for targets, snapshot and timestamp; targets for release; release for the bins).
A rotated online key signs nothing until a new root version lists it ('overt tuf prepare-root').

One change, in order (each step before the next; the invariant is that a snapshot or timestamp references
only files whose digests are already log entries):

1. new target files are written under their consistent-snapshot names (content-addressed; nothing references
   them yet);
2. each changed targets, release or bin version is signed, and its digest logged (:mod:`overt.distribute.metadata`);
3. the snapshot naming those versions and digests is signed and logged, then the timestamp naming the snapshot;
4. tlog-proofs of all those entries, and of each new target's provenance, are made under the checkpoint
   published last and written as evidence (:mod:`overt.distribute.evidence`); entries no published checkpoint
   covers yet get their evidence from the next ``overt tuf timestamp``;
5. the metadata files are written, ``timestamp.json`` last: until it is replaced, clients see the old state.

One process changes the repository at a time (``<home>/tuf/repository.lock``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import (
    Delegations,
    Metadata,
    MetaFile,
    Root,
    SuccinctRoles,
    TargetFile,
    Targets,
)

from overt.atomic import atomic_write, fsync_dirs
from overt.distribute.bundles import write_metadata_bundle, write_target_bundle
from overt.distribute.config import TufSettings
from overt.distribute.evidence import (
    metadata_evidence,
    target_evidence,
    write_pending_evidence,
    write_proved_evidence,
)
from overt.distribute.layout import RepositoryLayout, metadata_name
from overt.distribute.metadata import LoggedMetadata, expiry, log_metadata, sign_and_log
from overt.distribute.state import RepositoryState, load_repository_state
from overt.errors import ConfigError, StorageError
from overt.home import Home, HomeLog
from overt.keys.registry import KeyRecord, Registry, Role
from overt.keys.signers import KeySigner
from overt.keys.signing import SigningService
from overt.writerlock import WriterLock

BIN_PREFIX = "bin"
_ONLINE = {"targets": Role.TARGETS, "snapshot": Role.SNAPSHOT, "timestamp": Role.TIMESTAMP}


@dataclass(frozen=True, slots=True, kw_only=True)
class RepositoryContext:
    """What changing the repository needs from the home: its layout, settings, keys, signing service, log."""

    layout: RepositoryLayout
    settings: TufSettings
    service: SigningService
    registry: Registry
    load: Callable[[KeyRecord], KeySigner]
    log: HomeLog
    jurisdiction: str

    @classmethod
    def of_home(cls, home: Home, *, service: SigningService | None = None) -> RepositoryContext:
        return cls(
            layout=RepositoryLayout(home.path),
            settings=TufSettings.of(home),
            service=service or home.signing_service(),
            registry=home.registry,
            load=home.signer_for,
            log=home.log,
            jurisdiction=home.conveyor.jurisdiction,
        )

    def now(self) -> datetime:
        return self.service.now()

    def signer(self, record: KeyRecord) -> Signer:
        return self.load(record).signer

    def active_key(self, role: Role, allowed: Collection[str] | None = None, *, hint: str = "") -> KeyRecord:
        """The home's one active signing key of ``role`` (among ``allowed`` keyids, when given); ``hint``
        says how a key outside ``allowed`` gets listed."""
        now = self.now()
        found = [
            r
            for r in self.registry.records()
            if r.role is role
            and r.uri
            and r.status(now) == "active"
            and (allowed is None or r.keyid in allowed)
        ]
        if not found:
            if allowed is None:
                raise ConfigError(
                    f"this home holds no active {role.value} key; create one with "
                    f"'overt keys generate --role {role.value}'"
                )
            listed = ", ".join(k[:16] for k in sorted(allowed))
            raise ConfigError(
                f"none of the {role.value} keys the metadata lists ({listed}) is active in this home; {hint}"
            )
        if len(found) > 1:
            raise ConfigError(f"{len(found)} active {role.value} keys qualify; revoke or rotate all but one")
        return found[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTarget:
    """A target to publish: its path, bytes and ``custom`` field, and the provenance entry it was logged with."""

    path: str
    data: bytes
    custom: Mapping[str, Any]
    provenance: bytes | None = None  # the DSSE envelope, byte for byte as logged
    provenance_index: int | None = None

    def info(self) -> TargetFile:
        info = TargetFile.from_data(self.path, self.data, ["sha256"])
        info.unrecognized_fields["custom"] = dict(self.custom)
        return info


@dataclass(frozen=True, slots=True, kw_only=True)
class RepositoryChange:
    """What one change signed and logged, in log order, and the checkpoint its evidence proofs refer to."""

    metadata: tuple[LoggedMetadata, ...]
    targets: tuple[str, ...]
    evidence_tree_size: int | None  # None: no published checkpoint covers the entries yet

    @property
    def evidence_complete(self) -> bool:
        return self.evidence_tree_size is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metadata": [m.to_dict() for m in self.metadata],
            "targets": list(self.targets),
            "evidence_tree_size": self.evidence_tree_size,
        }


@dataclass(slots=True)
class _Change:
    """What one change has signed so far (internal)."""

    fresh: set[str] = field(default_factory=set)  # roles created in this change: version 1, no bump
    logged: list[LoggedMetadata] = field(default_factory=list)


class Repository:
    """The repository of one home, loaded and verified; open it with :meth:`edit` (holds the lock)."""

    def __init__(
        self, ctx: RepositoryContext, state: RepositoryState, *, fresh: Collection[str] = ()
    ) -> None:
        """``fresh``: roles of ``state`` made in this change, at version 1 (signed without a version bump)."""
        self.ctx = ctx
        self.state = state
        self._change = _Change(fresh=set(fresh))

    @classmethod
    @contextmanager
    def edit(cls, ctx: RepositoryContext, *, wait: float = 30.0) -> Iterator[Repository]:
        """The repository, locked against other writers for the duration, as published and verified."""
        with repository_lock(ctx.layout, wait=wait):
            yield cls(ctx, load_repository_state(ctx.layout))

    # --- which key signs ---------------------------------------------------------------------------------

    def key_for(self, role: str) -> KeyRecord:
        """The key that signs ``role`` now: the home's active key the delegating metadata lists."""
        if role in _ONLINE:
            hint = "stage a root version that lists its successor ('overt tuf prepare-root') and sign it"
            return self.ctx.active_key(_ONLINE[role], self.state.root.signed.roles[role].keyids, hint=hint)
        hint = "'overt tuf timestamp' delegates to the active release key"
        if role == "release":
            keyids = self.state.targets.signed.get_delegated_role(role).keyids
            return self.ctx.active_key(Role.RELEASE, keyids, hint=hint)
        if self.state.succinct is not None and self.state.succinct.is_delegated_role(role):
            return self.ctx.active_key(Role.RELEASE, self.state.succinct.keyids, hint=hint)
        raise ValueError(f"no online key signs {role}")

    def redelegate_release(self) -> list[str]:
        """After ``overt keys rotate --role release``: targets delegates to the active release key, and the
        release role delegates its bins to it; the roles to re-sign (none if nothing changed)."""
        try:
            key = self.ctx.active_key(Role.RELEASE)
        except ConfigError:
            return []  # no one active release key: the delegation stays (and the timestamp is still renewed)
        delegations = self.state.targets.signed.delegations
        delegation = self.state.targets.signed.get_delegated_role("release")
        if delegations is None or delegation.keyids == [key.keyid]:
            return []
        delegations.keys = {key.keyid: key.key}
        delegation.keyids = [key.keyid]
        succinct = self.state.succinct
        release = self.state.release.signed.delegations
        if succinct is None or release is None:
            return ["targets", "release"]
        release.keys = {key.keyid: key.key}
        succinct.keyids = [key.keyid]
        return ["targets", "release", *succinct.get_roles()]

    # --- the steps ---------------------------------------------------------------------------------------

    def sign_role(self, role: str) -> LoggedMetadata:
        """Step 2 or 3: the next version of ``role``, with a fresh expiry, signed and logged (not written)."""
        md = self.state.metadata(role)
        if role in self._change.fresh:
            self._change.fresh.discard(role)
        else:
            md.signed.version += 1
            md.signed.expires = expiry(self.ctx.now(), self.ctx.settings.expiry(role))
        record = self.key_for(role)
        logged = sign_and_log(
            md, role=role, record=record, signer=self.ctx.signer(record), service=self.ctx.service
        )
        self._change.logged.append(logged)
        return logged

    def snapshot_and_timestamp(
        self, changed: Sequence[LoggedMetadata], *, snapshot: bool = False, timestamp: bool = True
    ) -> None:
        """Step 3: a snapshot naming ``changed`` (or renewed, with ``snapshot``), then a timestamp naming it."""
        if changed or snapshot:
            meta = self.state.snapshot.signed.meta
            for lm in changed:
                meta[f"{lm.role}.json"] = MetaFile(lm.version, len(lm.data), {"sha256": lm.statement.sha256})
            snap = self.sign_role("snapshot")
            self.state.timestamp.signed.snapshot_meta = MetaFile(
                snap.version, len(snap.data), {"sha256": snap.statement.sha256}
            )
            timestamp = True
        if timestamp:
            self.sign_role("timestamp")

    def commit(self, new_targets: Sequence[NewTarget] = ()) -> RepositoryChange:
        """Steps 4 and 5: evidence, then the metadata files, ``timestamp.json`` last."""
        logged = tuple(self._change.logged)
        self._change = _Change()
        items = [(metadata_evidence(m.name), m.signed.entry, m.index) for m in logged]
        items += [
            (target_evidence(t.path), t.provenance, t.provenance_index)
            for t in new_targets
            if t.provenance is not None and t.provenance_index is not None
        ]
        size = write_proved_evidence(self.ctx.layout.public, self.ctx.log, items)
        layout = self.ctx.layout
        try:
            self._write_bundles(logged, new_targets)
            for m in logged:
                if m.role == "timestamp":
                    fsync_dirs(
                        [layout.metadata, *(layout.target_file(t.path, "x").parent for t in new_targets)]
                    )
                atomic_write(layout.metadata_file(m.role, m.version), m.data)
        except OSError as e:
            raise StorageError(f"cannot write the TUF metadata in {layout.metadata}: {e.strerror}") from e
        return RepositoryChange(
            metadata=logged, targets=tuple(t.path for t in new_targets), evidence_tree_size=size
        )

    def _write_bundles(self, logged: Sequence[LoggedMetadata], new_targets: Sequence[NewTarget]) -> None:
        """The evidence bundles of this change (:mod:`overt.distribute.bundles`): the new timestamp's, and
        each new target's."""
        public = self.ctx.layout.public
        for t in new_targets:
            if t.provenance is not None:
                write_target_bundle(public, t.path)
        timestamp = next((m for m in logged if m.role == "timestamp"), None)
        if timestamp is None:
            return
        snapshot = self.state.snapshot.signed
        names = [
            timestamp.name,
            metadata_name("snapshot", snapshot.version),
            *(metadata_name(r, snapshot.meta[f"{r}.json"].version) for r in ("targets", "release")),
            metadata_name("root", self.state.root.signed.version),
        ]
        write_metadata_bundle(public, timestamp=timestamp.version, names=names)

    # --- changes -----------------------------------------------------------------------------------------

    def add_targets(self, new: Sequence[NewTarget]) -> RepositoryChange:
        """Publish ``new`` targets: files, then release or bin versions, snapshot, timestamp, evidence."""
        for t in new:
            info = t.info()
            path = self.ctx.layout.target_file(t.path, info.hashes["sha256"])
            if not path.exists():
                atomic_write(path, t.data)
        changed = [self.sign_role(role) for role in self._place({t.path: t.info() for t in new})]
        self.snapshot_and_timestamp(changed)
        return self.commit(new)

    def _place(self, infos: dict[str, TargetFile]) -> list[str]:
        """Put each target in the role that lists it, splitting into bins past the threshold; the changed roles."""
        release = self.state.release.signed
        if self.state.succinct is None:
            if len(release.targets) + len(infos) <= self.ctx.settings.bins_threshold:
                release.targets.update(infos)
                return ["release"]
            return self._split({**release.targets, **infos})
        changed: dict[str, None] = {}
        for path, info in infos.items():
            role = self.state.role_for(path)
            self.state.delegated[role].signed.targets[path] = info
            changed[role] = None
        return list(changed)

    def _split(self, infos: dict[str, TargetFile]) -> list[str]:
        """TAP 15: release delegates every path to 2^k bins signed by its own key and lists no target itself."""
        key = self.key_for("release")
        bits = self.ctx.settings.bin_count.bit_length() - 1
        succinct = SuccinctRoles([key.keyid], 1, bits, BIN_PREFIX)
        release = self.state.release.signed
        release.targets = {}
        release.delegations = Delegations(keys={key.keyid: key.key}, roles=None, succinct_roles=succinct)
        until = expiry(self.ctx.now(), self.ctx.settings.expiry("release"))
        for role in succinct.get_roles():
            self.state.delegated[role] = Metadata(Targets(version=1, expires=until))
            self._change.fresh.add(role)
        for path, info in infos.items():
            self.state.delegated[succinct.get_role_for_target(path)].signed.targets[path] = info
        return ["release", *succinct.get_roles()]

    def renew(self, *, timestamp: bool = True) -> RepositoryChange:
        """Re-sign every online role whose signature is past half its lifetime or no longer by a key its
        delegator lists (re-delegating to a rotated release key first), and (``overt tuf timestamp``) always
        the timestamp; evidence left pending is written."""
        redelegated = set(self.redelegate_release())
        changed = [
            self.sign_role(role)
            for role in ("targets", *self.state.delegated)
            if role in redelegated or self.needs_signature(role)
        ]
        self.snapshot_and_timestamp(changed, snapshot=self.needs_signature("snapshot"), timestamp=timestamp)
        publication = self.commit()
        write_pending_evidence(self.ctx.layout.public, self.ctx.log)
        return publication

    def needs_signature(self, role: str) -> bool:
        md = self.state.metadata(role)
        left = md.signed.expires - self.ctx.now()
        if left < self.ctx.settings.expiry(role) / 2 or role in self.state.stale_top_level:
            return True
        try:
            self._delegator(role).verify_delegate(role, md.signed_bytes, md.signatures)
        except RepositoryError:
            return True
        return False

    def _delegator(self, role: str) -> Root | Targets:
        if role in _ONLINE:
            return self.state.root.signed
        return self.state.targets.signed if role == "release" else self.state.release.signed

    def log_root(self, md: Metadata[Root], *, record: KeyRecord) -> LoggedMetadata:
        """Log a root version its holders signed (the statement signed by ``record``, one of them)."""
        logged = log_metadata(md, role="root", record=record, service=self.ctx.service)
        self._change.logged.append(logged)
        return logged

    def publish_root(self, md: Metadata[Root], *, record: KeyRecord) -> RepositoryChange:
        """Log and publish root version N+1 (its signatures verified by the caller), then re-sign under it."""
        current = self.state.root.signed
        if not md.signed.get_root_verification_result(current, md.signed_bytes, md.signatures):
            raise ValueError("publish_root needs a root version the threshold of both versions signed")
        self.log_root(md, record=record)
        self.state.roots.append(md)
        changed = [self.sign_role("targets")] if self.needs_signature("targets") else []
        self.snapshot_and_timestamp(changed, snapshot=True)
        return self.commit()


@contextmanager
def repository_lock(layout: RepositoryLayout, *, wait: float = 30.0) -> Iterator[None]:
    """One writer of the repository at a time (a release and the timestamp timer, say)."""
    layout.private.mkdir(parents=True, exist_ok=True)
    try:
        lock = WriterLock(layout.lock, wait=wait)
    except ConfigError as e:
        raise ConfigError(
            f"the TUF repository of this home is being changed by another process ({e.evidence.get('lock')}); "
            "try again when it is done"
        ) from e
    try:
        yield
    finally:
        lock.release()


def renew_repository(ctx: RepositoryContext) -> RepositoryChange:
    """``overt tuf timestamp``: a new timestamp, every online role renewed that needs it, pending evidence."""
    with Repository.edit(ctx) as repo:
        return repo.renew()
