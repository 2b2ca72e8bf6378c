"""The repository's side of the endpoint: channel indexes that point at the newest version (found by the
stock client by path), and auditors' verdicts published beside their target only if they are VSAs about it
and logged (``overt tuf add-verdict``)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.vsa import PASSED, VerificationSummary, VsaVerifier
from overt.distribute.channels import ChannelIndex
from overt.distribute.evidence import verify_logged_entry
from overt.distribute.layout import channel_path
from overt.distribute.release import overt_custom
from overt.distribute.verdicts import VerdictIndex, add_verdict, verdict_evidence, verdict_index_path
from overt.errors import FormatError, PolicyError
from overt.keys.registry import Role
from tests.distribute.conftest import Repo, Served, add_key


def test_each_release_points_its_channel_index_at_the_new_version(
    repo: Repo, served: Served, tmp_path: Path
) -> None:
    first = repo.release(b"1.0", "demo.tar.gz", version="1.0")
    beta = repo.release(b"2.0b1", "demo.tar.gz", version="2.0b1", channel="beta")
    second = repo.release(b"1.1", "demo.tar.gz", version="1.1")
    assert first.channel_index == second.channel_index == channel_path("demo", "stable")
    updater = served.updater(tmp_path / "client", repo.root_v1())
    for path, released in ((channel_path("demo", "stable"), second), (channel_path("demo", "beta"), beta)):
        info = updater.get_targetinfo(path)
        assert info is not None
        index = ChannelIndex.from_custom(overt_custom(info))
        assert (index.version, index.target, index.sha256) == (
            released.custom["overt"]["version"],
            released.path,
            released.sha256,
        )
        # The file says what the signed custom field says.
        assert json.loads(Path(updater.download_target(info)).read_bytes()) == index.to_dict()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("kind", "product", "not a channel index"),
        ("targetSha256", "AB" * 32, "64 lowercase hex"),
        ("targetLength", "3", "targetLength is not an integer"),
        ("product", "a/b", "product 'a/b' must be"),
        ("channel", "", "must not be empty"),
    ],
)
def test_a_malformed_channel_index_is_a_format_error(field: str, value: object, match: str) -> None:
    good = ChannelIndex(
        carries="product",
        name="demo",
        channel="stable",
        version="1.0",
        target="products/demo/1.0/x",
        sha256="a" * 64,
        length=1,
    ).to_dict()
    assert ChannelIndex.from_custom(good).to_dict() == good
    with pytest.raises(FormatError, match=match):
        ChannelIndex.from_custom({**good, field: value})


def _vsa(repo: Repo, path: str, sha256: str, *, log: bool = True) -> bytes:
    auditor = repo.home.registry.current(Role.AUDITOR, datetime.now(UTC))
    statement = VerificationSummary(
        verifier=VsaVerifier(id="https://auditor.example/rebuilder"),
        time_verified="2026-11-30T10:00:00Z" if log else "2026-11-30T11:00:00Z",  # not the logged bytes
        resource_uri=path,
        policy=ResourceDescriptor(uri="https://auditor.example/policy"),
        verification_result=PASSED,
        verified_levels=("SLSA_BUILD_LEVEL_3",),
    ).statement((ResourceDescriptor(name=path, digest={"sha256": sha256}),))
    if log:
        return repo.home.signing_service().sign(auditor, statement).entry
    return sign_envelope(
        statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [repo.home.signer_for(auditor)]
    ).to_bytes()


def test_a_verdict_is_published_with_its_proof_only_if_it_is_a_logged_vsa_about_the_target(
    repo: Repo,
) -> None:
    add_key(repo.home, Role.AUDITOR)
    released = repo.release(b"demo 1.0", "demo.tar.gz")
    ctx = repo.release_ctx
    vsa = _vsa(repo, released.path, released.sha256)
    published = add_verdict(ctx, vsa, target=released.path)
    assert published.result == PASSED and published.verdicts == 1
    files = verdict_evidence(released.path, hashlib.sha256(vsa).hexdigest())
    assert (repo.public / files.entry).read_bytes() == vsa
    proved = verify_logged_entry(vsa, (repo.public / files.proof).read_bytes(), repo.home.log.policy())
    assert proved.index == published.log_index
    index = VerdictIndex.from_bytes((repo.public / verdict_index_path(released.path)).read_bytes())
    assert index.verdicts == (published.sha256,)
    assert add_verdict(ctx, vsa, target=released.path).verdicts == 1  # the same verdict again: listed once
    refusals = [
        (vsa, "products/demo/9.9/none.tar.gz", "is not a target released here"),
        (_vsa(repo, released.path, "0" * 64), released.path, "is not about products/demo/1.0/demo.tar.gz"),
        (
            _vsa(repo, released.path, released.sha256, log=False),
            released.path,
            "is not an entry of this home's log",
        ),
        (
            sign_envelope(
                Statement(
                    subject=(ResourceDescriptor(name="x", digest={"sha256": released.sha256}),),
                    predicate_type="https://example/other",
                    predicate={},
                ).to_bytes(),
                PAYLOAD_TYPE_IN_TOTO,
                [],
            ).to_bytes(),
            released.path,
            "is not an SLSA VSA",
        ),
    ]
    for envelope, target, match in refusals:
        with pytest.raises(PolicyError, match=match):
            add_verdict(ctx, envelope, target=target)
    assert VerdictIndex.from_bytes((repo.public / verdict_index_path(released.path)).read_bytes()) == index


def test_add_verdict_from_the_command_line(repo: Repo, tmp_path: Path) -> None:
    add_key(repo.home, Role.AUDITOR)
    released = repo.release(b"demo 1.0", "demo.tar.gz")
    vsa = tmp_path / "vsa.dsse.json"
    vsa.write_bytes(_vsa(repo, released.path, released.sha256))
    run = [sys.executable, "-m", "overt", "tuf", "add-verdict", str(vsa), "--home", str(repo.home.path)]
    r = subprocess.run([*run, "--target", released.path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.startswith("published the PASSED verdict ") and f"on {released.path} (log entry " in r.stdout
    )
    r = subprocess.run([*run, "--target", "products/x/1/y"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith(
        "error: refused: products/x/1/y is not a target released here"
    )
