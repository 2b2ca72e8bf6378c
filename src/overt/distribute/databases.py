"""``overt release --avdb NAME --version N``: an AV database built by ``overt avdb build`` becomes a target,
with a transport-only delta from the previous released version.

The database, its provenance and its audit come from ``public/avdb/<name>/`` (:mod:`overt.avdb.release`).
Besides the checks of :mod:`overt.distribute.checks` on the provenance, the release is refused unless its
audit passed, as the log shows it:

1. the provenance is an AV-database build (``overt.avdb.release.BUILD_TYPE``) of database ``NAME`` version N;
2. the audit report for the rule tree it was built from (``audits/<source sha256>.dsse.json``) is signed by an
   auditor key of this home, is an ``avdb-audit/v1`` statement about that exact tree, and is in the log
   under the witness quorum;
3. the full report it names by digest (``audits/<source sha256>.report.json``) is that file byte for byte
   (:func:`overt.avdb.release.read_report`), and every *blocking* finding of it has a waiver
   (``waivers/<id>.dsse.json``) signed by an auditor key, naming that finding, and in the log. Advisory
   findings need none.

and unless N is greater than every released version of the database. The targets::

    avdb/<name>/<N>.avdb        custom {"overt": {"kind": "avdb", "database": NAME, "version": N,
                                                  "provenance": {"sha256": ..., "logIndex": ...}}}
    avdb/<name>/<M>-<N>.delta   custom {"overt": {"kind": "avdb-delta", "transportOnly": true,
                                                  "database": NAME, "from": M, "to": N,
                                                  "target": "avdb/<name>/<N>.avdb", "targetSha256": ...}}

The same change points ``channels/avdb/<name>.json`` at version N (:mod:`overt.distribute.channels`).
A delta is transport only: it carries no provenance, and the endpoint checks what applying it produces against
``targetSha256``, the digest of the full database the logged provenance names (:func:`overt.avdb.delta.apply_delta`).
"""

from __future__ import annotations

from pathlib import Path

from overt.attest.dsse import Envelope
from overt.attest.provenance import Provenance
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.avdb.delta import make_delta
from overt.avdb.findings import BLOCKING
from overt.avdb.package import read_database
from overt.avdb.release import BUILD_TYPE, AvdbStore, read_report
from overt.distribute.channels import CARRIES_AVDB, ChannelIndex
from overt.distribute.checks import CheckedProvenance, ReleaseContext, check_provenance
from overt.distribute.layout import avdb_path, delta_path
from overt.distribute.release import AVDB, AVDB_DELTA, ReleasedTarget, overt_custom
from overt.distribute.repository import NewTarget, Repository
from overt.distribute.state import RepositoryState
from overt.errors import ConfigError, Error, PolicyError, StorageError
from overt.keys.jurisdiction import AVDB_AUDIT_V1, AVDB_WAIVER_V1
from overt.keys.registry import Role


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"{what} {path} cannot be read ({e.strerror}); build it with 'overt avdb build'"
        ) from e


def _signed_by_auditor(ctx: ReleaseContext, data: bytes, what: str, predicate_type: str) -> Statement:
    try:
        statement = verify_statement(Envelope.from_bytes(data), [r.key for r in ctx.keys_of(Role.AUDITOR)], 1)
    except Error as e:
        raise PolicyError(
            f"refused: {what} is not signed by an auditor key of this home: {e}", check="audit"
        ) from e
    if statement.predicate_type != predicate_type:
        raise PolicyError(f"refused: {what} is a {statement.predicate_type} statement", check="audit")
    ctx.verify_logged(data, what)
    return statement


def check_audit(ctx: ReleaseContext, store: AvdbStore, name: str, provenance: Provenance) -> None:
    """Checks 2 and 3 of the module docstring."""
    source = provenance.build_definition.external_parameters.get("source")
    digest = source.get("digest", {}).get("sha256") if isinstance(source, dict) else None
    if not isinstance(digest, str):
        raise PolicyError(
            "refused: the provenance names no rule source, so no audit can be found", check="audit"
        )
    what = f"the audit report of {name}'s rules {digest[:16]}"
    audit = _signed_by_auditor(
        ctx, _read(store.root / name / "audits" / f"{digest}.dsse.json", "audit report"), what, AVDB_AUDIT_V1
    )
    if digest not in {s.digest.get("sha256") for s in audit.subject}:
        raise PolicyError(f"refused: {what} is about other rules", check="audit")
    try:
        findings = read_report(store, name, audit)
    except Error as e:
        raise PolicyError(f"refused: {what}: {e}", check="audit") from e
    for finding in findings:
        if finding.get("severity", BLOCKING) != BLOCKING:
            continue
        fid = str(finding.get("id"))
        shown = (
            f"finding {fid} ({finding.get('check')}: {finding.get('message')})"
            if fid
            else "a malformed finding"
        )
        path = store.root / "waivers" / f"{fid}.dsse.json"
        if not fid or not path.is_file():
            raise PolicyError(f"refused: the audit did not pass: {shown} has no waiver", check="audit")
        waiver = _signed_by_auditor(ctx, path.read_bytes(), f"the waiver of {shown}", AVDB_WAIVER_V1)
        if waiver.predicate.get("findingId") != fid:
            raise PolicyError(f"refused: the waiver file of {shown} waives another finding", check="audit")


def _latest_released(state: RepositoryState, name: str) -> tuple[int, str, str] | None:
    """(version, path, sha256) of the newest released version of database ``name``."""
    found = [
        (int(o["version"]), path, info.hashes["sha256"])
        for path, info in state.released().items()
        if (o := overt_custom(info)).get("kind") == AVDB and o.get("database") == name
    ]
    return max(found) if found else None


def _delta(
    repo: Repository, name: str, previous: tuple[int, str, str], version: int, data: bytes, sha256: str
) -> NewTarget:
    old_version, old_path, old_sha = previous
    try:
        old = repo.ctx.layout.target_file(old_path, old_sha).read_bytes()
    except OSError as e:
        raise StorageError(
            f"the released database {old_path} is missing from the repository: {e.strerror}"
        ) from e
    custom = {
        "overt": {
            "kind": AVDB_DELTA,
            "transportOnly": True,
            "database": name,
            "from": old_version,
            "to": version,
            "target": avdb_path(name, version),
            "targetSha256": sha256,
        }
    }
    return NewTarget(
        path=delta_path(name, old_version, version),
        data=make_delta(read_database(old), read_database(data)),
        custom=custom,
    )


def release_database(ctx: ReleaseContext, *, name: str, version: int) -> ReleasedTarget:
    """Check database ``name`` version ``version`` as built here, and publish it (and its delta)."""
    path = avdb_path(name, version)
    store = AvdbStore(ctx.public)
    db_file = store.database_path(name, version)
    data = _read(db_file, "database")
    envelope = _read(db_file.with_name(f"{version}.provenance.dsse.json"), "provenance")
    with Repository.edit(ctx.repo) as repo:
        previous = _latest_released(repo.state, name)
        if previous is not None and version <= previous[0]:
            raise PolicyError(
                f"refused: database {name} is released at version {previous[0]}; versions only move forward",
                check="version",
            )
        checked = check_provenance(ctx, data, name=f"{name}-{version}.avdb", provenance=envelope)
        _check_build(checked, name, version)
        check_audit(ctx, store, name, Provenance.from_statement(checked.statement))
        custom = {
            "overt": {
                "kind": AVDB,
                "database": name,
                "version": version,
                "provenance": {"sha256": checked.sha256, "logIndex": checked.index},
            }
        }
        targets = [
            NewTarget(
                path=path, data=data, custom=custom, provenance=envelope, provenance_index=checked.index
            )
        ]
        if previous is not None:
            targets.append(_delta(repo, name, previous, version, data, checked.report.sha256))
        index = ChannelIndex(
            carries=CARRIES_AVDB,
            name=name,
            channel="",
            version=str(version),
            target=path,
            sha256=checked.report.sha256,
            length=len(data),
        )
        publication = repo.add_targets([*targets, index.new_target()])
    return ReleasedTarget(
        path=path,
        sha256=checked.report.sha256,
        length=len(data),
        custom=custom,
        provenance_index=checked.index,
        quorum=ctx.log.policy.quorum,
        cosigners=checked.report.cosigners,
        publication=publication,
        delta=targets[1].path if len(targets) > 1 else None,
        channel_index=index.path,
    )


def _check_build(checked: CheckedProvenance, name: str, version: int) -> None:
    """Check 1: an AV-database build of this database and version."""
    definition = Provenance.from_statement(checked.statement).build_definition
    params = definition.external_parameters
    if (
        definition.build_type != BUILD_TYPE
        or params.get("database") != name
        or params.get("version") != version
    ):
        raise PolicyError(
            f"refused: the provenance is not of an AV-database build of {name} version {version}",
            check="provenance",
        )
