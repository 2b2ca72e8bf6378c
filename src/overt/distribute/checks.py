"""The checks a release passes before anything is signed: its provenance is logged under the witness quorum,
names the artifact, is signed by a builder key of this home, and holds under the jurisdiction policy.

1. **Logged, named, signed**: :func:`overt.attest.verify_artifact.check_artifact` with the home's builder keys
   and overt's own log client (:class:`~overt.tlog.client.LogClient`) under the home's log policy: the
   checkpoint is signed by the log and meets the witness quorum, and the envelope, byte for byte, is the
   entry at the index the log's index names (a hint: inclusion is proved, not looked up).
2. **Jurisdiction**: the key that signed belongs to the conveyor's jurisdiction; the statement names no other
   jurisdiction anywhere (:func:`overt.keys.claims.foreign_claims`); and the builder registry, trusted only
   as the newest version the release key signed and logged, maps the exact ``builder.id`` to this
   jurisdiction. These are steps 2, 5 and 6 of :func:`overt.keys.jurisdiction.judge`, checked again at release
   because a provenance file can come from anywhere, and a registry can change after signing.

Every failure is a :class:`~overt.errors.PolicyError` whose evidence names the check. Nothing here signs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement
from overt.attest.verify_artifact import ArtifactReport, check_artifact
from overt.distribute.repository import RepositoryContext
from overt.errors import ConfigError, FormatError, PolicyError, VerificationError
from overt.home import Home
from overt.keys.claims import foreign_claims
from overt.keys.registry import KeyRecord, Role
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.merkle import leaf_hash


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseContext:
    """What a release is checked and published with: the repository, the home's builder registry, its log."""

    repo: RepositoryContext
    builders: Callable[[], Mapping[str, str]]  # exact builder.id -> jurisdiction, trusted only if logged
    log: LogClient  # the home's log under its own policy (witness quorum included)
    public: Path

    @classmethod
    def of_home(cls, home: Home) -> ReleaseContext:
        return cls(
            repo=RepositoryContext.of_home(home),
            builders=lambda: home.builder_store().load().mapping(),
            log=LogClient(directory_fetcher(home.log.paths.public), home.log.policy()),
            public=home.paths.public,
        )

    @property
    def jurisdiction(self) -> str:
        return self.repo.jurisdiction

    def keys_of(self, role: Role) -> list[KeyRecord]:
        """Every key of ``role`` the home knows, any status or jurisdiction: what signed is judged after."""
        return [r for r in self.repo.registry.records() if r.role is role]

    def log_index(self, entry: bytes) -> int | None:
        """Where the log's index says ``entry`` is (a hint, proved by inclusion before it counts)."""
        store = self.repo.log.open_store()
        try:
            return store.lookup([leaf_hash(entry)]).get(leaf_hash(entry))
        finally:
            store.close()

    def verify_logged(self, entry: bytes, what: str) -> int:
        """The index of ``entry`` in the home's log, inclusion proved under a quorum checkpoint."""
        index = self.log_index(entry)
        if index is None:
            raise PolicyError(f"refused: {what} is not an entry of this home's log", check="log")
        try:
            tree = self.log.update()
            if index >= tree.checkpoint.checkpoint.tree_size:
                raise VerificationError(
                    f"no published checkpoint covers entry {index} yet; run 'overt log publish'"
                )
            self.log.verify_inclusion(entry, index, tree.checkpoint)
        except VerificationError as e:
            raise PolicyError(f"refused: {what} is not proved logged: {e}", check="log", index=index) from e
        return index


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedProvenance:
    """A provenance that passed every check: its statement, its log index and the digest of its envelope."""

    envelope: bytes
    statement: Statement
    report: ArtifactReport
    index: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.envelope).hexdigest()


def check_provenance(
    ctx: ReleaseContext, artifact: bytes, *, name: str, provenance: bytes
) -> CheckedProvenance:
    """Checks 1 and 2 of the module docstring for ``artifact`` (called ``name``) and its provenance envelope."""
    builders = ctx.keys_of(Role.BUILDER)
    if not builders:
        raise ConfigError("this home has no builder key, so no provenance can be checked")
    index = ctx.log_index(provenance)
    if index is None:
        raise PolicyError(
            "refused: the provenance is not an entry of this home's log, so no endpoint could verify it",
            check="log",
        )
    report = check_artifact(
        artifact,
        name=name,
        provenance=provenance,
        keys=[r.key for r in builders],
        threshold=1,
        log=ctx.log,
        index=index,
    )
    failed = [c for c in report.checks if not c.proved]
    if failed:
        raise PolicyError(
            f"refused: the {failed[0].name} check failed: {failed[0].detail}", check=failed[0].name
        )
    statement = Statement.from_bytes(Envelope.from_bytes(provenance).payload)
    _check_jurisdiction(ctx, statement, report, [r for r in builders if r.keyid in report.keyids])
    return CheckedProvenance(envelope=provenance, statement=statement, report=report, index=index)


def _check_jurisdiction(
    ctx: ReleaseContext, statement: Statement, report: ArtifactReport, signers: list[KeyRecord]
) -> None:
    here = ctx.jurisdiction
    for record in signers:
        if record.jurisdiction != here:
            raise PolicyError(
                f"refused: the provenance is signed by key {record.keyid[:16]} of {record.jurisdiction}, outside "
                f"this conveyor's jurisdiction {here}",
                check="jurisdiction",
            )
    try:
        foreign = foreign_claims(statement, here)
    except FormatError as e:
        raise PolicyError(f"refused: the provenance cannot be judged: {e}", check="jurisdiction") from e
    if foreign:
        where, value = foreign[0]
        raise PolicyError(
            f"refused: the provenance names jurisdiction {json.dumps(value)} at {where}, outside {here}",
            check="jurisdiction",
        )
    try:
        registered = ctx.builders().get(report.builder_id)
    except (ConfigError, FormatError, VerificationError) as e:
        raise PolicyError(
            f"refused: the builder registry cannot be trusted: {e}", check="builder-registry"
        ) from e
    shown = json.dumps(report.builder_id)[:200]
    if registered is None:
        raise PolicyError(
            f"refused: builder {shown} is not in this conveyor's builder registry ('overt keys builders list')",
            check="builder-registry",
        )
    if registered != here:
        raise PolicyError(
            f"refused: builder {shown} is registered to {registered}, outside this conveyor's jurisdiction {here}",
            check="builder-registry",
        )
