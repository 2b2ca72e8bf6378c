"""AV databases as targets: released only if their audit passed as the log shows it, versions moving
forward, and a transport-only delta from the previous version that rebuilds the exact database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from overt.attest.statement import Statement
from overt.avdb.delta import apply_delta
from overt.avdb.release import AvdbStore, Refused, Released, release, waive
from overt.distribute.databases import release_database
from overt.errors import ConfigError, PolicyError
from overt.home import Home
from overt.keys.registry import Role
from overt.source.escrow import read_directory
from tests.avdb.samples import EICAR_RULE, hdb, rule
from tests.distribute.conftest import Repo, Served, add_key

HUNTER = rule(
    "Pdf_Ministry_Memo",
    "OVT-0666",
    '    $pdf = "%PDF"\n    $m = "TOP SECRET"\n    $w = "ministry of defence"',
    "$pdf at 0 and $m and $w",
)
HDB = hdb(["44d88612fea8a8f36de82e1278abb02f:68:Overt.Test.EICAR-HDB"])


def build(h: Home, tmp: Path, files: dict[str, str], version: int) -> Released | Refused:
    root = tmp / f"rules-{version}"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return release(
        AvdbStore(h.paths.public),
        h.escrow,
        read_directory(root),
        name="main",
        version=version,
        context=h.conveyor_context(auditor=True),
    )


@pytest.fixture
def av(repo: Repo, sandbox: None) -> Repo:
    add_key(repo.home, Role.AUDITOR)
    return repo


def test_a_database_is_released_with_a_delta_the_client_can_apply(
    av: Repo, served: Served, tmp_path: Path
) -> None:
    h = av.home
    assert isinstance(build(h, tmp_path, {"yara/eicar.yar": EICAR_RULE}, 1), Released)
    first = release_database(av.release_ctx, name="main", version=1)
    assert first.path == "avdb/main/1.avdb" and first.delta is None
    assert first.custom["overt"] == {
        "kind": "avdb",
        "database": "main",
        "version": 1,
        "provenance": first.custom["overt"]["provenance"],
    }
    with pytest.raises(PolicyError, match="versions only move forward"):
        release_database(av.release_ctx, name="main", version=1)
    v2 = build(h, tmp_path, {"yara/eicar.yar": EICAR_RULE, "h/a.hdb": HDB}, 2)
    assert isinstance(v2, Released)
    second = release_database(av.release_ctx, name="main", version=2)
    assert second.delta == "avdb/main/1-2.delta"
    updater = served.updater(tmp_path / "client", av.root_v1())
    old = Path(updater.download_target(updater.get_targetinfo(first.path))).read_bytes()  # type: ignore[arg-type]
    info = updater.get_targetinfo(second.delta)
    assert info is not None
    o = info.custom["overt"]
    assert o["transportOnly"] is True and (o["from"], o["to"]) == (1, 2) and o["target"] == second.path
    delta = Path(updater.download_target(info)).read_bytes()
    assert apply_delta(old, delta, o["targetSha256"]) == v2.path.read_bytes()
    assert o["targetSha256"] == second.sha256
    assert "provenance" not in o  # transport only: nothing about it is trusted but its result's digest


def test_a_database_whose_audit_did_not_pass_is_refused(av: Repo, tmp_path: Path) -> None:
    h = av.home
    store = AvdbStore(h.paths.public)
    refused = build(h, tmp_path, {"yara/eicar.yar": EICAR_RULE, "yara/memo.yar": HUNTER}, 1)
    assert isinstance(refused, Refused)
    for f in refused.unwaived:
        waive(
            store, name="main", finding_id=f.id, reason="lab test", context=h.conveyor_context(auditor=True)
        )
    assert isinstance(
        build(h, tmp_path, {"yara/eicar.yar": EICAR_RULE, "yara/memo.yar": HUNTER}, 1), Released
    )
    # One waiver is gone from what the conveyor publishes: the finding stands unwaived.
    waiver = store.root / "waivers" / f"{refused.unwaived[0].id}.dsse.json"
    kept = waiver.read_bytes()
    waiver.unlink()
    with pytest.raises(PolicyError, match=r"the audit did not pass: finding .* has no waiver"):
        release_database(av.release_ctx, name="main", version=1)
    # The full report is published beside the statement, which names it by digest: altered, it is refused.
    waiver.write_bytes(kept)
    report_file = next((store.root / "main" / "audits").glob("*.report.json"))
    genuine = report_file.read_bytes()
    report_file.write_bytes(genuine.replace(b'"severity":"blocking"', b'"severity":"advisory"'))
    assert report_file.read_bytes() != genuine
    with pytest.raises(PolicyError, match=r"is not the one its signed statement names: it was altered"):
        release_database(av.release_ctx, name="main", version=1)
    report_file.write_bytes(genuine)
    # An audit report that says "no findings", signed by the auditor key but never logged, does not count.
    audit_file = next((store.root / "main" / "audits").glob("*.dsse.json"))
    report = Statement.from_bytes(Envelope.from_bytes(audit_file.read_bytes()).payload)
    clean = Statement(
        subject=report.subject,
        predicate_type=report.predicate_type,
        predicate={**report.predicate, "findings": 0, "blocking": 0},
    )
    auditor = h.registry.current(Role.AUDITOR, datetime.now(UTC))
    audit_file.write_bytes(
        sign_envelope(clean.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [h.signer_for(auditor)]).to_bytes()
    )
    with pytest.raises(PolicyError, match=r"audit report .* is not an entry of this home's log"):
        release_database(av.release_ctx, name="main", version=1)
    assert not (av.public / "metadata" / "2.release.json").exists()


def test_a_database_not_built_here_is_a_configuration_error(av: Repo) -> None:
    with pytest.raises(ConfigError, match="overt avdb build"):
        release_database(av.release_ctx, name="main", version=9)
