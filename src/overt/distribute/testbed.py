"""Building blocks of an endpoint's world, all real, for the demo, the tests and ``benchmarks.update``: software
keys in a home, a conveyor home with a registered builder, provenance signed and logged by the builder key, a
TUF repository, witnesses served over HTTP, SLSA VSAs by test auditors (signed through overt.attest and the
home's signing service, so they are logged, and published with ``overt tuf add-verdict``'s code) and the text
of a customer's trust policy. :func:`forge` and :func:`forge_targets` sign repository metadata with the home's own
online keys and write it into a copy of ``public/`` without logging it: the attacks (a freeze, a targeted update)
that the endpoint must refuse.

Every key made here is a test key: software keys in the home, witness seeds fixed in :data:`TEST_WITNESS_SEEDS`.
Nothing here is used by a conveyor or an endpoint in operation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from securesystemslib.signer import Signer
from tuf.api.metadata import MetaFile

from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor
from overt.attest.vsa import PASSED, VerificationSummary, VsaVerifier
from overt.distribute.checks import ReleaseContext
from overt.distribute.layout import RepositoryLayout, metadata_name
from overt.distribute.metadata import SERIALIZER
from overt.distribute.repository import NewTarget, Repository, RepositoryContext
from overt.distribute.root import RootKeys, init_repository
from overt.distribute.state import RepositoryState, load_repository_state
from overt.distribute.verdicts import add_verdict
from overt.home import Home
from overt.keys.builders import register_first_builder
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key
from overt.keys.signing import Signed
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import parse_ed25519_vkey
from overt.tlog.policy import Group, Policy, PolicyWitness
from overt.tlog.witness import Witness

# Test-only witness keys, fixed so runs are reproducible. Never use them for a real log.
TEST_WITNESS_SEEDS = {"w1": b"\x31" * 32, "w2": b"\x32" * 32}
ONLINE_ROLES = (Role.TARGETS, Role.SNAPSHOT, Role.TIMESTAMP)


def add_key(h: Home, role: Role, *, jurisdiction: str | None = None) -> KeyRecord:
    """A software key of ``role`` saved in ``h``'s registry, active from a minute ago (no lifecycle checks:
    tests use this to make keys a conveyor would refuse, in another jurisdiction say)."""
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    record = KeyRecord.create(
        key,
        role=role,
        jurisdiction=jurisdiction or h.conveyor.jurisdiction,
        valid_from=datetime.now(UTC) - timedelta(minutes=1),
        valid_until=None,
        uri=uri,
    )
    h.registry.save(record)
    return record


def add_release_key(h: Home) -> KeyRecord:
    """A release key, which registers the home's own builder id: version 1 of the builder registry, logged."""
    release = add_key(h, Role.RELEASE)
    register_first_builder(
        h.builder_store(),
        h.signing_service(),
        release,
        builder_id=h.conveyor.provenance_builder_id,
        jurisdiction=h.conveyor.jurisdiction,
    )
    return release


def conveyor_home(path: Path, *, origin: str, jurisdiction: str = "CH") -> Home:
    """A new home in ``jurisdiction`` with a builder key and a release key that registered its builder id."""
    h = Home.init(path, origin=origin, jurisdiction=jurisdiction)
    add_key(h, Role.BUILDER)
    add_release_key(h)
    return h


def sample_provenance(h: Home, *, builder_id: str | None = None) -> Provenance:
    """SLSA provenance as the home's builder writes it, for a build that ran elsewhere (a fixed sample)."""
    return Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/bwrap/v1",
            external_parameters={"source": {"uri": "escrow/" + "ab" * 32}},
        ),
        run_details=RunDetails(
            builder=Builder(id=builder_id or h.conveyor.provenance_builder_id),
            metadata=BuildMetadata(started_on="2026-11-28T10:00:00Z", finished_on="2026-11-28T10:01:00Z"),
        ),
    )


def sign_provenance(h: Home, data: bytes, name: str, *, builder_id: str | None = None) -> Signed:
    """:func:`sample_provenance` for ``data`` (subject ``name``), signed by the home's builder key and logged."""
    statement = sample_provenance(h, builder_id=builder_id).statement(
        (ResourceDescriptor(name=name, digest={"sha256": hashlib.sha256(data).hexdigest()}),)
    )
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    return h.signing_service().sign(builder, statement)


def init_tuf(h: Home, root_keys_dir: Path, *, count: int = 3, threshold: int = 2) -> RootKeys:
    """Online keys (targets, snapshot, timestamp) in ``h``, root keys in ``root_keys_dir``, version 1 of every
    role (``overt tuf init``)."""
    for role in ONLINE_ROLES:
        add_key(h, role)
    keys, _ = init_repository(
        RepositoryContext.of_home(h), root_keys_dir=root_keys_dir, count=count, threshold=threshold
    )
    return keys


def witness_with_test_key(
    name: str, h: Home, state: Path, *, now: Callable[[], float] | None = None
) -> Witness:
    """A witness for ``h``'s log with the test key :data:`TEST_WITNESS_SEEDS` ``[name]``, its state in
    ``state``; ``now`` (a callable giving seconds) is its clock, real time by default."""
    signer = CosignatureSigner.create(
        f"{name}.test.overt.example",
        TEST_WITNESS_SEEDS[name],
        now=now,
    )
    vkey = parse_ed25519_vkey((h.log.paths.public / "vkey").read_text().strip())
    return Witness(signer, [vkey], state)


def witnessed_policy(h: Home, witnesses: Sequence[PolicyWitness], k: int) -> Policy:
    """``h``'s log policy with ``witnesses`` and a quorum of ``k`` of them."""
    names = tuple(w.name for w in witnesses)
    return Policy(
        logs=h.log.policy().logs,
        witnesses=tuple(witnesses),
        groups=(Group(name="witnesses", threshold=k, members=names),),
        quorum="witnesses",
    )


def auditor_verdict(
    h: Home,
    auditor: KeyRecord,
    *,
    path: str,
    sha256: str,
    result: str = PASSED,
    nonce: int = 0,
    provenance: str | None = None,
) -> bytes:
    """A SLSA VSA by ``auditor`` on ``path`` with ``sha256``, signed through overt.attest and logged by ``h``;
    ``nonce`` varies the policy URI so two verdicts on one target are distinct entries. With ``provenance``
    (the sha256 of a provenance envelope) it is a rebuilder's verdict: it names that provenance in
    ``inputAttestations`` and its subject is the build output's name, not the release path."""
    summary = VerificationSummary(
        verifier=VsaVerifier(id=f"https://auditor-{auditor.keyid[:8]}.example/rebuilder"),
        time_verified=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        resource_uri=path,
        policy=ResourceDescriptor(uri=f"https://auditor.example/policy/v1#{nonce}"),
        verification_result=result,
        verified_levels=("SLSA_BUILD_LEVEL_3",),
        input_attestations=()
        if provenance is None
        else (ResourceDescriptor(name="provenance", digest={"sha256": provenance}),),
    )
    name = path if provenance is None else f"out/{path.rsplit('/', 1)[-1]}"
    statement = summary.statement((ResourceDescriptor(name=name, digest={"sha256": sha256}),))
    return h.signing_service().sign(auditor, statement).entry


def vouch(
    h: Home, auditors: Sequence[KeyRecord], *, path: str, sha256: str, result: str = PASSED, nonce: int = 0
) -> None:
    """Each of ``auditors`` logs a verdict on ``path``, published beside the target as 'overt tuf add-verdict'
    publishes it."""
    for i, auditor in enumerate(auditors):
        entry = auditor_verdict(h, auditor, path=path, sha256=sha256, result=result, nonce=nonce * 1000 + i)
        add_verdict(ReleaseContext.of_home(Home(h.path)), entry, target=path)


def trust_policy_text(
    h: Home,
    *,
    url: str,
    root: Path,
    auditors: Sequence[KeyRecord | Path],
    threshold: int,
    follow: Sequence[tuple[str, str]] = (("product", "demo"),),
    max_cosignature_age_hours: int = 24,
    extra: str = "",
) -> str:
    """A customer's trust policy (docs/trust-policy.md) for ``h``'s repository and log served at ``url``: the
    TUF root ``root`` (its sha256 pinned), ``log.policy`` beside it, the auditors' (a record: from ``h``'s
    ``public/keys``; a path: that public key file, an independent auditor's) and the current builder's public
    keys. ``follow`` lists ``(\"product\", name)`` (channel stable) or
    ``(\"database\", name)``."""
    keys = h.paths.public / "keys"
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    follows = "".join(f"\n[[follow]]\n{kind} = {json.dumps(name)}\n" for kind, name in follow)
    return f"""[repository]
url = {json.dumps(url + "/tuf")}
root = {json.dumps(root.name)}
root_sha256 = "{hashlib.sha256(root.read_bytes()).hexdigest()}"

[log]
url = {json.dumps(url + "/log")}
policy = "log.policy"

[auditors]
keys = {json.dumps([str(a if isinstance(a, Path) else keys / f"{a.keyid}.json") for a in auditors])}
threshold = {threshold}

[builders]
ids = [{json.dumps(h.conveyor.provenance_builder_id)}]
keys = [{json.dumps(str(keys / f"{builder.keyid}.json"))}]
threshold = 1

[freshness]
max_cosignature_age_hours = {max_cosignature_age_hours}
{follows}{extra}"""


def forge(
    h: Home,
    fake_home: Path,
    change: Callable[[RepositoryState], list[str]],
    *,
    expires: datetime | None = None,
) -> tuple[str, ...]:
    """Sign a new version of the roles ``change`` edits (it returns their names), then a snapshot and a
    timestamp (expiring at ``expires``, if given), with ``h``'s own online keys, and write them into the
    repository of ``fake_home`` (a copy of ``h``'s ``public/`` under ``fake_home/public``): none of it is
    logged. Returns the names of the metadata files written, in signing order."""
    layout = RepositoryLayout(fake_home)
    state = load_repository_state(layout)
    repo = Repository(RepositoryContext.of_home(h), state)

    def key(role: str) -> Signer:
        return h.signer_for(repo.key_for(role)).signer

    written = []
    for role in change(state):
        md = state.metadata(role)
        md.signed.version += 1
        md.sign(key(role))
        data = md.to_bytes(SERIALIZER)
        (layout.metadata / f"{md.signed.version}.{role}.json").write_bytes(data)
        written.append(metadata_name(role, md.signed.version))
        state.snapshot.signed.meta[f"{role}.json"] = MetaFile(
            md.signed.version, len(data), {"sha256": hashlib.sha256(data).hexdigest()}
        )
    state.snapshot.signed.version += 1
    state.snapshot.sign(key("snapshot"))
    snap = state.snapshot.to_bytes(SERIALIZER)
    (layout.metadata / f"{state.snapshot.signed.version}.snapshot.json").write_bytes(snap)
    ts = state.timestamp
    ts.signed.snapshot_meta = MetaFile(
        state.snapshot.signed.version, len(snap), {"sha256": hashlib.sha256(snap).hexdigest()}
    )
    ts.signed.version += 1
    if expires is not None:
        ts.signed.expires = expires
    ts.sign(key("timestamp"))
    (layout.metadata / "timestamp.json").write_bytes(ts.to_bytes(SERIALIZER))
    snapshot = metadata_name("snapshot", state.snapshot.signed.version)
    return (*written, snapshot, metadata_name("timestamp", ts.signed.version))


def forge_targets(h: Home, fake_home: Path, targets: Sequence[NewTarget]) -> tuple[str, ...]:
    """A targeted update: ``targets`` listed by a new release (or bin) version that :func:`forge` signs with
    ``h``'s keys and writes into ``fake_home``, their files written beside it; nothing is logged. Returns the
    names of the metadata files written."""
    layout = RepositoryLayout(fake_home)

    def add(state: RepositoryState) -> list[str]:
        roles: dict[str, None] = {}
        for t in targets:
            info = t.info()
            role = state.role_for(t.path)
            state.delegated[role].signed.targets[t.path] = info
            roles[role] = None
            out = layout.target_file(t.path, info.hashes["sha256"])
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(t.data)
        return list(roles)

    return forge(h, fake_home, add)
