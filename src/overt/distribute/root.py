"""Root keys and the signing ceremony: k of n offline keys, and root versions chained (TUF 1.0 §5.3.4).

* :func:`init_repository` generates the n root keys (Ed25519, ``file2:`` PEM files, mode 0600) into a
  directory the operator names and keeps outside the home, and creates the repository with version 1 of the
  root signed by all of them. The home never holds a root key: each holder takes one file away.
* :func:`prepare_root` stages version N+1 in ``<home>/tuf/staging/`` without a signature: the root keys (the
  same, or a new set), the threshold, the online keys the home now holds active (this is how a rotated
  targets, snapshot or timestamp key enters the root) and a fresh expiry.
* :func:`sign_root`: one holder adds a signature with their key file. A key that is a root key of neither
  version N nor N+1 is refused and nothing is written. Once the threshold of version N's root keys *and* the
  threshold of N+1's own have signed (python-tuf's ``Root.get_root_verification_result``, what a client
  checks), the version is logged, with the statement signed by the key that completed it, published as
  ``metadata/N+1.root.json``, and the online roles are re-signed under it. Until then it stays staged:
  clients never see a root version below threshold.

A root key signs through the home's :class:`~overt.keys.signing.SigningService` like any other key: its
record is made for the ceremony (role ``root``, the conveyor's jurisdiction, the key file's ``file2:`` URI)
and never saved in the registry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key, SSlibKey
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from overt.atomic import atomic_write
from overt.attest.statement import format_timestamp
from overt.distribute.layout import RELEASE_PATHS
from overt.distribute.metadata import expiry
from overt.distribute.repository import Repository, RepositoryChange, RepositoryContext, repository_lock
from overt.distribute.state import RepositoryState
from overt.errors import ConfigError, PolicyError, StorageError, UsageError
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key, import_file_key

MAX_ROOT_KEYS = 16
_ONLINE = {"targets": Role.TARGETS, "snapshot": Role.SNAPSHOT, "timestamp": Role.TIMESTAMP}


def root_key_record(uri: str, key: SSlibKey, *, jurisdiction: str, now: datetime) -> KeyRecord:
    """The record a root key signs with during a ceremony (never saved in the registry)."""
    return KeyRecord.create(
        key, role=Role.ROOT, jurisdiction=jurisdiction, valid_from=now, valid_until=None, uri=uri
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RootKeys:
    """Root keys generated for the operator: where their files are, and the threshold they were made for."""

    directory: Path
    records: tuple[KeyRecord, ...]
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "threshold": self.threshold,
            "keys": [{"keyid": r.keyid, "file": r.uri.removeprefix("file2:")} for r in self.records],
        }


def check_threshold(threshold: int, count: int) -> None:
    if not 1 <= count <= MAX_ROOT_KEYS:
        raise UsageError(f"a root has 1 to {MAX_ROOT_KEYS} keys, not {count}")
    if not 1 <= threshold <= count:
        raise UsageError(
            f"the root threshold must be between 1 and the number of root keys ({count}), not {threshold}"
        )


def generate_root_keys(
    directory: Path, *, count: int, threshold: int, home: Path, jurisdiction: str, now: datetime
) -> RootKeys:
    """``count`` new root keys in ``directory``, which must lie outside ``home`` (root keys are offline)."""
    check_threshold(threshold, count)
    where, inside = directory.resolve(), home.resolve()
    if where == inside or inside in where.parents:
        raise UsageError(
            f"{directory} is inside the home {home}: root keys are offline, so generate them into a directory "
            "outside it (a removable disk, say) and give each holder one key file"
        )
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(where, 0o700)
    records = []
    for _ in range(count):
        _, key = generate_file_key(where, "ed25519")
        uri = f"file2:{where / (key.keyid + '.pem')}"
        records.append(root_key_record(uri, key, jurisdiction=jurisdiction, now=now))
    return RootKeys(directory=where, records=tuple(records), threshold=threshold)


def create_repository(
    ctx: RepositoryContext, *, root_keys: Sequence[KeyRecord], threshold: int
) -> RepositoryChange:
    """Version 1 of every role: root signed by all ``root_keys`` (threshold ``threshold``), the online keys
    the home's active ones, ``targets`` delegating to ``release``; logged, then written."""
    layout = ctx.layout
    with repository_lock(layout):
        if layout.exists or (layout.metadata / "1.root.json").exists():
            raise ConfigError(f"this home already has a TUF repository in {layout.public}")
        now = ctx.now()
        online = {role: ctx.active_key(kind) for role, kind in _ONLINE.items()}
        release = ctx.active_key(Role.RELEASE)
        root = Root(version=1, expires=expiry(now, ctx.settings.expiry("root")), consistent_snapshot=True)
        for record in root_keys:
            root.add_key(record.key, "root")
        root.roles["root"].threshold = threshold
        for role, record in online.items():
            root.add_key(record.key, role)
        root_md = Metadata(root)
        for record in root_keys:
            root_md.sign(ctx.signer(record), append=True)
        delegation = DelegatedRole("release", [release.keyid], 1, True, paths=list(RELEASE_PATHS))
        state = RepositoryState(
            roots=[root_md],
            targets=Metadata(
                Targets(
                    version=1,
                    expires=expiry(now, ctx.settings.expiry("targets")),
                    delegations=Delegations(keys={release.keyid: release.key}, roles={"release": delegation}),
                )
            ),
            delegated={
                "release": Metadata(Targets(version=1, expires=expiry(now, ctx.settings.expiry("release"))))
            },
            snapshot=Metadata(Snapshot(version=1, expires=expiry(now, ctx.settings.expiry("snapshot")))),
            timestamp=Metadata(Timestamp(version=1, expires=expiry(now, ctx.settings.expiry("timestamp")))),
        )
        repo = Repository(ctx, state, fresh=("targets", "release", "snapshot", "timestamp"))
        repo.log_root(root_md, record=root_keys[0])
        changed = [repo.sign_role("targets"), repo.sign_role("release")]
        repo.snapshot_and_timestamp(changed)
        return repo.commit()


def init_repository(
    ctx: RepositoryContext, *, root_keys_dir: Path, count: int, threshold: int
) -> tuple[RootKeys, RepositoryChange]:
    """``overt tuf init``: root keys outside the home, then version 1 of every role."""
    if ctx.layout.exists:
        raise ConfigError(f"this home already has a TUF repository in {ctx.layout.public}")
    keys = generate_root_keys(
        root_keys_dir,
        count=count,
        threshold=threshold,
        home=ctx.layout.home,
        jurisdiction=ctx.jurisdiction,
        now=ctx.now(),
    )
    return keys, create_repository(ctx, root_keys=keys.records, threshold=threshold)


@dataclass(frozen=True, slots=True, kw_only=True)
class CeremonyStatus:
    """A staged root version: who has signed it, how many signatures each threshold still lacks, and, once
    both are met, what publishing it signed and logged."""

    version: int
    staged: Path
    root_keyids: tuple[str, ...]
    threshold: int
    expires: datetime
    signed_by: tuple[str, ...]
    missing_previous: int  # signatures still needed from version N's root keys
    missing_new: int  # ... and from version N+1's
    publication: RepositoryChange | None = None

    @property
    def published(self) -> bool:
        return self.publication is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "staged": str(self.staged),
            "root_keyids": list(self.root_keyids),
            "threshold": self.threshold,
            "expires": format_timestamp(self.expires),
            "signed_by": list(self.signed_by),
            "missing_previous": self.missing_previous,
            "missing_new": self.missing_new,
            "published": self.published,
            "publication": None if self.publication is None else self.publication.to_dict(),
        }


def _status(
    current: Root, md: Metadata[Root], staged: Path, publication: RepositoryChange | None = None
) -> CeremonyStatus:
    result = md.signed.get_root_verification_result(current, md.signed_bytes, md.signatures)
    role = md.signed.roles["root"]
    return CeremonyStatus(
        version=md.signed.version,
        staged=staged,
        root_keyids=tuple(role.keyids),
        threshold=role.threshold,
        expires=md.signed.expires,
        signed_by=tuple(sorted(result.signed)),
        missing_previous=result.first.missing,
        missing_new=result.second.missing,
        publication=publication,
    )


def _write_staged(path: Path, md: Metadata[Root]) -> None:
    # Indented: the holders read what they sign.
    atomic_write(path, md.to_bytes(JSONSerializer(compact=False)), mode=0o600)


def prepare_root(
    ctx: RepositoryContext,
    *,
    threshold: int | None = None,
    new_keys_dir: Path | None = None,
    count: int | None = None,
) -> tuple[CeremonyStatus, RootKeys | None]:
    """Stage root version N+1, unsigned: version N's root keys, or ``count`` new ones generated into
    ``new_keys_dir`` (outside the home); ``threshold`` (default: N's); the home's active online keys; a fresh
    expiry. Returns the staged version and the new root keys, if any."""
    with Repository.edit(ctx) as repo:
        current = repo.state.root.signed
        version = current.version + 1
        staged = ctx.layout.staged_root(version)
        if staged.exists():
            raise ConfigError(
                f"root version {version} is already being signed ({staged}); remove it to start over"
            )
        k = threshold if threshold is not None else current.roles["root"].threshold
        new_keys = None
        if new_keys_dir is not None:
            new_keys = generate_root_keys(
                new_keys_dir,
                count=count or len(current.roles["root"].keyids),
                threshold=k,
                home=ctx.layout.home,
                jurisdiction=ctx.jurisdiction,
                now=ctx.now(),
            )
            keys: list[Key] = [r.key for r in new_keys.records]
        elif count is not None:
            raise UsageError(
                "a new number of root keys needs new keys: give the directory to generate them in"
            )
        else:
            keys = [current.get_key(keyid) for keyid in current.roles["root"].keyids]
        check_threshold(k, len(keys))
        root = Root(
            version=version, expires=expiry(ctx.now(), ctx.settings.expiry("root")), consistent_snapshot=True
        )
        for key in keys:
            root.add_key(key, "root")
        root.roles["root"].threshold = k
        for role, kind in _ONLINE.items():
            root.add_key(ctx.active_key(kind).key, role)
        md = Metadata(root)
        ctx.layout.staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_staged(staged, md)
        return _status(current, md, staged), new_keys


def _load_staged(path: Path) -> Metadata[Root]:
    try:
        return Metadata[Root].from_bytes(path.read_bytes())
    except OSError as e:
        raise StorageError(f"cannot read the staged root {path}: {e.strerror}") from e
    except RepositoryError as e:
        raise StorageError(f"the staged root {path} is damaged: {e}") from e


def staged_status(ctx: RepositoryContext, state: RepositoryState) -> CeremonyStatus | None:
    """The root version being signed on top of ``state``, if one is staged."""
    current = state.root.signed
    path = ctx.layout.staged_root(current.version + 1)
    return _status(current, _load_staged(path), path) if path.exists() else None


def sign_root(ctx: RepositoryContext, key_file: Path) -> CeremonyStatus:
    """One holder's signature on the staged version; published once both thresholds are met."""
    with Repository.edit(ctx) as repo:
        current = repo.state.root.signed
        path = ctx.layout.staged_root(current.version + 1)
        if not path.exists():
            raise ConfigError("no root version is being signed; stage one with 'overt tuf prepare-root'")
        md = _load_staged(path)
        uri, key = import_file_key(key_file)
        allowed = set(current.roles["root"].keyids) | set(md.signed.roles["root"].keyids)
        if key.keyid not in allowed:
            raise PolicyError(
                f"refused: the key in {key_file} ({key.keyid[:16]}) is a root key of neither version "
                f"{current.version} nor the staged version {md.signed.version}; nothing was signed",
                keyid=key.keyid,
            )
        record = root_key_record(uri, key, jurisdiction=ctx.jurisdiction, now=ctx.now())
        md.sign(ctx.signer(record), append=True)
        if not md.signed.get_root_verification_result(current, md.signed_bytes, md.signatures):
            _write_staged(path, md)
            return _status(current, md, path)
        publication = repo.publish_root(md, record=record)
        path.unlink()
        return _status(current, md, path, publication)
