"""``overt release``'s refusals, each with its reason and nothing signed, and what a release publishes: the
target, its custom field, its evidence (provenance and metadata proofs under one cosigned checkpoint)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.statement import ResourceDescriptor
from overt.distribute.evidence import (
    metadata_evidence,
    target_evidence,
    verify_logged_entry,
    verify_logged_metadata,
)
from overt.distribute.release import ProductRelease, release_product
from overt.distribute.repository import renew_repository
from overt.distribute.testbed import sample_provenance
from overt.errors import PolicyError, UsageError
from overt.home import Home
from overt.keys.registry import Role
from overt.tlog.policy import Policy
from tests.distribute.conftest import Repo, add_key, sign_provenance
from tests.tlog.test_pinned_trust import HONEST, cosign, witnessed_by


def log_size(h: Home) -> int:
    log = h.log.read()
    try:
        return log.tree_size
    finally:
        log.close()


def refused(repo: Repo, request: ProductRelease, match: str, check: str | None = None) -> PolicyError:
    """The release is refused with ``match`` in its reason, and signs and logs nothing."""
    size = log_size(repo.home)
    metadata = sorted(p.name for p in (repo.public / "metadata").iterdir())
    with pytest.raises(PolicyError, match=match) as e:
        release_product(repo.release_ctx, request)
    assert check is None or e.value.evidence["check"] == check
    assert log_size(repo.home) == size
    assert sorted(p.name for p in (repo.public / "metadata").iterdir()) == metadata
    return e.value


def request(
    data: bytes,
    provenance: bytes,
    *,
    name: str = "demo.tar.gz",
    version: str = "1.0",
    product: str = "demo",
    **kw: str,
) -> ProductRelease:
    return ProductRelease(
        artifact=data, file_name=name, product=product, version=version, provenance=provenance, **kw
    )


def signed_by_hand(h: Home, data: bytes, record_role: Role = Role.BUILDER, **kw: str) -> bytes:
    """Provenance signed with a key directly, bypassing the signing service's policy, then logged: what a
    compromised machine could append. ``kw`` goes to :func:`sample_provenance`."""
    jurisdiction = kw.pop("key_jurisdiction", "CH")
    record = (
        add_key(h, record_role, jurisdiction=jurisdiction)
        if jurisdiction != "CH"
        else h.registry.current(record_role, datetime.now(UTC))
    )
    statement = sample_provenance(h, **kw).statement(
        (ResourceDescriptor(name="demo.tar.gz", digest={"sha256": hashlib.sha256(data).hexdigest()}),)
    )
    entry = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [h.signer_for(record)]).to_bytes()
    h.log.append(entry)
    return entry


def test_a_release_publishes_the_target_with_its_evidence(repo: Repo) -> None:
    data = b"demo 1.0"
    released = repo.release(data, "demo.tar.gz")
    o = released.custom["overt"]
    assert o["kind"] == "product" and o["product"] == "demo" and o["version"] == "1.0"
    provenance = (repo.public / target_evidence(released.path).entry).read_bytes()
    assert o["provenance"] == {
        "sha256": hashlib.sha256(provenance).hexdigest(),
        "logIndex": released.provenance_index,
    }
    policy = repo.home.log.policy()
    files = target_evidence(released.path)
    proved = verify_logged_entry(provenance, (repo.public / files.proof).read_bytes(), policy)
    assert proved.index == released.provenance_index
    size = released.publication.evidence_tree_size
    assert proved.checkpoint.checkpoint.tree_size == size
    assert (repo.public / files.checkpoint).read_bytes() == proved.checkpoint.to_bytes()
    for m in released.publication.metadata:
        ev = metadata_evidence(m.name)
        data_file = repo.public / "metadata" / ("timestamp.json" if m.role == "timestamp" else m.name)
        got = verify_logged_metadata(
            m.name,
            data_file.read_bytes(),
            entry=(repo.public / ev.entry).read_bytes(),
            proof=(repo.public / ev.proof).read_bytes(),
            policy=policy,
            keys=[repo.home.registry.get(m.keyid).key],
        )
        assert got.index == m.index and got.checkpoint.checkpoint.tree_size == size  # one checkpoint for all


def test_provenance_not_in_the_log_is_refused(repo: Repo) -> None:
    h, data = repo.home, b"never logged"
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    statement = sample_provenance(h).statement(
        (ResourceDescriptor(name="demo.tar.gz", digest={"sha256": hashlib.sha256(data).hexdigest()}),)
    )
    unlogged = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [h.signer_for(builder)]).to_bytes()
    refused(repo, request(data, unlogged), "not an entry of this home's log", "log")


def test_provenance_without_the_witness_quorum_is_refused_and_accepted_once_cosigned(repo: Repo) -> None:
    data = b"witnessed"
    entry = sign_provenance(repo.home, data, "demo.tar.gz").entry
    # The log now requires a witness; the published checkpoint covering the provenance has no cosignature.
    repo.home.log.save_policy(Policy.from_bytes(witnessed_by(repo.home, HONEST, "w1")))
    refused(repo, request(data, entry), "does not meet the quorum", "log")
    cosign(repo.home.log.paths.public, HONEST)
    released = release_product(repo.release_ctx, request(data, entry))
    # The release's own entries cannot be published (the witness has no URL here): evidence waits.
    assert released.publication.evidence_tree_size is None
    assert not (repo.public / target_evidence(released.path).proof).exists()
    # Once a checkpoint covering them is published, the timestamp job writes the proofs it lacked.
    repo.home.log.save_policy(_no_witnesses(repo.home))
    repo.home.log.publish()
    renew_repository(repo.ctx)
    assert (repo.public / target_evidence(released.path).proof).exists()
    for m in released.publication.metadata:
        assert (repo.public / metadata_evidence(m.name).proof).exists(), m.name


def _no_witnesses(h: Home) -> Policy:
    return Policy(logs=h.log.policy().logs, quorum="none")


def test_an_artifact_that_is_not_the_one_the_provenance_names_is_refused(repo: Repo) -> None:
    entry = sign_provenance(repo.home, b"the built artifact", "demo.tar.gz").entry
    refused(repo, request(b"an altered artifact", entry), "artifact check failed", "artifact")


def test_provenance_naming_the_artifact_twice_with_another_digest_is_refused(repo: Repo) -> None:
    """A provenance with two subjects of one name (the artifact's digest and another) names no artifact: a
    rebuilder could have checked the other one only."""
    data = b"one of two"
    statement = sample_provenance(repo.home).statement(
        (
            ResourceDescriptor(name="demo.tar.gz", digest={"sha256": hashlib.sha256(data).hexdigest()}),
            ResourceDescriptor(name="demo.tar.gz", digest={"sha256": "ab" * 32}),
        )
    )
    builder = repo.home.registry.current(Role.BUILDER, datetime.now(UTC))
    entry = repo.home.signing_service().sign(builder, statement).entry
    refused(repo, request(data, entry), "names demo.tar.gz more than once", "artifact")


def test_provenance_signed_by_a_foreign_key_is_refused(repo: Repo) -> None:
    data = b"built abroad"
    entry = signed_by_hand(repo.home, data, key_jurisdiction="DE")
    refused(repo, request(data, entry), "outside this conveyor's jurisdiction CH", "jurisdiction")


def test_provenance_naming_another_jurisdiction_is_refused(repo: Repo) -> None:
    data = b"claims RU"
    builder_id = repo.home.conveyor.provenance_builder_id.replace("jurisdiction=CH", "jurisdiction=RU")
    entry = signed_by_hand(repo.home, data, builder_id=builder_id)
    refused(repo, request(data, entry), 'names jurisdiction "RU"', "jurisdiction")


def test_a_release_that_bypasses_the_builder_registry_is_refused(repo: Repo) -> None:
    data = b"from an unregistered builder"
    entry = signed_by_hand(repo.home, data, builder_id="https://builder.elsewhere.example/v1")
    refused(repo, request(data, entry), "not in this conveyor's builder registry", "builder-registry")


def test_versions_only_move_forward_per_channel_and_are_released_once(repo: Repo) -> None:
    repo.release(b"2.0", "demo.tar.gz", version="2.0")
    older = sign_provenance(repo.home, b"1.5", "demo.tar.gz").entry
    refused(
        repo, request(b"1.5", older, version="1.5"), "at version 2.0; versions only move forward", "version"
    )
    # Another channel has its own order...
    repo.release(b"1.5", "demo.tar.gz", version="1.5", channel="lts")
    # ...but a version is released once, in any channel and any spelling PEP 440 equates.
    again = sign_provenance(repo.home, b"another 2.0", "demo.tar.gz").entry
    refused(
        repo, request(b"another 2.0", again, version="2.0", channel="beta"), "already released", "version"
    )
    refused(repo, request(b"another 2.0", again, version="2.0.0"), "already released", "version")
    repo.release(b"2.1", "demo.tar.gz", version="2.1")
    # Old bytes under a new version number would roll endpoints back: an artifact is released once.
    old = sign_provenance(repo.home, b"2.0", "demo.tar.gz").entry
    refused(repo, request(b"2.0", old, version="3.0"), "already released as demo 2.0", "version")
    # ...under any product name.
    refused(
        repo, request(b"2.0", old, version="1.0", product="other"), "already released as demo 2.0", "version"
    )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("version", "v1.0", "normal PEP 440 spelling"),
        ("version", "latest", "not a PEP 440 version"),
        ("product", "a/b", "product"),
        ("product", "*", "product"),
        ("product", "Demo", "must be lowercase"),
        ("product", "demo.", "must be lowercase and not end with '.'"),
        ("channel", "Stable", "must be lowercase"),
        ("file_name", "..", "artifact file name"),
        ("channel", "", "channel"),
    ],
)
def test_a_malformed_request_is_a_usage_error(repo: Repo, field: str, value: str, match: str) -> None:
    entry = sign_provenance(repo.home, b"x", "demo.tar.gz").entry
    fields = {
        "artifact": b"x",
        "file_name": "demo.tar.gz",
        "product": "demo",
        "version": "1.0",
        "provenance": entry,
    }
    with pytest.raises(UsageError, match=match):
        release_product(repo.release_ctx, ProductRelease(**{**fields, field: value}))  # type: ignore[arg-type]


def test_build_outputs_find_their_provenance(repo: Repo, tmp_path: Path) -> None:
    from overt.distribute.release import build_provenance

    builds = repo.home.paths.public / "builds"
    (builds / "b1" / "dist").mkdir(parents=True)
    (builds / "b1" / "provenance.dsse.json").write_bytes(b"{}")
    (builds / "b1" / "dist" / "a.whl").write_bytes(b"a")
    assert (
        build_provenance(builds / "b1" / "dist" / "a.whl", builds) == builds / "b1" / "provenance.dsse.json"
    )
    (tmp_path / "loose.whl").write_bytes(b"a")
    with pytest.raises(UsageError, match="--provenance"):
        build_provenance(tmp_path / "loose.whl", builds)
