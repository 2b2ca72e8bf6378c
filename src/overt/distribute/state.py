"""The repository as published: every metadata file read back from ``public/tuf/metadata`` and verified the
way a TUF client would, before the conveyor changes anything.

Read in the client's order (TUF 1.0 §5.3-5.6): the root chain (each version signed by the threshold of the
one before and its own), the timestamp, the snapshot it names (length and sha256), then each targets file
the snapshot names (length, sha256, and the delegator's signatures): ``targets``, ``release``, and the bins
if ``release`` delegates to them. A file that does not verify means the public tree was damaged or
changed behind the conveyor's back: :class:`~overt.errors.StorageError`, and nothing is signed on top of it.

One leniency, for a crash between writing a new root and re-signing the online roles under it: the
timestamp and snapshot may verify under the previous root version instead of the newest
(:attr:`RepositoryState.stale_top_level` says which), so that the next renewal re-signs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Root, Snapshot, SuccinctRoles, TargetFile, Targets, Timestamp

from overt.distribute.layout import RepositoryLayout
from overt.errors import ConfigError, StorageError

_ROOT_FILE = re.compile(r"([1-9][0-9]{0,8})\.root\.json")


class DamagedRepository(StorageError):
    """The published metadata does not verify (changed behind the conveyor's back): nothing is signed on top
    of it; ``overt tuf status`` reports it as a finding."""


@dataclass(slots=True, kw_only=True)
class RepositoryState:
    """The current metadata of every role, as loaded; :mod:`overt.distribute.repository` edits it in place."""

    roots: list[Metadata[Root]]
    targets: Metadata[Targets]
    delegated: dict[str, Metadata[Targets]]  # 'release' and its bins, by role name
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]
    stale_top_level: frozenset[str] = field(default_factory=frozenset)

    @property
    def root(self) -> Metadata[Root]:
        return self.roots[-1]

    @property
    def release(self) -> Metadata[Targets]:
        return self.delegated["release"]

    @property
    def succinct(self) -> SuccinctRoles | None:
        """The release role's hash-bin delegation, once it has one."""
        delegations = self.release.signed.delegations
        return None if delegations is None else delegations.succinct_roles

    def role_for(self, path: str) -> str:
        """The role whose metadata lists ``path``: ``release``, or its bin."""
        succinct = self.succinct
        return "release" if succinct is None else succinct.get_role_for_target(path)

    def metadata(self, role: str) -> Metadata[Any]:
        top: dict[str, Metadata[Any]] = {
            "root": self.root,
            "targets": self.targets,
            "snapshot": self.snapshot,
            "timestamp": self.timestamp,
        }
        return top[role] if role in top else self.delegated[role]

    def released(self) -> dict[str, TargetFile]:
        """Every target the release role and its bins list, by path."""
        out: dict[str, TargetFile] = {}
        for md in self.delegated.values():
            out.update(md.signed.targets)
        return out


def _read(layout: RepositoryLayout, role: str, version: int) -> bytes:
    path = layout.metadata_file(role, version)
    try:
        return path.read_bytes()
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror}") from e


def _load_roots(layout: RepositoryLayout) -> list[Metadata[Root]]:
    versions = sorted(
        int(m.group(1)) for p in layout.metadata.glob("*.root.json") if (m := _ROOT_FILE.fullmatch(p.name))
    )
    if versions != list(range(1, len(versions) + 1)) or not versions:
        raise StorageError(f"the root versions in {layout.metadata} are not 1..N: {versions}")
    roots: list[Metadata[Root]] = []
    for version in versions:
        md = Metadata[Root].from_bytes(_read(layout, "root", version))
        previous = roots[-1].signed if roots else None
        if not md.signed.get_root_verification_result(previous, md.signed_bytes, md.signatures):
            raise StorageError(
                f"{version}.root.json is not signed by the root keys of versions {version - 1} and {version}"
            )
        roots.append(md)
    return roots


def _verify_top(roots: list[Metadata[Root]], role: str, md: Metadata[Any]) -> bool:
    """True if the newest root's keys signed ``md``; False if only the previous root's did (a crash left it)."""
    try:
        roots[-1].signed.verify_delegate(role, md.signed_bytes, md.signatures)
        return True
    except RepositoryError:
        if len(roots) < 2:
            raise
        roots[-2].signed.verify_delegate(role, md.signed_bytes, md.signatures)
        return False


def _delegated(
    layout: RepositoryLayout, snapshot: Metadata[Snapshot], name: str, delegator: Root | Targets
) -> Metadata[Targets]:
    meta = snapshot.signed.meta.get(f"{name}.json")
    if meta is None:
        raise StorageError(f"the snapshot lists no {name}.json")
    data = _read(layout, name, meta.version)
    meta.verify_length_and_hashes(data)
    md = Metadata[Targets].from_bytes(data)
    if md.signed.version != meta.version:
        raise StorageError(f"{meta.version}.{name}.json says it is version {md.signed.version}")
    delegator.verify_delegate(name, md.signed_bytes, md.signatures)
    return md


def load_repository_state(layout: RepositoryLayout) -> RepositoryState:
    """Read and verify the published repository (see the module docstring for the order)."""
    if not layout.exists:
        raise ConfigError("this home has no TUF repository yet; create it with 'overt tuf init'")
    try:
        roots = _load_roots(layout)
        stale = set()
        timestamp = Metadata[Timestamp].from_bytes(_read(layout, "timestamp", 0))
        if not _verify_top(roots, "timestamp", timestamp):
            stale.add("timestamp")
        meta = timestamp.signed.snapshot_meta
        data = _read(layout, "snapshot", meta.version)
        meta.verify_length_and_hashes(data)
        snapshot = Metadata[Snapshot].from_bytes(data)
        if not _verify_top(roots, "snapshot", snapshot):
            stale.add("snapshot")
        targets = _delegated(layout, snapshot, "targets", roots[-1].signed)
        release = _delegated(layout, snapshot, "release", targets.signed)
        delegated = {"release": release}
        succinct = None if release.signed.delegations is None else release.signed.delegations.succinct_roles
        for name in succinct.get_roles() if succinct is not None else ():
            delegated[name] = _delegated(layout, snapshot, name, release.signed)
    except (RepositoryError, ValueError, KeyError, TypeError) as e:
        raise DamagedRepository(
            f"the published TUF repository in {layout.public} does not verify ({type(e).__name__}: {e}); "
            "nothing is signed on top of it",
            cause=f"{type(e).__name__}: {e}",
        ) from e
    return RepositoryState(
        roots=roots,
        targets=targets,
        delegated=delegated,
        snapshot=snapshot,
        timestamp=timestamp,
        stale_top_level=frozenset(stale),
    )
