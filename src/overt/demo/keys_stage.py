"""Demo stage "keys bound to a jurisdiction": the conveyor's keys, its builder registry, provenance signed in
its jurisdiction, two refusals (a foreign jurisdiction, an unregistered builder), a key rotation, and a key's
whole history read back from the log.

Every signature and every refusal becomes a log entry; the audit at the end checks that the log holds exactly
what the builder key did, which is what makes a secret signature detectable.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from overt.attest.dsse import Envelope
from overt.attest.provenance import BuildDefinition, Builder, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.verify import verify_statement
from overt.demo.claims import Claim, Promise, Stage, Status
from overt.demo.context import DemoContext
from overt.errors import PolicyError, VerificationError
from overt.keys.audit import REFUSED, SIGNED, audit_key
from overt.keys.builders import conveyor_builder_id, register_first_builder
from overt.keys.registry import KeyRecord, Role, load_public_keys
from overt.keys.rotation import rotate
from overt.keys.signers import generate_file_key

JURISDICTION = Promise.SIGNED_IN_JURISDICTION
UNREGISTERED_BUILDER = "https://build.ru.example/conveyor/v1"
SUBJECT = (
    ResourceDescriptor(name="demo-app-1.0.tar.gz", digest={"sha256": hashlib.sha256(b"demo").hexdigest()}),
)


def _provenance(builder_id: str) -> Statement:
    return Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/v1", external_parameters={"source": "demo"}
        ),
        run_details=RunDetails(builder=Builder(id=builder_id)),
    ).statement(SUBJECT)


def _generate_keys(ctx: DemoContext) -> Claim:
    h, now = ctx.home, datetime.now(UTC)
    for role, keytype in ((Role.BUILDER, "ed25519"), (Role.AUDITOR, "ecdsa"), (Role.RELEASE, "ed25519")):
        uri, key = generate_file_key(h.paths.keys, keytype)
        h.registry.save(
            KeyRecord.create(
                key,
                role=role,
                jurisdiction=h.conveyor.jurisdiction,
                valid_from=now,
                valid_until=None,
                uri=uri,
            )
        )
    records = h.registry.records()
    if {r.role for r in records} != {Role.LOG, Role.BUILDER, Role.AUDITOR, Role.RELEASE} or any(
        r.jurisdiction != h.conveyor.jurisdiction for r in records
    ):
        raise VerificationError(f"the conveyor's keys are not all bound to {h.conveyor.jurisdiction}")
    builder = h.registry.current(Role.BUILDER, now)
    return Claim(
        id="keys.bound-to-jurisdiction",
        promise=JURISDICTION,
        status=Status.PROVED,
        check=f"each of the conveyor's keys (log, builder, auditor, release) is registered with one role and "
        f"jurisdiction {h.conveyor.jurisdiction}; their public halves are published under public/keys/",
        evidence=ctx.rel(ctx.public_key(builder.keyid)),
        recheck=ctx.overt("keys", "list", "--home", h.path),
        facts={
            "keys": [
                {"keyid": r.keyid, "role": r.role.value, "jurisdiction": r.jurisdiction} for r in records
            ]
        },
    )


def _builder_registry(ctx: DemoContext) -> Claim:
    h = ctx.home
    release_key = h.registry.current(Role.RELEASE, datetime.now(UTC))
    builder_id = h.conveyor.provenance_builder_id
    registered = register_first_builder(
        h.builder_store(),
        h.signing_service(),
        release_key,
        builder_id=builder_id,
        jurisdiction=h.conveyor.jurisdiction,
    )
    if registered is None:
        raise VerificationError("the demo's new home already had a builder registry")
    registry, signed = registered
    return Claim(
        id="keys.builder-registry",
        promise=JURISDICTION,
        status=Status.PROVED,
        check=f"the builder registry lists exactly one builder, {builder_id}, in {h.conveyor.jurisdiction}; it "
        f"is signed by release key {release_key.keyid[:16]} and is log entry {signed.receipt.index}. Builder "
        "keys sign provenance only from builder ids listed there, compared exactly",
        evidence=ctx.rel(h.paths.public / "builders" / "registry.dsse.json"),
        recheck=ctx.overt("keys", "builders", "list", "--home", h.path),
        facts={"version": registry.version, "builder_id": builder_id, "log_index": signed.receipt.index},
    )


def _signed_in_jurisdiction(ctx: DemoContext, builder: KeyRecord) -> Claim:
    h = ctx.home
    signed = h.signing_service().sign(
        builder, _provenance(conveyor_builder_id(h.conveyor.builder_id, h.conveyor.jurisdiction))
    )
    path = ctx.write_evidence("provenance.dsse.json", signed.entry)
    (published,) = load_public_keys([ctx.public_key(builder.keyid)])
    verify_statement(Envelope.from_bytes(signed.entry), [published.key])
    client = ctx.client()
    client.verify_inclusion(signed.entry, signed.receipt.index, client.update().checkpoint)
    return Claim(
        id="keys.provenance-signed-in-jurisdiction",
        promise=JURISDICTION,
        status=Status.PROVED,
        check=f"SLSA provenance from the registered builder in {h.conveyor.jurisdiction} was signed by builder "
        f"key {builder.keyid[:16]} (jurisdiction {builder.jurisdiction}); the signature verifies with the "
        f"published key, and the envelope is log entry {signed.receipt.index}, inclusion verified",
        evidence=ctx.rel(path),
        recheck=ctx.log_verify("--entry", path, "--index", signed.receipt.index),
        facts={"keyid": builder.keyid, "log_index": signed.receipt.index},
    )


def _refused(
    ctx: DemoContext, builder: KeyRecord, *, statement: Statement, name: str
) -> tuple[int, str, str]:
    """Ask the builder key to sign ``statement``; return the index of the logged refusal, its reason, and the
    evidence file holding the refused statement."""
    path = ctx.write_evidence(name, statement.to_bytes())
    try:
        ctx.home.signing_service().sign(builder, statement)
    except PolicyError as e:
        return int(e.evidence["refusal_logged_at"]), str(e), ctx.rel(path)
    raise VerificationError(f"the builder key signed the statement in {path}")


def _refusals(ctx: DemoContext, builder: KeyRecord) -> tuple[Claim, Claim]:
    h, audit = (
        ctx.home,
        ctx.overt("keys", "audit", builder.keyid, "--home", ctx.home.path, "--policy", ctx.pinned_policy),
    )
    foreign_id = conveyor_builder_id(h.conveyor.builder_id, "US")
    foreign = _refused(ctx, builder, statement=_provenance(foreign_id), name="foreign-provenance.json")
    unregistered = _refused(
        ctx, builder, statement=_provenance(UNREGISTERED_BUILDER), name="unregistered-builder-provenance.json"
    )
    return (
        Claim(
            id="keys.foreign-jurisdiction-refused",
            promise=JURISDICTION,
            status=Status.PROVED,
            check=f"the builder key refused to sign provenance from {foreign_id}, a build in US, outside its "
            f"jurisdiction {builder.jurisdiction}; the refusal itself is log entry {foreign[0]}",
            evidence=foreign[2],
            recheck=audit,
            facts={"refusal_log_index": foreign[0], "reason": foreign[1]},
        ),
        Claim(
            id="keys.unregistered-builder-refused",
            promise=JURISDICTION,
            status=Status.PROVED,
            check=f"the builder key refused to sign provenance from {UNREGISTERED_BUILDER}, which names no "
            f"jurisdiction and is not in the builder registry; the refusal is log entry {unregistered[0]}",
            evidence=unregistered[2],
            recheck=audit,
            facts={"refusal_log_index": unregistered[0], "reason": unregistered[1]},
        ),
    )


def _rotated(ctx: DemoContext, builder: KeyRecord) -> Claim:
    h = ctx.home
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    draft = KeyRecord.create(
        key,
        role=Role.BUILDER,
        jurisdiction=builder.jurisdiction,
        valid_from=datetime.now(UTC),
        valid_until=None,
        uri=uri,
    )
    new, rotation = rotate(
        h.signing_service(), h.registry, builder, new_uri=uri, new_key_record=draft, reason="demo rotation"
    )
    old_provenance = ctx.evidence / "provenance.dsse.json"
    (published,) = load_public_keys([ctx.public_key(builder.keyid)])
    verify_statement(Envelope.from_bytes(old_provenance.read_bytes()), [published.key])
    return Claim(
        id="keys.rotation-logged",
        promise=Promise.NOTHING_SIGNED_IN_SECRET,
        status=Status.PROVED,
        check=f"the builder key was replaced by {new.keyid[:16]} through a statement the old key signed, log "
        f"entry {rotation.receipt.index}, so a customer following the log sees the change of key; provenance "
        "the old key signed still verifies with the old public key",
        evidence=ctx.rel(ctx.public_key(new.keyid)),
        recheck=ctx.overt("attest", "verify", old_provenance, "--key", ctx.public_key(builder.keyid)),
        facts={"old_keyid": builder.keyid, "new_keyid": new.keyid, "log_index": rotation.receipt.index},
    )


def _audited(ctx: DemoContext, builder: KeyRecord) -> Claim:
    report = audit_key(ctx.client(), builder.key)
    kinds = [e.kind for e in report.entries]
    if kinds != [SIGNED, REFUSED, REFUSED, SIGNED] or not all(e.inclusion_verified for e in report.entries):
        raise VerificationError(f"the log holds {kinds} for builder key {builder.keyid[:16]}")
    listed = ", ".join(f"{e.index} {e.kind}" for e in report.entries)
    return Claim(
        id="keys.audit-complete",
        promise=Promise.NOTHING_SIGNED_IN_SECRET,
        status=Status.PROVED,
        check=f"reading the whole log, a customer finds exactly what builder key {builder.keyid[:16]} did: "
        f"entries {listed} (one provenance, the two refusals, the rotation), each inclusion verified",
        evidence=ctx.rel(ctx.public_key(builder.keyid)),
        recheck=ctx.overt(
            "keys", "audit", builder.keyid, "--home", ctx.home.path, "--policy", ctx.pinned_policy
        ),
        facts={
            "keyid": builder.keyid,
            "entries": [{"index": e.index, "kind": e.kind} for e in report.entries],
        },
    )


def keys_stage(ctx: DemoContext) -> Stage:
    keys = _generate_keys(ctx)
    registry = _builder_registry(ctx)
    builder = ctx.home.registry.current(Role.BUILDER, datetime.now(UTC))
    signed = _signed_in_jurisdiction(ctx, builder)
    foreign, unregistered = _refusals(ctx, builder)
    return Stage(
        name="keys",
        title="keys bound to a jurisdiction",
        setup=f"the conveyor builds and signs in {ctx.home.conveyor.jurisdiction}; its keys are files "
        "(securesystemslib file2: signers)",
        claims=(
            keys,
            registry,
            signed,
            foreign,
            unregistered,
            _rotated(ctx, builder),
            _audited(ctx, builder),
        ),
    )
