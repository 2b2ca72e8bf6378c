"""Attacks on an endpoint (issue 12, acceptance): each ends with the agent refusing, with the check that
caught it and the evidence in its message, and keeping the version it had installed.

Everything is real (tests/distribute/world.py): two witnesses on their own ports, the home's log and TUF
repository, the stock ngclient inside the agent, auditors' VSAs signed and logged through overt.attest and
the home's signing service, ``public/`` served over HTTP on 127.0.0.1. The attacker's tools are the home's
own keys used without ``overt release`` (a compromised or careless operator) and files changed on the server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import lzma
import re
import shutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import tomli_w

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.statement import ResourceDescriptor
from overt.attest.vsa import FAILED
from overt.avdb.install import install, installed
from overt.avdb.release import AvdbStore, Released, release
from overt.distribute.channels import CARRIES_PRODUCT, ChannelIndex
from overt.distribute.databases import release_database
from overt.distribute.endpoint import INSTALLED, REFUSED, FollowOutcome
from overt.distribute.evidence import target_evidence
from overt.distribute.layout import delta_path, product_path
from overt.distribute.release import ReleasedTarget, overt_custom
from overt.distribute.repository import NewTarget, Repository
from overt.distribute.testbed import forge, forge_targets, sample_provenance
from overt.home import Home
from overt.keys.context import ConveyorContext
from overt.keys.registry import Role
from overt.source.escrow import read_directory
from tests.avdb.samples import EICAR_RULE, hdb
from tests.distribute.conftest import sign_provenance
from tests.distribute.world import RunningWitness, World, witnessed_policy


def refused(world: World, check: str, match: str, *, now: datetime | None = None) -> FollowOutcome:
    """The agent refuses with ``check`` and ``match`` in its reason, and keeps its installed version."""
    before = world.installed()
    o = world.outcome(now)
    assert o.status == REFUSED, (o.status, o.error)
    assert o.check == check, (o.check, str(o.error))
    assert re.search(match, str(o.error)), str(o.error)
    assert o.error is not None and o.error.exit_code == 1
    assert world.installed() == before
    assert o.record is not None and o.record.version == before
    return o


def installed_1_0(world: World) -> ReleasedTarget:
    released = world.release("1.0")
    world.pin()
    assert world.outcome().status == INSTALLED
    assert world.installed() == "1.0"
    return released


def copy_public(world: World, name: str) -> Path:
    """A copy of the served ``public/`` tree (what a mirror or an attacker serves), as a fake home's."""
    fake_home = world.customer.parent / name
    shutil.copytree(world.home.paths.public, fake_home / "public", symlinks=True)
    return fake_home


def publish_directly(
    world: World,
    version: str,
    data: bytes,
    provenance: bytes,
    index: int,
    *,
    evidence: bool,
    path: str | None = None,
) -> str:
    """What ``overt release`` would refuse, published with the repository's own code: the target (at
    ``path``, by default where ``version`` goes), custom naming ``provenance`` at ``index``, and the channel
    index; with ``evidence``, the provenance's proof too (the repository makes it from the log), else only
    the envelope, with the proof of another entry."""
    path = path or product_path("demo", version, "demo.tar.gz")
    sha = hashlib.sha256(data).hexdigest()
    custom = {
        "overt": {
            "kind": "product",
            "product": "demo",
            "channel": "stable",
            "version": version,
            "provenance": {"sha256": hashlib.sha256(provenance).hexdigest(), "logIndex": index},
        }
    }
    index_target = ChannelIndex(
        carries=CARRIES_PRODUCT,
        name="demo",
        channel="stable",
        version=version,
        target=path,
        sha256=sha,
        length=len(data),
    ).new_target()
    target = NewTarget(
        path=path,
        data=data,
        custom=custom,
        provenance=provenance if evidence else None,
        provenance_index=index if evidence else None,
    )
    with Repository.edit(world.repo.ctx) as repo:
        repo.add_targets([target, index_target])
    if not evidence:
        files = target_evidence(path)
        public = world.repo.public
        (public / files.entry).parent.mkdir(parents=True, exist_ok=True)
        (public / files.entry).write_bytes(provenance)
        honest = target_evidence(product_path("demo", "1.0", "demo.tar.gz"))
        shutil.copy(public / honest.proof, public / files.proof)
    return path


# --- TUF catches these; the agent reports them as refusals and keeps what it has ---------------------------


def test_an_artifact_altered_after_signing_is_refused(world: World) -> None:
    installed_1_0(world)
    v2 = world.release("2.0")
    served = world.repo.public / "targets" / "products" / "demo" / "2.0" / f"{v2.sha256}.demo.tar.gz"
    data = bytearray(served.read_bytes())
    data[0] ^= 1
    served.write_bytes(bytes(data))
    refused(world, "tuf", "LengthOrHashMismatchError")


def test_an_artifact_served_longer_than_signed_is_refused_while_it_downloads(world: World) -> None:
    """The agent's fetcher holds a download in memory; it stops at the signed length as the stock one does."""
    installed_1_0(world)
    v2 = world.release("2.0")
    served = world.repo.public / "targets" / "products" / "demo" / "2.0" / f"{v2.sha256}.demo.tar.gz"
    served.write_bytes(served.read_bytes() + b"x")
    refused(world, "tuf", "more bytes than the signed metadata allows")


def test_a_rollback_to_an_older_version_is_refused(world: World) -> None:
    installed_1_0(world)
    old = copy_public(world, "old-mirror")  # the repository as it was with 1.0
    world.release("2.0")
    assert world.outcome().status == INSTALLED and world.installed() == "2.0"
    # A mirror replays the old repository: TUF's version numbers refuse it.
    world.site.root = old / "public"
    refused(world, "tuf", "BadVersionNumberError|ExpiredMetadataError|version")
    # The operator points the channel back at 1.0, signed and logged: overt's version check refuses it.
    world.site.root = world.home.paths.public
    v1 = product_path("demo", "1.0", "demo.tar.gz")
    with Repository.edit(world.repo.ctx) as repo:
        info = repo.state.released()[v1]
        back = ChannelIndex(
            carries=CARRIES_PRODUCT,
            name="demo",
            channel="stable",
            version="1.0",
            target=v1,
            sha256=info.hashes["sha256"],
            length=info.length,
        )
        repo.add_targets([back.new_target()])
    o = refused(world, "version", "older than the installed version 2.0: a rollback")
    assert o.error is not None and o.error.evidence["offered"] == "1.0"


def test_a_freeze_with_an_expired_timestamp_is_refused(world: World) -> None:
    installed_1_0(world)
    world.release("2.0")
    fake = copy_public(world, "frozen-mirror")
    forge(world.home, fake, lambda state: [], expires=datetime.now(UTC) - timedelta(hours=1))
    world.site.root = fake / "public"
    refused(world, "tuf", "ExpiredMetadataError")


def test_mix_and_match_metadata_is_refused(world: World) -> None:
    installed_1_0(world)
    world.release("2.0")
    meta = world.repo.public / "metadata"
    newest = max(int(p.name.split(".")[0]) for p in meta.glob("*.release.json"))
    # The new snapshot with the release listing of before, served under the new name.
    shutil.copy(meta / f"{newest - 1}.release.json", meta / f"{newest}.release.json")
    refused(world, "tuf", "LengthOrHashMismatchError|hash|length")


# --- the log catches these ---------------------------------------------------------------------------------


def test_a_frozen_view_of_the_log_is_refused(world: World) -> None:
    installed_1_0(world)
    # Nothing new, two days on: the agent cannot confirm it is current and says so.
    later = datetime.now(UTC) + timedelta(days=2)
    refused(
        world,
        "freshness",
        r"48\.0 hours ago; the policy allows 24\.0 hours: the view of the log is frozen or stale",
        now=later,
    )
    # A new version whose every checkpoint the witnesses cosigned with two-day-old timestamps (a replayed,
    # frozen view): TUF's timestamp is fresh, the log's cosignatures are not.
    world.clock.offset = -2 * 24 * 3600
    world.release("2.0")
    o = refused(world, "freshness", "the view of the log is frozen or stale")
    assert o.offered == "2.0"


def test_a_valid_signature_without_a_log_entry_is_refused(world: World) -> None:
    installed_1_0(world)
    data = b"demo 2.0, signed but never logged\n"
    h = world.home
    statement = sample_provenance(h).statement(
        (ResourceDescriptor(name="demo.tar.gz", digest={"sha256": hashlib.sha256(data).hexdigest()}),)
    )
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    unlogged = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [h.signer_for(builder)]).to_bytes()
    path = publish_directly(world, "2.0", data, unlogged, 5, evidence=False)
    world.vouch((path, data), *world.auditors[:2])
    refused(world, "provenance", "is not proved logged")


def test_a_checkpoint_without_the_witness_quorum_is_refused(world: World) -> None:
    installed_1_0(world)
    # The operator stops asking w2 and lowers its own log's quorum to one witness.
    world.witnesses[1].stop()
    world.home.log.save_policy(witnessed_policy(world.home, world.witnesses, 1))
    world.witnesses = world.witnesses[:1]
    world.release("2.0")
    refused(world, "log", "cosigned by w1, which does not meet the quorum 'witnesses'")


def test_a_forked_log_is_refused(world: World, tmp_path: Path) -> None:
    installed_1_0(world)
    # The operator keeps a copy of the home and of its witnesses' state (colluding witnesses: same keys).
    fork_path = tmp_path / "fork"
    shutil.copytree(world.home.path, fork_path, symlinks=True)
    states = {w.name: tmp_path / f"fork-{w.name}.json" for w in world.witnesses}
    for w in world.witnesses:
        shutil.copy(w.witness.state_path, states[w.name])
    # Everyone else's branch: 2.0, which the agent installs (and stores that log head).
    world.release("2.0")
    assert world.outcome().status == INSTALLED and world.installed() == "2.0"
    # The fork: other entries after the copy, cosigned by the colluding witnesses, two releases ahead in TUF.
    fork = Home(fork_path)
    colluding = [RunningWitness(name, fork, states[name], world.clock) for name in states]
    world.extra.extend(colluding)
    fork.log.save_policy(witnessed_policy(fork, colluding, 2))
    fork_repo = type(world.repo)(home=fork, root_keys=world.repo.root_keys, tmp=tmp_path)
    for version in ("2.5", "3.0"):
        released = fork_repo.release(f"fork {version}\n".encode(), "demo.tar.gz", version=version)
        world.vouch(released, *world.auditors[:2], home=fork)
    world.site.root = fork.paths.public
    o = refused(world, "log", "inconsistent|fork|differ|consistency")
    assert o.offered is not None


def test_a_targeted_update_not_in_the_log_is_refused(world: World) -> None:
    installed_1_0(world)
    # The release, snapshot and timestamp keys sign a 2.0 for one endpoint, served only to it, never logged.
    data = b"demo 2.0 for one customer only\n"
    target = sign_provenance(world.home, data, "demo.tar.gz")
    fake = copy_public(world, "targeted")
    path = product_path("demo", "2.0", "demo.tar.gz")
    custom = {
        "overt": {
            "kind": "product",
            "product": "demo",
            "channel": "stable",
            "version": "2.0",
            "provenance": {
                "sha256": hashlib.sha256(target.entry).hexdigest(),
                "logIndex": target.receipt.index,
            },
        }
    }
    new = NewTarget(path=path, data=data, custom=custom)
    index = ChannelIndex(
        carries=CARRIES_PRODUCT,
        name="demo",
        channel="stable",
        version="2.0",
        target=path,
        sha256=hashlib.sha256(data).hexdigest(),
        length=len(data),
    ).new_target()
    forge_targets(world.home, fake, [new, index])
    world.site.root = fake / "public"
    o = refused(
        world,
        "metadata",
        r"\d+\.release\.json, the exact release metadata this update used, is not proved logged",
    )
    assert o.error is not None and o.error.evidence["name"].endswith(".release.json")


def test_metadata_refused_by_the_log_is_not_kept_and_the_next_honest_release_installs(world: World) -> None:
    installed_1_0(world)
    trusted = world.agent / "tuf" / "metadata"
    before = {p.name: p.read_bytes() for p in trusted.iterdir() if p.is_file()}
    fake = copy_public(world, "targeted")
    # A release version for this endpoint only: kept as trusted, it would block the next real one.
    forge_targets(world.home, fake, [NewTarget(path="products/other/9/x", data=b"x", custom={})])
    world.site.root = fake / "public"
    refused(world, "metadata", r"release metadata this update used, is not proved logged")
    assert {p.name: p.read_bytes() for p in trusted.iterdir() if p.is_file()} == before
    world.site.root = world.home.paths.public
    world.release("2.0")
    o = world.outcome()
    assert o.status == INSTALLED and world.installed() == "2.0", o.error


def test_nothing_new_from_metadata_made_for_one_endpoint_is_refused(world: World) -> None:
    """The vendor withholds 2.0 from one endpoint: everyone else is offered it, this endpoint is served
    metadata signed for it alone that still names 1.0. Without the log check it would say "current"."""
    installed_1_0(world)
    fake = copy_public(world, "withheld")
    world.release("2.0")
    forge_targets(world.home, fake, [NewTarget(path="products/other/1/x", data=b"x", custom={})])
    world.site.root = fake / "public"
    refused(world, "metadata", r"release metadata this update used, is not proved logged")
    world.site.root = world.home.paths.public
    assert world.outcome().status == INSTALLED and world.installed() == "2.0"


def test_an_offered_version_that_is_a_path_is_refused_before_it_is_used(world: World) -> None:
    """The vendor's own repository code lists (and logs) a target whose signed version is a path: installed,
    it would be a directory outside the agent's."""
    data = b"escape\n"
    signed = sign_provenance(world.home, data, "demo.tar.gz")
    path = publish_directly(
        world,
        "../../../../escape",
        data,
        signed.entry,
        signed.receipt.index,
        evidence=True,
        path="products/demo/9.0/demo.tar.gz",
    )
    world.vouch((path, data), *world.auditors[:2])
    world.pin()
    o = world.outcome()
    assert o.status == REFUSED and o.check == "channel", (o.status, o.error)
    assert "is not a version overt releases" in str(o.error)
    assert not (world.agent.parent / "escape").exists() and world.installed() is None


# --- the auditors' verdicts --------------------------------------------------------------------------------


def test_fewer_than_k_passed_verdicts_are_refused_and_a_key_listed_twice_counts_once(world: World) -> None:
    a, b, _ = world.auditors
    keys = world.home.paths.public / "keys"
    twice = world.policy_text(auditors=[a, b], threshold=2).replace(
        f'keys = ["{keys / f"{a.keyid}.json"}", ',
        f'keys = ["{keys / f"{a.keyid}.json"}", {{keytype = "ed25519", scheme = "ed25519", keyval = {{public = "{a.key.keyval["public"]}"}}}}, ',
    )
    assert twice.count(a.key.keyval["public"]) == 1 and "keyval" in twice
    released = world.release("1.0")
    world.pin(twice)
    assert world.outcome().status == INSTALLED
    v2 = world.release("2.0", vouched=0)
    world.vouch(v2, a, a)  # two PASSED verdicts by one key, which the policy lists twice
    o = refused(
        world, "verdicts", "1 of the 2 distinct trusted auditors required have a logged PASSED verdict"
    )
    assert o.error is not None and o.error.evidence["passed"] == [a.keyid[:16]]
    world.vouch(v2, b)
    assert world.outcome().status == INSTALLED and world.installed() == "2.0"
    assert released.path != v2.path


def test_an_old_verdict_republished_beside_the_same_bytes_under_a_new_version_does_not_count(
    world: World,
) -> None:
    """The vendor publishes 1.0's bytes again as 3.0 (by hand: 'overt release' refuses an artifact twice)
    and copies the auditors' logged 1.0 verdicts beside it: the auditors judged 1.0, not 3.0."""
    v1 = installed_1_0(world)
    world.release("2.0")
    assert world.outcome().status == INSTALLED and world.installed() == "2.0"
    data = (
        world.repo.public / "targets" / "products" / "demo" / "1.0" / f"{v1.sha256}.demo.tar.gz"
    ).read_bytes()
    provenance = (world.repo.public / target_evidence(v1.path).entry).read_bytes()
    path = publish_directly(world, "3.0", data, provenance, v1.provenance_index, evidence=True)
    old = world.repo.public / "evidence" / "targets" / v1.path / "vsa"
    new = world.repo.public / "evidence" / "targets" / path / "vsa"
    shutil.copytree(old, new, dirs_exist_ok=True)
    refused(world, "verdicts", r"0 of the 2 distinct trusted auditors")


def test_a_failed_verdict_from_a_trusted_auditor_is_refused(world: World) -> None:
    world.release("1.0")
    world.pin(world.policy_text(threshold=2))  # three trusted auditors, two needed
    assert world.outcome().status == INSTALLED
    v2 = world.release("2.0")  # PASSED by a and b
    world.vouch(v2, world.auditors[2], result=FAILED)
    o = refused(world, "verdicts", f"trusted auditor {world.auditors[2].keyid[:16]} FAILED")
    assert o.error is not None and o.error.evidence["auditor"] == world.auditors[2].keyid


# --- the provenance ----------------------------------------------------------------------------------------


def test_a_release_that_bypasses_the_builder_registry_is_refused(world: World) -> None:
    installed_1_0(world)
    h, data = world.home, b"demo 2.0 from an unregistered builder\n"
    statement = sample_provenance(h, builder_id="https://builder.elsewhere.example/v1").statement(
        (ResourceDescriptor(name="demo.tar.gz", digest={"sha256": hashlib.sha256(data).hexdigest()}),)
    )
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    entry = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [h.signer_for(builder)]).to_bytes()
    receipt = h.log.append(entry)  # signed by the builder key and logged, but never through 'overt release'
    path = publish_directly(world, "2.0", data, entry, receipt.index, evidence=True)
    world.vouch((path, data), *world.auditors[:2])
    refused(world, "provenance", "not by a builder the policy trusts .*bypassed the builder registry")


def test_a_provenance_naming_the_artifact_twice_with_another_digest_is_refused(world: World) -> None:
    """Published around 'overt release' (which refuses it): a provenance naming demo.tar.gz twice, the
    tampered digest and another, does not say the builder made these bytes, whoever PASSED it."""
    installed_1_0(world)
    h, data = world.home, b"demo 2.0, tampered\n"
    statement = sample_provenance(h).statement(
        (
            ResourceDescriptor(name="demo.tar.gz", digest={"sha256": hashlib.sha256(data).hexdigest()}),
            ResourceDescriptor(name="demo.tar.gz", digest={"sha256": "ab" * 32}),
        )
    )
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    entry = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [h.signer_for(builder)]).to_bytes()
    receipt = h.log.append(entry)
    path = publish_directly(world, "2.0", data, entry, receipt.index, evidence=True)
    world.vouch((path, data), *world.auditors[:2])
    refused(world, "provenance", "names demo.tar.gz more than once")


# --- AV databases: a bad delta falls back to the full database ---------------------------------------------


def build_database(world: World, tmp: Path, files: dict[str, str], version: int) -> Released:
    h = world.home
    root = tmp / f"rules-{version}"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    context = ConveyorContext(
        service=h.signing_service(),
        builder=h.registry.current(Role.BUILDER, datetime.now(UTC)),
        builder_id=h.conveyor.provenance_builder_id,
        auditor=world.auditors[0],
    )
    built = release(
        AvdbStore(h.paths.public),
        h.escrow,
        read_directory(root),
        name="main",
        version=version,
        context=context,
    )
    assert isinstance(built, Released)
    return built


def test_a_delta_that_produces_the_wrong_bytes_falls_back_to_the_full_database(
    world: World, tmp_path: Path, sandbox: None
) -> None:
    world.pin(world.policy_text(extra='\n[[follow]]\ndatabase = "main"\n'))
    ctx = world.repo.release_ctx
    rules = {"yara/eicar.yar": EICAR_RULE}
    for version, more in (
        (1, {}),
        (2, {"h/a.hdb": hdb(["44d88612fea8a8f36de82e1278abb02f:68:Overt.Test.EICAR-HDB"])}),
    ):
        build_database(world, tmp_path, {**rules, **more}, version)
        world.vouch(release_database(ctx, name="main", version=version), *world.auditors[:2])
        db = world.update().outcomes[1]
        assert db.status == INSTALLED and db.record is not None and db.record.version == str(version), (
            db.error
        )
        assert db.record.via_delta == (version == 2) and db.delta in ("", "applied")
    # Version 3's delta, as the repository publishes it (signed and logged), rebuilds other bytes.
    v3 = build_database(world, tmp_path, {**rules, "h/b.hdb": hdb(["0" * 32 + ":1:Overt.Test.Other"])}, 3)
    released = release_database(ctx, name="main", version=3)
    world.vouch(released, *world.auditors[:2])
    delta = delta_path("main", 2, 3)
    with Repository.edit(world.repo.ctx) as repo:
        info = repo.state.released()[delta]
        good = repo.ctx.layout.target_file(delta, info.hashes["sha256"]).read_bytes()
        raw = lzma.decompress(good).replace(b"Overt.Test.Other", b"Overt.Test.Evil!")
        repo.add_targets(
            [NewTarget(path=delta, data=lzma.compress(raw), custom={"overt": overt_custom(info)})]
        )
    db = world.update().outcomes[1]
    assert db.status == INSTALLED and db.record is not None and db.record.version == "3", db.error
    assert not db.record.via_delta
    assert re.search(
        "fell back to the full database: the delta avdb/main/2-3.delta failed: .*signed digest", db.delta
    ), db.delta
    assert installed(world.agent, "main") == v3.path.read_bytes()  # what 'overt scan' loads


def test_a_database_installed_by_another_tool_is_checked_under_the_policy_not_taken_as_current(
    world: World, tmp_path: Path, sandbox: None
) -> None:
    """'overt avdb install' put database 1 where 'overt scan' reads it; only one auditor vouched for it. The
    agent has no record of verifying it, so it checks it in full: too few verdicts, refused (not 'current')."""
    world.pin(world.policy_text(extra='\n[[follow]]\ndatabase = "main"\n'))
    built = build_database(world, tmp_path, {"yara/eicar.yar": EICAR_RULE}, 1)
    world.vouch(release_database(world.repo.release_ctx, name="main", version=1), world.auditors[0])
    builder = world.home.registry.current(Role.BUILDER, datetime.now(UTC))
    install(world.agent, built.path.read_bytes(), built.provenance.entry, [builder.key])
    db = world.update().outcomes[1]
    assert db.status == REFUSED and db.check == "verdicts", (db.status, db.error)
    assert "1 of the 2 distinct trusted auditors" in str(db.error)


def test_a_pinned_root_that_its_own_keys_did_not_sign_is_refused_by_the_tuf_client(world: World) -> None:
    """Loading the pinned copy does not check its root's signatures again (they were checked when it was
    pinned); the TUF client checks them on every update, and a pinned copy whose root was edited since (its
    digest edited to match) is refused there, the installed version kept."""
    installed_1_0(world)
    doc = tomllib.loads(world.layout.policy.read_text())
    root = json.loads(base64.b64decode(doc["repository"]["root_base64"]))
    root["signed"]["expires"] = "2099-01-01T00:00:00Z"
    data = json.dumps(root).encode()
    doc["repository"]["root_base64"] = base64.b64encode(data).decode()
    doc["repository"]["root_sha256"] = hashlib.sha256(data).hexdigest()
    world.layout.policy.write_text(tomli_w.dumps(doc))
    refused(world, "tuf", "root|signature|threshold")
