"""Rebuild what one logged provenance describes, from the escrow alone, and compare with its subjects.

1. :func:`read_provenance`: a log entry counts only if it is a DSSE envelope of an in-toto statement with an
   SLSA Provenance v1 predicate of a build type this rebuilder knows (a conveyor build,
   :data:`overt.build.publish.BUILD_TYPE`, or an AV database, :data:`overt.avdb.release.BUILD_TYPE`), signed
   by a pinned vendor key of role builder. Anything else claiming to be provenance is skipped with its reason.
2. :func:`reproduce`: fetch every escrowed input the provenance resolves (the source snapshot, checked against
   sha256 and dirHash, and the toolchain inputs) through :class:`~overt.auditor.site.EscrowCache`, then build
   with the conveyor's own code: :func:`overt.build.run.run_and_compare` (one run, the reference variation, in
   this host's sandbox) with the environment the provenance recorded, fetched and checked against the digest
   of its ``environment:debian`` dependency; or :func:`overt.avdb.release.build_archive` for a database.
3. compare the outputs with the subjects by name and sha256 (:func:`compare_subjects`). On a mismatch, fetch
   the published artifact (checked against the subject digest) and run diffoscope on it and the rebuilt one.

The verdict tells three cases apart, as rebuilderd does: GOOD (every subject rebuilt bit for bit), BAD (built,
but a subject differs, or an output is missing or extra), FAIL (the build failed, or an input could not be
fetched or verified: nothing was compared). An environment difference
(:func:`overt.build.environment.compare_environments`) is its own reason: a BAD whose environment differs says
``environment differs: ...`` first; a GOOD says it too, since the subjects reproduced anyway.

diffoscope's trees are named as :mod:`overt.build.compare` names them: ``reference/`` is the vendor's published
artifact, ``varied/`` this rebuild. Signing the verdict is :mod:`overt.auditor.summary`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.provenance import SLSA_PROVENANCE_V1, Provenance
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.verify import verify_statement
from overt.auditor.site import EscrowCache, Site, check_build_id, check_sha256
from overt.auditor.verdicts import BAD, FAIL, GOOD
from overt.avdb.package import yara_x_version
from overt.avdb.release import BUILD_TYPE as AVDB_BUILD_TYPE
from overt.avdb.release import build_archive
from overt.build.compare import DIFFERENT, DiffoscopeReport, Verdict, diffoscope_report
from overt.build.environment import ENVIRONMENT_NAME, EnvironmentDifference
from overt.build.outputs import Output
from overt.build.publish import BUILD_TYPE as PRODUCT_BUILD_TYPE
from overt.build.run import load_recipe, run_and_compare
from overt.errors import (
    BuildError,
    ConfigError,
    FormatError,
    SignatureError,
    TransportError,
    VerificationError,
)
from overt.source.escrow import INPUT, SOURCE, snapshot_files

KNOWN_BUILD_TYPES = (PRODUCT_BUILD_TYPE, AVDB_BUILD_TYPE)
_CANNOT_REBUILD = (BuildError, ConfigError, FormatError, TransportError, VerificationError)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedProvenance:
    """A provenance entry of the log, verified: signed by pinned vendor key ``keyid``, at ``index``."""

    index: int
    entry: bytes  # the envelope, byte for byte as logged
    sha256: str  # of ``entry``
    statement: Statement
    provenance: Provenance
    keyid: str

    @property
    def build_type(self) -> str:
        return self.provenance.build_definition.build_type

    @property
    def subjects(self) -> tuple[ResourceDescriptor, ...]:
        return self.statement.subject

    @property
    def artifact(self) -> str:
        """The subjects' names, as one line."""
        return ", ".join(s.name or s.digest.get("sha256", "")[:16] for s in self.subjects)


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A log entry that claims to be provenance but does not count, and why."""

    index: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason}


def read_provenance(entry: bytes, index: int, keys: Sequence[Key]) -> LoggedProvenance | Skipped | None:
    """The provenance ``entry`` is (step 1 of the module doc), a :class:`Skipped` if it claims to be one and
    does not count, None if it is something else (a VSA, an escrow record, any other entry)."""
    try:
        envelope = Envelope.from_bytes(entry)
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            return None
        claimed = Statement.from_bytes(envelope.payload)
    except FormatError:
        return None
    if claimed.predicate_type != SLSA_PROVENANCE_V1:
        return None
    try:
        statement = verify_statement(envelope, keys, 1)
    except SignatureError:
        return Skipped(
            index=index, reason="a provenance not signed by any pinned vendor builder key: not trusted"
        )
    try:
        provenance = Provenance.from_statement(statement)
    except FormatError as e:
        return Skipped(index=index, reason=f"a signed provenance that does not parse: {e}")
    if provenance.build_definition.build_type not in KNOWN_BUILD_TYPES:
        return Skipped(
            index=index,
            reason=f"build type {provenance.build_definition.build_type[:80]} is not one this rebuilder knows",
        )
    signer = next(k.keyid for k in keys if _signed_by(envelope, k))
    return LoggedProvenance(
        index=index,
        entry=entry,
        sha256=hashlib.sha256(entry).hexdigest(),
        statement=statement,
        provenance=provenance,
        keyid=signer,
    )


def _signed_by(envelope: Envelope, key: Key) -> bool:
    try:
        verify_statement(envelope, [key], 1)
    except SignatureError:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Reproduction:
    """What rebuilding one provenance established, before anything is signed."""

    verdict: str  # GOOD, BAD or FAIL
    reason: str
    resource_uri: str  # where a reader fetches the artifact judged
    differing: tuple[str, ...] = ()  # subjects (or outputs) that did not reproduce
    environment: EnvironmentDifference | None = None  # this host's against the recorded one
    report: DiffoscopeReport | None = None  # on a BAD, when the published artifact could be fetched

    def to_dict(self) -> dict[str, Any]:
        env = self.environment
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "resource_uri": self.resource_uri,
            "differing": list(self.differing),
            "environment": None if env is None else env.to_dict() | {"text": env.text()},
        }


def reproduce(prov: LoggedProvenance, *, site: Site, cache: EscrowCache, workdir: Path) -> Reproduction:
    """Rebuild ``prov`` in ``workdir`` (the caller's, removed by it) and compare; never raises for what the
    site or the build did: those are FAIL."""
    uri = site.url
    try:
        if prov.build_type == AVDB_BUILD_TYPE:
            uri = _database_uri(prov, site)
            return _rebuild_database(prov, site=site, cache=cache, workdir=workdir, uri=uri)
        build_id = _build_id(prov)
        uri = site.url_of("builds", build_id, prov.subjects[0].name)
        return _rebuild_product(prov, site=site, cache=cache, workdir=workdir, uri=uri, build_id=build_id)
    except BuildError as e:
        return Reproduction(verdict=FAIL, reason=f"the build failed: {e}", resource_uri=uri)
    except _CANNOT_REBUILD as e:
        return Reproduction(
            verdict=FAIL, reason=f"the inputs could not be fetched or verified: {e}", resource_uri=uri
        )


# --- a conveyor build ------------------------------------------------------------------------------------


def _build_id(prov: LoggedProvenance) -> str:
    return check_build_id(prov.provenance.run_details.metadata.invocation_id[:16])


def _source_sha256(external: Mapping[str, Any]) -> str:
    source = external.get("source")
    digest = source.get("digest") if isinstance(source, dict) else None
    return check_sha256(digest.get("sha256") if isinstance(digest, dict) else None, "the provenance's source")


def _fetch_inputs(prov: LoggedProvenance, *, site: Site, cache: EscrowCache) -> str:
    """Every escrowed dependency into the cache, verified; the source snapshot's sha256."""
    definition = prov.provenance.build_definition
    source_sha = _source_sha256(definition.external_parameters)
    escrowed = [d for d in definition.resolved_dependencies if d.uri.startswith("escrow/")]
    if not any(d.digest.get("sha256") == source_sha for d in escrowed):
        raise FormatError("the provenance's source is not among its resolved dependencies")
    for d in escrowed:
        cache.ensure(site, d, kind=SOURCE if d.digest.get("sha256") == source_sha else INPUT)
    return source_sha


def _rebuild_product(
    prov: LoggedProvenance, *, site: Site, cache: EscrowCache, workdir: Path, uri: str, build_id: str
) -> Reproduction:
    source_sha = _fetch_inputs(prov, site=site, cache=cache)
    escrow = cache.escrow
    recipe = load_recipe(escrow.read(escrow.get(source_sha)))
    listed = {d.digest.get("sha256") for d in prov.provenance.build_definition.resolved_dependencies}
    unlisted = [t.name for t in recipe.toolchain if t.sha256 not in listed]
    if unlisted:
        raise VerificationError(
            f"the recipe's toolchain inputs {', '.join(unlisted)} are not among the provenance's dependencies"
        )
    recorded = None
    deps = prov.provenance.build_definition.resolved_dependencies
    environment = next((d for d in deps if d.name == ENVIRONMENT_NAME), None)
    if environment is not None:
        sha256 = check_sha256(environment.digest.get("sha256"), "the recorded environment's digest")
        recorded = site.environment(build_id, sha256=sha256)
    result = run_and_compare(escrow, source_sha, workdir=workdir / "build", recorded_environment=recorded)
    return compare_subjects(
        prov.subjects,
        {o.name: o for o in result.reference.outputs},
        published=lambda name, sha256: site.build_file(build_id, name, sha256=sha256),
        environment=result.environment_difference,
        resource_uri=uri,
        workdir=workdir,
    )


# --- an AV database --------------------------------------------------------------------------------------


def _database_params(prov: LoggedProvenance) -> tuple[str, int]:
    external = prov.provenance.build_definition.external_parameters
    name, version = external.get("database"), external.get("version")
    if not isinstance(name, str) or not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError("the database provenance names no database name and positive version")
    return name, version


def _database_uri(prov: LoggedProvenance, site: Site) -> str:
    name, version = _database_params(prov)
    return site.url_of("avdb", name, f"{version}.avdb")


def _rebuild_database(
    prov: LoggedProvenance, *, site: Site, cache: EscrowCache, workdir: Path, uri: str
) -> Reproduction:
    name, version = _database_params(prov)
    source_sha = _fetch_inputs(prov, site=site, cache=cache)
    escrow = cache.escrow
    files = snapshot_files(escrow.read(escrow.get(source_sha)))
    data, compiled = build_archive(files, name=name, version=version)
    file_name = f"{name}-{version}.avdb"
    out = workdir / "database" / file_name
    out.parent.mkdir(parents=True)
    out.write_bytes(data)
    rebuilt = Output(
        name=file_name, sha256=hashlib.sha256(data).hexdigest(), size=len(data), executable=False, path=out
    )
    found = compare_subjects(
        prov.subjects,
        {file_name: rebuilt},
        published=lambda _, sha256: site.database(name, version, sha256=sha256),
        environment=None,
        resource_uri=uri,
        workdir=workdir,
    )
    if found.verdict != BAD:
        return found
    internal = prov.provenance.build_definition.internal_parameters
    theirs = internal.get("compiler", {}).get("yaraX") if isinstance(internal.get("compiler"), dict) else None
    notes = []
    if internal.get("compiledRules") is not compiled:
        notes.append(
            f"rules {'compiled' if compiled else 'not compiled'} here, "
            f"{'compiled' if internal.get('compiledRules') else 'not compiled'} by the vendor"
        )
    if isinstance(theirs, str) and theirs != yara_x_version():
        notes.append(f"yara-x {theirs} recorded vs {yara_x_version()} here")
    if not notes:
        return found
    return Reproduction(
        verdict=BAD,
        reason=f"{'; '.join(notes)}: {found.reason}",
        resource_uri=uri,
        differing=found.differing,
        report=found.report,
    )


# --- comparing -------------------------------------------------------------------------------------------


def compare_subjects(
    subjects: Sequence[ResourceDescriptor],
    rebuilt: Mapping[str, Output],
    *,
    published: Callable[[str, str], bytes],
    environment: EnvironmentDifference | None,
    resource_uri: str,
    workdir: Path,
) -> Reproduction:
    """GOOD if ``rebuilt`` holds every subject, byte for byte, and nothing else; else BAD, with diffoscope's
    report on the published artifacts (``published(name, sha256)``, checked) against the rebuilt ones."""
    wanted = {s.name: s.digest.get("sha256", "") for s in subjects}
    differing = sorted(n for n, d in wanted.items() if n in rebuilt and rebuilt[n].sha256 != d)
    missing = sorted(n for n in wanted if n not in rebuilt)
    extra = sorted(n for n in rebuilt if n not in wanted)
    env = environment.text() if environment is not None and not environment.same else ""
    if not (differing or missing or extra):
        reason = "every subject rebuilt bit for bit" + (f" ({env})" if env else "")
        return Reproduction(verdict=GOOD, reason=reason, resource_uri=resource_uri, environment=environment)
    parts = [
        f"{n} rebuilt with sha256 {rebuilt[n].sha256}, the provenance names {wanted[n]}" for n in differing
    ]
    parts += [f"{n} was not made by the rebuild" for n in missing]
    parts += [f"{n} was made by the rebuild, the provenance does not name it" for n in extra]
    mismatch = "; ".join(parts)
    report = _report(differing, missing, wanted=wanted, rebuilt=rebuilt, published=published, workdir=workdir)
    return Reproduction(
        verdict=BAD,
        reason=f"{env}; {mismatch}" if env else mismatch,
        resource_uri=resource_uri,
        differing=tuple(differing + missing + extra),
        environment=environment,
        report=report,
    )


def _report(
    differing: list[str],
    missing: list[str],
    *,
    wanted: Mapping[str, str],
    rebuilt: Mapping[str, Output],
    published: Callable[[str, str], bytes],
    workdir: Path,
) -> DiffoscopeReport:
    """diffoscope on the vendor's published copy of each differing subject against this rebuild's."""
    theirs: list[Output] = []
    unavailable = []
    for name in differing + missing:
        try:
            data = published(name, wanted[name])
        except (TransportError, VerificationError, FormatError) as e:
            unavailable.append(f"{name}: {e}")
            continue
        path = workdir / "published" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        executable = rebuilt[name].executable if name in rebuilt else False
        theirs.append(
            Output(name=name, sha256=wanted[name], size=len(data), executable=executable, path=path)
        )
    if not theirs:
        return DiffoscopeReport(
            text="no report: the published artifacts could not be fetched (" + "; ".join(unavailable) + ")"
        )
    verdict = Verdict(
        verdict=DIFFERENT,
        differing=tuple(o.name for o in theirs if o.name in rebuilt),
        missing=tuple(o.name for o in theirs if o.name not in rebuilt),
    )
    mine = [rebuilt[o.name] for o in theirs if o.name in rebuilt]
    return diffoscope_report(reference=theirs, varied=mine, verdict=verdict, workdir=workdir / "compare")
