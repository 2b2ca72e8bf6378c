"""Rebuild what one logged provenance describes, from the escrow alone, and compare with its subjects.

1. :func:`read_provenance`: a log entry counts only if it is a DSSE envelope of an in-toto statement with an
   SLSA Provenance v1 predicate of a build type this rebuilder knows (a conveyor build,
   :data:`overt.build.publish.BUILD_TYPE`, or an AV database, :data:`overt.avdb.release.BUILD_TYPE`), signed
   by a pinned vendor key of role builder, whose every subject names a sha256. Anything else claiming to be
   provenance (a statement without subjects included) is skipped with its reason.
2. :func:`reproduce`: check what the provenance claims (:mod:`overt.auditor.claims`: its subjects, and once
   the source is fetched, that its build definition is the one the escrowed recipe makes); fetch every
   escrowed input the provenance resolves (the source snapshot, checked against sha256 and dirHash, and the
   toolchain inputs) through :class:`~overt.auditor.site.EscrowCache`, then build with the conveyor's own code:
   :func:`overt.build.run.run_and_compare` (one run, the reference variation, in this host's sandbox) with the
   environment the provenance recorded, fetched and checked against the digest of its ``environment:debian``
   dependency; or :func:`overt.avdb.release.build_archive` for a database.
3. compare the outputs with the subjects by name and sha256, every subject (:func:`compare_subjects`). On a
   mismatch, fetch the published artifact (checked against the subject digest) and run diffoscope on it and
   the rebuilt one.

The verdict tells three cases apart, as rebuilderd does: GOOD (every subject rebuilt bit for bit), BAD (built,
but a subject differs, or an output is missing or extra; or the provenance's claim is refused before any
build, final at once), FAIL (the build ran and failed, or the site served an input whose bytes do not match
the digest the provenance names: nothing was compared). A failure to reach or read the site at all (a
:class:`~overt.errors.TransportError`: connection, status, size, timeout) is none of them: it is raised, and
the job stays pending without using an attempt, since an unreachable site says nothing about the build.

The environment (:class:`EnvironmentCheck`): a difference
(:func:`overt.build.environment.compare_environments`) is its own reason: a BAD whose environment differs says
``environment differs: ...`` first; a GOOD says it too, since the subjects reproduced anyway. A provenance that
records no environment (a conveyor on a host without dpkg records none, and never claims an empty one) is
still judged by its subjects, which is all a PASSED claims, and the reason says "the provenance recorded no
environment, so none was compared"; so does a rebuilder's host without dpkg.

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

from overt import jsonio
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.provenance import SLSA_PROVENANCE_V1, Provenance
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.verify import verify_envelope, verify_statement
from overt.auditor.claims import (
    check_database_definition,
    check_product_definition,
    check_subjects,
    is_refusal,
    refusal,
    source_digest,
)
from overt.auditor.site import EscrowCache, Site, check_build_id, check_sha256
from overt.auditor.verdicts import BAD, FAIL, GOOD
from overt.avdb.package import yara_x_version
from overt.avdb.release import BUILD_TYPE as AVDB_BUILD_TYPE
from overt.avdb.release import build_archive
from overt.build.compare import DIFFERENT, DiffoscopeReport, Verdict, diffoscope_report
from overt.build.environment import ENVIRONMENT_NAME, EnvironmentDifference
from overt.build.outputs import Output
from overt.build.publish import BUILD_TYPE as PRODUCT_BUILD_TYPE
from overt.build.recipe import Recipe
from overt.build.run import RunResult, load_recipe, run_and_compare
from overt.errors import (
    BuildError,
    ConfigError,
    FormatError,
    SignatureError,
    TransportError,
    VerificationError,
)
from overt.source.escrow import INPUT, SOURCE, snapshot_files
from overt.source.snapshot import check_member_path

KNOWN_BUILD_TYPES = (PRODUCT_BUILD_TYPE, AVDB_BUILD_TYPE)
NO_ENVIRONMENT_RECORDED = "the provenance recorded no environment, so none was compared"
NO_OWN_ENVIRONMENT = "this host has no dpkg database, so the recorded environment was not compared"


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
        claimed = jsonio.load_object(envelope.payload, "in-toto statement")
    except FormatError:
        return None
    if claimed.get("predicateType") != SLSA_PROVENANCE_V1:
        return None
    try:
        verified = verify_envelope(envelope, keys, 1)
    except SignatureError:
        return Skipped(
            index=index, reason="a provenance not signed by any pinned vendor builder key: not trusted"
        )
    try:
        statement = Statement.from_bytes(verified.payload)
        provenance = Provenance.from_statement(statement)
    except FormatError as e:
        return Skipped(index=index, reason=f"a signed provenance that does not parse: {e}")
    unnamed = next((s for s in statement.subject if "sha256" not in s.digest), None)
    if unnamed is not None:
        return Skipped(
            index=index,
            reason=f"a signed provenance whose subject {unnamed.name[:80]!r} names no sha256 digest: "
            "this rebuilder compares sha256",
        )
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
class EnvironmentCheck:
    """This host's environment against the one the provenance recorded: compared (``difference``), or not,
    because the provenance recorded none or this host has none."""

    recorded_sha256: str | None
    own_sha256: str | None
    difference: EnvironmentDifference | None = None

    @property
    def differs(self) -> bool:
        """Compared, and not the same: an explanation for a mismatch."""
        return self.difference is not None and not self.difference.same

    @property
    def noted(self) -> bool:
        """Worth saying in a verdict's reason: a difference, or no comparison at all."""
        return self.difference is None or not self.difference.same

    def text(self) -> str:
        if self.difference is not None:
            return self.difference.text()
        return NO_ENVIRONMENT_RECORDED if self.recorded_sha256 is None else NO_OWN_ENVIRONMENT

    def to_dict(self) -> dict[str, Any]:
        """As the VSA's ``rebuild.environment`` and ``--json`` give it (``same`` null: not compared)."""
        diff = self.difference
        return {
            "recorded": self.recorded_sha256,
            "own": self.own_sha256,
            "same": None if diff is None else diff.same,
            "text": self.text(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Reproduction:
    """What rebuilding one provenance established, before anything is signed."""

    verdict: str  # GOOD, BAD or FAIL
    reason: str
    resource_uri: str  # where a reader fetches the artifact judged
    differing: tuple[str, ...] = ()  # subjects (or outputs) that did not reproduce
    environment: EnvironmentCheck | None = None  # None: a build without one (an AV database, a refusal)
    report: DiffoscopeReport | None = None  # on a BAD, when the published artifact could be fetched
    built: bool = True  # a build ran (False: refused or failed before building)
    final: bool = False  # no retry can change it: the provenance's claim itself was refused

    def to_dict(self) -> dict[str, Any]:
        env = self.environment
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "resource_uri": self.resource_uri,
            "differing": list(self.differing),
            "environment": None if env is None else env.to_dict(),
        }


def reproduce(prov: LoggedProvenance, *, site: Site, cache: EscrowCache, workdir: Path) -> Reproduction:
    """Rebuild ``prov`` in ``workdir`` (the caller's, removed by it) and compare (module doc).

    Raises:
        TransportError: the site could not be reached or read (the job stays pending, no attempt used).
    """
    uri = site.url
    try:
        check_subjects(prov.subjects)
        if prov.build_type == AVDB_BUILD_TYPE:
            uri = _database_uri(prov, site)
            return _rebuild_database(prov, site=site, cache=cache, workdir=workdir, uri=uri)
        build_id = _build_id(prov)
        uri = site.url_of("builds", build_id, prov.subjects[0].name)
        return _rebuild_product(prov, site=site, cache=cache, workdir=workdir, uri=uri, build_id=build_id)
    except BuildError as e:
        return Reproduction(verdict=FAIL, reason=f"the build failed: {e}", resource_uri=uri)
    except TransportError:
        raise
    except VerificationError as e:
        if is_refusal(e):
            return Reproduction(verdict=BAD, reason=str(e), resource_uri=uri, built=False, final=True)
        reason = f"the site served bytes that do not match the digests the provenance names: {e}"
        return Reproduction(verdict=FAIL, reason=reason, resource_uri=uri, built=False)
    except (ConfigError, FormatError) as e:
        reason = f"the escrowed inputs could not be used: {e}"
        return Reproduction(verdict=FAIL, reason=reason, resource_uri=uri, built=False)


# --- a conveyor build ------------------------------------------------------------------------------------


def _build_id(prov: LoggedProvenance) -> str:
    try:
        return check_build_id(prov.provenance.run_details.metadata.invocation_id[:16])
    except FormatError as e:
        raise refusal(f"the provenance's invocation id names no build directory: {e}") from e


def _source_sha256(external: Mapping[str, Any]) -> str:
    try:
        return check_sha256(source_digest(external).get("sha256"), "the provenance's source")
    except FormatError as e:
        raise refusal(str(e)) from e


def _fetch_source(prov: LoggedProvenance, *, site: Site, cache: EscrowCache) -> str:
    """The source snapshot the provenance resolves into the cache, verified; its sha256."""
    definition = prov.provenance.build_definition
    source_sha = _source_sha256(definition.external_parameters)
    source = next((d for d in definition.resolved_dependencies if d.digest.get("sha256") == source_sha), None)
    if source is None:
        raise refusal("the provenance's source is not among its resolved dependencies")
    cache.ensure(site, source, kind=SOURCE)
    return source_sha


def _fetch_toolchain(prov: LoggedProvenance, recipe: Recipe, *, site: Site, cache: EscrowCache) -> None:
    """The recipe's toolchain inputs into the cache, verified, as the provenance resolves them (the claims
    check has made sure it resolves each one)."""
    deps = {d.digest.get("sha256"): d for d in prov.provenance.build_definition.resolved_dependencies}
    for t in recipe.toolchain:
        cache.ensure(site, deps[t.sha256], kind=INPUT)


def _rebuild_product(
    prov: LoggedProvenance, *, site: Site, cache: EscrowCache, workdir: Path, uri: str, build_id: str
) -> Reproduction:
    source_sha = _fetch_source(prov, site=site, cache=cache)
    escrow = cache.escrow
    recipe = load_recipe(escrow.read(escrow.get(source_sha)))
    check_product_definition(prov.provenance, recipe)
    _fetch_toolchain(prov, recipe, site=site, cache=cache)
    recorded, recorded_sha256 = None, None
    deps = prov.provenance.build_definition.resolved_dependencies
    environment = next((d for d in deps if d.name == ENVIRONMENT_NAME), None)
    if environment is not None:
        try:
            recorded_sha256 = check_sha256(
                environment.digest.get("sha256"), "the recorded environment's digest"
            )
        except FormatError as e:
            raise refusal(str(e)) from e
        recorded = site.environment(build_id, sha256=recorded_sha256)
    result = run_and_compare(escrow, source_sha, workdir=workdir / "build", recorded_environment=recorded)
    return compare_subjects(
        prov.subjects,
        {o.name: o for o in result.reference.outputs},
        published=lambda name, sha256: site.build_file(build_id, name, sha256=sha256),
        environment=_environment_check(recorded_sha256, result),
        resource_uri=uri,
        workdir=workdir,
    )


def _environment_check(recorded_sha256: str | None, result: RunResult) -> EnvironmentCheck:
    own = result.environment
    return EnvironmentCheck(
        recorded_sha256=recorded_sha256,
        own_sha256=None if own is None else own.sha256,
        difference=result.environment_difference,
    )


# --- an AV database --------------------------------------------------------------------------------------


def _database_params(prov: LoggedProvenance) -> tuple[str, int]:
    external = prov.provenance.build_definition.external_parameters
    name, version = external.get("database"), external.get("version")
    if not isinstance(name, str) or not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise refusal("the database provenance names no database name and positive version")
    try:
        check_member_path(name)
    except FormatError as e:
        raise refusal(f"the database provenance's name {name[:80]!r} is not a path segment") from e
    return name, version


def _database_uri(prov: LoggedProvenance, site: Site) -> str:
    name, version = _database_params(prov)
    return site.url_of("avdb", name, f"{version}.avdb")


def _rebuild_database(
    prov: LoggedProvenance, *, site: Site, cache: EscrowCache, workdir: Path, uri: str
) -> Reproduction:
    name, version = _database_params(prov)
    check_database_definition(prov.provenance)
    source_sha = _fetch_source(prov, site=site, cache=cache)
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
    environment: EnvironmentCheck | None,
    resource_uri: str,
    workdir: Path,
) -> Reproduction:
    """GOOD if ``rebuilt`` holds every subject, byte for byte, and nothing else; else BAD, with diffoscope's
    report on the published artifacts (``published(name, sha256)``, checked) against the rebuilt ones.

    Raises:
        VerificationError: a :func:`~overt.auditor.claims.refusal`: the subjects name one path twice, or
            one without a sha256 (:func:`check_subjects`); every subject is compared, so such a list can
            never be GOOD.
    """
    check_subjects(subjects)
    wanted = {s.name: s.digest["sha256"] for s in subjects}  # one subject per name, checked above
    differing = sorted(n for n, d in wanted.items() if n in rebuilt and rebuilt[n].sha256 != d)
    missing = sorted(n for n in wanted if n not in rebuilt)
    extra = sorted(n for n in rebuilt if n not in wanted)
    env = environment.text() if environment is not None and environment.noted else ""
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
