"""``overt demo`` end to end: the claims it returns as data, the re-check commands it prints (each one run
here, as pasted), the closing table, the layout files, and the refusal to reuse a directory."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from overt.build.sandbox import check_sandbox
from overt.errors import ConfigError
from overt.server.nginx import nginx_binary
from tests.conftest import require

ALL_IDS = {
    "log.one-place-per-statement",
    "log.checkpoint-cosigned",
    "log.inclusion",
    "log.offline-proof",
    "log.append-only",
    "log.forged-checkpoint-rejected",
    "log.fork-refused-by-witness",
    "log.restored-backup-refused",
    "log.recovered-from-tiles",
    "keys.bound-to-jurisdiction",
    "keys.builder-registry",
    "keys.provenance-signed-in-jurisdiction",
    "keys.foreign-jurisdiction-refused",
    "keys.unregistered-builder-refused",
    "keys.rotation-logged",
    "keys.audit-complete",
    "build.source-escrowed",
    "build.reproducible",
    "build.provenance-names-source",
    "avdb.released-after-audit",
    "avdb.document-hunting-refused",
    "avdb.diff-for-reviewers",
    "avdb.endpoint-installs-only-logged",
    "avdb.scan-finds-malware-not-documents",
    "avdb.customer-codenames",
    "auditors.a1-rebuilt",
    "auditors.a2-rebuilt",
    "distribute.metadata-logged",
    "distribute.product-released",
    "distribute.database-released",
    "distribute.endpoint-trusted",
    "distribute.tampered-refused",
    "distribute.update-through-delta",
    "distribute.targeted-update-refused",
    "residency.registry-logged",
    "residency.landed-in-home",
    "residency.misrouted-refused",
    "residency.approved-access-logged",
    "residency.customer-verified-access-log",
    "residency.migrated-after-registry-change",
}
DISTRIBUTE_REFUSALS = {
    "distribute.tampered-refused": "artifact",
    "distribute.targeted-update-refused": "metadata",
}
# Our own vocabulary, which a customer's security engineer should never have to decode.
JARGON = (
    "strict deduplication",
    "consistency proof between",
    "empty consistency proof",
    "[green]",
    "{'",
    "['",
)


def run_overt(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an ``overt ...`` command line as a user would, with this checkout's overt."""
    assert argv[0] == "overt"
    return subprocess.run(
        [sys.executable, "-m", "overt", *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("demo-env")
    return os.environ | {"XDG_STATE_HOME": str(base / "state"), "XDG_DATA_HOME": str(base / "data")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    """One ``overt demo --json`` run: its directory and the JSON it printed."""
    try:
        check_sandbox()
    except ConfigError as e:
        require(False, f"no build sandbox: {e}")
    root = tmp_path_factory.mktemp("demo") / "home"
    r = run_overt(["overt", "demo", "--home", str(root), "--json"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    return root, json.loads(r.stdout)


def claims(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for s in data["stages"] for c in s["claims"]}


def test_every_check_is_a_proved_claim_with_its_promise(demo: tuple[Path, dict[str, Any]]) -> None:
    root, data = demo
    by_id = claims(data)
    assert set(by_id) == ALL_IDS
    assert {c["status"] for c in by_id.values()} == {"proved"}
    for c in by_id.values():
        assert (root / c["evidence"]).exists(), c
        assert not any(word in c["check"] for word in JARGON), c["check"]
    promise = {i: c["promise"] for i, c in by_id.items()}
    assert promise["keys.foreign-jurisdiction-refused"] == "signed only in the named jurisdiction"
    assert promise["build.reproducible"] == "built from the audited source"
    assert promise["avdb.document-hunting-refused"] == "no document-hunting rules"
    assert promise["log.restored-backup-refused"] == "nothing signed in secret"
    assert promise["distribute.targeted-update-refused"] == "the same update for everyone"
    assert promise["distribute.product-released"] == "built from the audited source"


def test_the_checked_values(demo: tuple[Path, dict[str, Any]]) -> None:
    facts = {i: c["facts"] for i, c in claims(demo[1]).items()}
    assert facts["log.one-place-per-statement"] == {"indices": list(range(10)), "resent_index": 3}
    assert facts["log.append-only"] == {"previous_size": 10, "tree_size": 20}  # a fresh log, not "33 to 33"
    assert facts["log.restored-backup-refused"] == {"database_size": 10, "signed_size": 20}
    assert facts["log.recovered-from-tiles"] == {"tree_size": 20}
    assert facts["log.fork-refused-by-witness"]["http_status"] == 422
    assert facts["keys.builder-registry"]["version"] == 1
    assert "jurisdiction" in facts["keys.foreign-jurisdiction-refused"]["reason"]
    assert "builder registry" in facts["keys.unregistered-builder-refused"]["reason"]
    audit = facts["keys.audit-complete"]
    assert [e["kind"] for e in audit["entries"]] == ["signed", "refused", "refused", "signed"]
    assert facts["keys.rotation-logged"]["old_keyid"] == audit["keyid"]
    assert facts["build.reproducible"]["verdict"] == "identical"
    assert facts["build.provenance-names-source"]["source_sha256"] == facts["build.source-escrowed"]["sha256"]
    assert facts["avdb.document-hunting-refused"]["rule_ids"] == ["OVT-0666"]
    assert facts["avdb.endpoint-installs-only-logged"]["via_delta"] is True
    assert facts["avdb.scan-finds-malware-not-documents"]["detections"] == [
        "beta.bin:Dropper_Beta",
        "eicar.com:EICAR_Test_File",
        "eicar.com:Overt.Demo.EICAR",
    ]
    codenames = facts["avdb.customer-codenames"]
    assert codenames["rule_id"] == "OVT-0004" and "sensitive-marking" in codenames["checks"]


def test_the_distribution_stage_updates_through_nginx_and_refuses_two_attacks(
    demo: tuple[Path, dict[str, Any]], env: dict[str, str]
) -> None:
    root, data = demo
    by_id = claims(data)
    facts = {i: c["facts"] for i, c in by_id.items() if i.startswith("distribute.")}
    assert len(facts) == 7 and all(by_id[i]["status"] == "proved" for i in facts)
    trusted = facts["distribute.endpoint-trusted"]
    server = (
        "Debian's nginx" if nginx_binary() is not None else "Python's http.server: nginx is not installed"
    )
    assert trusted["server"].startswith(server)
    assert server in by_id["distribute.endpoint-trusted"]["check"]
    assert [(r["follow"], r["version"]) for r in trusted["installed"]] == [
        ({"product": "sample-agent", "channel": "stable"}, "1.0"),
        ({"database": "demo"}, "1"),
    ]
    roles = {"root", "targets", "release", "snapshot", "timestamp"}
    for record in trusted["installed"]:
        assert len(record["auditors"]) == 2
        assert {m["name"].split(".")[1] for m in record["metadata"]} == roles
    assert facts["distribute.tampered-refused"]["check"] == "tuf"
    assert facts["distribute.tampered-refused"]["kept_version"] == "1"
    assert facts["distribute.update-through-delta"]["via_delta"] is True
    assert facts["distribute.targeted-update-refused"]["check"] == "metadata"
    assert facts["distribute.targeted-update-refused"]["kept_version"] == "2"
    # The refusals hold after the demo, offline, for the reason the endpoint gave.
    for claim_id, check in DISTRIBUTE_REFUSALS.items():
        r = run_overt(by_id[claim_id]["recheck"]["argv"], env)
        assert r.returncode == 1 and f"check: {check}" in r.stderr, (claim_id, r.stdout, r.stderr)
    # The endpoint kept what it had, and says why it trusted it.
    r = run_overt(by_id["distribute.endpoint-trusted"]["recheck"]["argv"], env)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert [(i["installed"]["version"], i["intact"]) for i in status["items"]] == [("1.0", True), ("2", True)]
    assert status["items"][1]["installed"]["via_delta"] is True
    assert (
        not (root / "conveyor" / "tuf-root-keys").exists()
        and len(list((root / "tuf-root-keys").iterdir())) == 3
    )


def test_two_independent_auditors_rebuild_every_build_and_the_endpoint_requires_both(
    demo: tuple[Path, dict[str, Any]], env: dict[str, str]
) -> None:
    """Issue 13's demo: two auditors' verdicts arrive in the log, and the endpoint installs on both of them."""
    from overt.attest.dsse import Envelope
    from overt.attest.verify import verify_statement
    from overt.attest.vsa import VerificationSummary
    from overt.keys.registry import KeyRecord

    root, data = demo
    by_id = claims(data)
    stage = [c for c in by_id if c.startswith("auditors.")]
    facts = [by_id[c]["facts"] for c in stage]
    assert [f["jurisdiction"] for f in facts] == ["DE", "FR"] and len({f["key"] for f in facts}) == 2
    provenances = set()
    for f, claim in zip(facts, stage, strict=True):
        assert [v["verdict"] for v in f["verdicts"]] == ["GOOD"] * 4, f["verdicts"]
        assert {v["artifact"] for v in f["verdicts"]} == {
            "dist/sample-agent-1.0.tar.gz",
            "demo-1.avdb",
            "demo-2.avdb",
            "regional-1.avdb",
        }
        home = root / "auditors" / claim.split(".")[1].removesuffix("-rebuilt")
        assert not (home / "overt.db").exists() and not (home / "log-policy").exists()
        key = KeyRecord.from_bytes((home / "public" / "keys" / f"{f['key']}.json").read_bytes()).key
        for v in f["verdicts"]:
            envelope = Envelope.from_bytes(Path(v["vsa"]).read_bytes())
            summary = VerificationSummary.from_statement(verify_statement(envelope, [key], 1))
            assert summary.passed
            assert summary.input_attestations[0].digest["sha256"] == v["provenance_sha256"]
        provenances.add(frozenset(v["provenance_sha256"] for v in f["verdicts"]))
        r = run_overt(by_id[claim]["recheck"]["argv"], env)
        assert r.returncode == 0, r.stderr
    assert len(provenances) == 1  # both rebuilt the same builds
    trusted = by_id["distribute.endpoint-trusted"]["facts"]["installed"]
    for record in trusted:
        assert sorted(record["auditors"]) == sorted(f["key"] for f in facts)


def test_the_table_proves_every_promise(demo: tuple[Path, dict[str, Any]]) -> None:
    rows = {r["promise"]: r for r in demo[1]["promises"]}
    assert {p: r["status"] for p, r in rows.items()} == {
        "built from the audited source": "proved",
        "signed only in the named jurisdiction": "proved",
        "nothing signed in secret": "proved",
        "no document-hunting rules": "proved",
        "the same update for everyone": "proved",
        "telemetry kept in its jurisdiction": "proved",
    }
    assert "evidence/provenance.dsse.json" in rows["signed only in the named jurisdiction"]["evidence"]
    assert "evidence/tampered-2.avdb" in rows["the same update for everyone"]["evidence"]
    assert rows["the same update for everyone"]["note"] == "4 checks"
    assert rows["telemetry kept in its jurisdiction"]["note"] == "6 checks"
    assert "evidence/access-granted.json" in rows["telemetry kept in its jurisdiction"]["evidence"]


def test_every_recheck_command_works_as_pasted(
    demo: tuple[Path, dict[str, Any]], env: dict[str, str]
) -> None:
    root, data = demo
    commands = [c["recheck"] for c in claims(data).values() if c["recheck"] is not None]
    assert len(commands) >= 20 and sum(c["exit_code"] == 0 for c in commands) >= 2
    for cmd in commands:
        argv = shlex.split(cmd["command"])
        assert argv == cmd["argv"]
        if "--vkey" in argv:  # an access log, under the key its customer pinned at sign-up
            log = Path(argv[argv.index("--log") + 1])
            assert log.parent == root / "conveyor" / "public" / "logs" and log.name.startswith("access-")
            pinned = {p.read_text().strip() for p in (root / "tenants").glob(f"*/{log.name}.vkey")}
            assert pinned == {argv[argv.index("--vkey") + 1]}
        elif argv[:3] in (
            ["overt", "log", "verify"],
            ["overt", "keys", "audit"],
            ["overt", "avdb", "install"],
        ):
            assert argv[argv.index("--policy") + 1] == str(root / "trusted.policy")  # pinned, not the log's
        r = run_overt(argv, env)
        assert r.returncode == cmd["exit_code"], (cmd["command"], r.stdout, r.stderr)
        assert "Traceback" not in r.stderr


def test_the_layout_is_explained_in_the_directory(demo: tuple[Path, dict[str, Any]]) -> None:
    root, data = demo
    assert json.loads((root / "summary.json").read_text()) == data
    readme = (root / "README.md").read_text()
    for row in data["promises"]:
        assert f"| {row['promise']} | {row['status']} |" in readme
    for c in claims(data).values():
        assert c["check"] in readme
    for path in data["layout"]:
        assert f"`{path}`" in readme
        if path == "nginx/" and nginx_binary() is None:
            assert "served by Python's http.server: nginx is not installed" in readme
        elif path != "recheck-agent/":  # made by a re-check command, not by the demo
            assert (root / path).exists(), path


def test_a_second_run_on_the_same_directory_is_refused(
    demo: tuple[Path, dict[str, Any]], env: dict[str, str]
) -> None:
    root, _ = demo
    before = (root / "summary.json").read_bytes()
    r = run_overt(["overt", "demo", "--home", str(root)], env)
    assert r.returncode == 2  # a usage error
    assert f"{root} is not empty" in r.stderr and "Traceback" not in r.stderr
    assert "PROVED" not in r.stdout
    assert (root / "summary.json").read_bytes() == before


def test_the_human_output_prints_each_claim_and_the_table(
    tmp_path: Path, env: dict[str, str], sandbox: None
) -> None:
    r = run_overt(["overt", "demo", "--home", str(tmp_path / "d")], env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((tmp_path / "d" / "summary.json").read_text())
    lines = r.stdout.splitlines()
    checks = [c["check"] for s in data["stages"] for c in s["claims"]]
    assert sum(line.startswith("PROVED ") for line in lines) == len(checks)
    for c in checks:
        assert any(line.endswith(c) for line in lines), c
    table = lines[lines.index("== promises ==") + 1 :]
    assert table[0].split() == ["promise", "status", "evidence"]
    assert [line.split("  ")[0] for line in table[1:7]] == [row["promise"] for row in data["promises"]]
    assert sum("NOT YET" in line for line in table) == 0
