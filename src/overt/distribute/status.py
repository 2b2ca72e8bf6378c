"""What ``overt tuf status`` reports: each role's version, expiry and keys, the targets, the staged root, and
whether every metadata file the repository serves is proved logged (:func:`overt.distribute.evidence.unlogged_metadata`,
run against the published tree under the home's own log policy, as an endpoint would run it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from overt.attest.statement import format_timestamp
from overt.distribute.evidence import UnloggedMetadata, unlogged_metadata
from overt.distribute.layout import metadata_name
from overt.distribute.repository import Repository, RepositoryContext
from overt.distribute.root import CeremonyStatus, staged_status
from overt.distribute.state import DamagedRepository
from overt.errors import VerificationError
from overt.tlog.client import directory_fetcher


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleStatus:
    """One role's current metadata: its file, version, expiry, and the keys (and threshold) that sign it."""

    role: str
    name: str
    version: int
    expires: datetime
    keyids: tuple[str, ...]
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "version": self.version,
            "expires": format_timestamp(self.expires),
            "keyids": list(self.keyids),
            "threshold": self.threshold,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RepositoryStatus:
    """The repository at ``at``: its roles (bins counted, not listed), targets, staged root, unlogged files."""

    at: datetime
    roles: tuple[RoleStatus, ...]
    targets: int
    bins: int  # 0: the release role lists its targets itself
    staged: CeremonyStatus | None
    unlogged: tuple[UnloggedMetadata, ...]
    quorum: str  # the witness quorum of the log policy the evidence was checked under

    @property
    def expired(self) -> tuple[str, ...]:
        return tuple(r.role for r in self.roles if r.expires <= self.at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": format_timestamp(self.at),
            "roles": [r.to_dict() for r in self.roles],
            "targets": self.targets,
            "bins": self.bins,
            "expired": list(self.expired),
            "staged_root": None if self.staged is None else self.staged.to_dict(),
            "unlogged": [u.to_dict() for u in self.unlogged],
            "quorum": self.quorum,
        }


def repository_status(ctx: RepositoryContext) -> RepositoryStatus:
    """``overt tuf status``; a published repository that does not verify is a finding (exit 1)."""
    try:
        return _status(ctx)
    except DamagedRepository as e:
        raise VerificationError(
            f"the published TUF repository in {ctx.layout.public} does not verify: {e.evidence['cause']}",
            **e.evidence,
        ) from e


def _status(ctx: RepositoryContext) -> RepositoryStatus:
    with Repository.edit(ctx) as repo:
        state = repo.state
        root = state.root.signed
        roles = []
        for role in ("root", "targets", "release", "snapshot", "timestamp"):
            signed = state.metadata(role).signed
            if role == "release":
                delegation = state.targets.signed.get_delegated_role(role)
            else:
                delegation = root.roles[role]
            roles.append(
                RoleStatus(
                    role=role,
                    name=metadata_name(role, signed.version),
                    version=signed.version,
                    expires=signed.expires,
                    keyids=tuple(delegation.keyids),
                    threshold=delegation.threshold,
                )
            )
        staged = staged_status(ctx, state)
        policy = ctx.log.policy()
        unlogged = unlogged_metadata(directory_fetcher(ctx.layout.public), policy)
        return RepositoryStatus(
            at=ctx.now(),
            roles=tuple(roles),
            targets=len(state.released()),
            bins=len(state.delegated) - 1,
            staged=staged,
            unlogged=tuple(unlogged),
            quorum=policy.quorum,
        )
