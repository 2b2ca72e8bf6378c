"""The AV database views ``overt avdb ... --json`` and ``overt scan --json`` print: each result's ``to_dict()``,
checked against what was really stored, logged, written or scanned."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from overt.avdb.delta import apply_delta, diff_databases, write_delta
from overt.avdb.install import Installed, Update, install
from overt.avdb.package import build_database, read_database
from overt.avdb.release import AvdbStore, Refused, Released, audit_rules, release, waive
from overt.avdb.scan import Detection, ScanReport, scan_paths
from overt.home import Home
from overt.source.escrow import read_directory
from overt.tlog.client import LogClient, directory_fetcher
from tests.avdb.conftest import entries
from tests.avdb.samples import EICAR_RULE, eicar, hdb, rule, ruleset

HUNTER = rule("Memo_Hunt", "OVT-0666", '    $m = "TOP SECRET"', "$m")
FINDING_KEYS = {"id", "ruleId", "rule", "file", "check", "severity", "message", "evidence"}


def rule_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / "rules" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "rules" / rel).write_text(text)
    return tmp_path / "rules"


def test_audit_waiver_and_release_views_name_what_was_stored_and_logged(av: Home, tmp_path: Path) -> None:
    store = AvdbStore(av.paths.public)
    files = read_directory(rule_tree(tmp_path, {"yara/eicar.yar": EICAR_RULE, "yara/hunt.yar": HUNTER}))
    context = av.conveyor_context(auditor=True)

    audited = audit_rules(store, av.escrow, files, name="main", context=context)
    out = audited.to_dict()
    report_file = av.paths.public / "avdb" / "main" / "audits" / f"{out['source']}.dsse.json"
    assert report_file.is_file()  # "source" is the escrowed tree's sha256, which names the stored report
    assert out["audit_log_index"] == entries(av).index(report_file.read_bytes())
    assert (out["rulesAudited"], out["newOrChanged"]) == (2, 2) and out["canaries"] > 0
    ids = [f["id"] for f in out["findings"]]
    assert {f["check"] for f in out["findings"]} >= {"sensitive-marking"}
    assert all(set(f) == FINDING_KEYS and f["ruleId"] == "OVT-0666" for f in out["findings"])
    assert out["unwaived"] == ids  # no waiver yet
    assert json.loads(json.dumps(out)) == out

    first = waive(store, name="main", finding_id=ids[0], reason="test corpus rule", context=context)
    waiver_file = av.paths.public / "avdb" / "waivers" / f"{ids[0]}.dsse.json"
    assert first.to_dict() == {"finding": ids[0], "log_index": entries(av).index(waiver_file.read_bytes())}
    assert first.auditor_keyid == context.auditor_key().keyid
    # A second audit of the same tree lists only the findings still without a waiver.
    assert audit_rules(store, av.escrow, files, name="main", context=context).to_dict()["unwaived"] == ids[1:]

    for fid in ids[1:]:
        waive(store, name="main", finding_id=fid, reason="test corpus rule", context=context)
    released = release(store, av.escrow, files, name="main", version=1, context=context)
    assert isinstance(released, Released)
    path = av.paths.public / "avdb" / "main" / "1.avdb"
    data = path.read_bytes()
    logged = entries(av)
    assert released.to_dict() == {
        "name": "main",
        "version": 1,
        "sha256": hashlib.sha256(data).hexdigest(),
        "path": str(path),
        "provenance_log_index": logged.index(path.with_name("1.provenance.dsse.json").read_bytes()),
        "audit_log_index": logged.index(report_file.read_bytes()),
        "waived": ids,
        "compiled_rules": read_database(data).compiled is not None,
    }

    agent = tmp_path / "agent"
    log = LogClient(directory_fetcher(av.log.paths.public), av.log.policy())
    prov = path.with_name("1.provenance.dsse.json").read_bytes()
    got = install(agent, data, prov, [context.builder.key], log=log)
    record = json.loads((agent / "avdb" / "main.installed.json").read_text())
    assert got.to_dict() == {
        "name": "main",
        "version": 1,
        "sha256": record["sha256"],
        "provenance_log_index": logged.index(prov),
    }


def test_a_refused_release_keeps_its_unwaived_findings(av: Home, tmp_path: Path) -> None:
    files = read_directory(rule_tree(tmp_path, {"yara/hunt.yar": HUNTER}))
    context = av.conveyor_context(auditor=True)
    audited = audit_rules(AvdbStore(av.paths.public), av.escrow, files, name="main", context=context)
    refused = release(AvdbStore(av.paths.public), av.escrow, files, name="main", version=1, context=context)
    assert isinstance(refused, Refused)
    assert [f.id for f in refused.unwaived] == audited.to_dict()["unwaived"] != []


def test_install_and_update_views() -> None:
    now = Installed(name="main", version=2, digest="ab" * 32, log_index=None)
    assert now.to_dict() == {"name": "main", "version": 2, "sha256": "ab" * 32, "provenance_log_index": None}
    by_delta = Update(
        installed=Installed(name="main", version=3, digest="cd" * 32, log_index=9), via_delta=True
    )
    assert by_delta.to_dict() == {"version": 3, "sha256": "cd" * 32, "via_delta": True, "fallback_reason": ""}
    full = Update(installed=now, via_delta=False, fallback_reason="no delta offered")
    assert full.to_dict() == {
        "version": 2,
        "sha256": "ab" * 32,
        "via_delta": False,
        "fallback_reason": "no delta offered",
    }


def scan_database() -> bytes:
    e = eicar()
    files = {
        "yara/eicar.yar": EICAR_RULE,
        "hashes/eicar.hdb": hdb([f"{hashlib.md5(e).hexdigest()}:{len(e)}:Overt.Test.EICAR-HDB"]),
    }
    return build_database(ruleset(files, strict=True), name="t", version=1, compiled=None)


def test_scan_report_view_lists_detections_inside_archives_and_errors(tmp_path: Path) -> None:
    (tmp_path / "eicar.com").write_bytes(eicar())
    (tmp_path / "clean.txt").write_text("nothing here\n")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("inner/eicar.com", eicar())
    missing = tmp_path / "missing"
    report = scan_paths(
        scan_database(), [tmp_path / "a.zip", tmp_path / "eicar.com", tmp_path / "clean.txt", missing], jobs=1
    )
    out = report.to_dict()
    assert out["files"] == 3
    assert out["bytes"] == sum((tmp_path / n).stat().st_size for n in ("a.zip", "eicar.com", "clean.txt"))
    assert out["errors"] == [{"path": str(missing), "error": "no such file or directory"}]
    assert sorted(
        (d["path"], d["member"], d["kind"], d["name"], d["rule_id"]) for d in out["detections"]
    ) == [
        (str(tmp_path / "a.zip"), "inner/eicar.com", "hash", "Overt.Test.EICAR-HDB", "Overt.Test.EICAR-HDB"),
        (str(tmp_path / "a.zip"), "inner/eicar.com", "yara", "EICAR_Test_File", "OVT-0001"),
        (str(tmp_path / "eicar.com"), "", "hash", "Overt.Test.EICAR-HDB", "Overt.Test.EICAR-HDB"),
        (str(tmp_path / "eicar.com"), "", "yara", "EICAR_Test_File", "OVT-0001"),
    ]
    assert json.loads(json.dumps(out)) == out


def test_an_empty_scan_report_and_one_detection() -> None:
    assert ScanReport().to_dict() == {"files": 0, "bytes": 0, "detections": [], "errors": []}
    found = Detection(path="/x.zip", name="N", kind="yara", rule_id="OVT-1", member="a!b")
    assert found.to_dict() == {
        "path": "/x.zip",
        "member": "a!b",
        "name": "N",
        "kind": "yara",
        "rule_id": "OVT-1",
    }


def test_rule_diff_view_runs_between_two_versions_with_the_auditors_findings() -> None:
    v1 = build_database(
        ruleset({"yara/eicar.yar": EICAR_RULE}, strict=True), name="main", version=1, compiled=None
    )
    v2_rules = ruleset({"yara/eicar.yar": EICAR_RULE, "yara/hunt.yar": HUNTER}, strict=True)
    v2 = build_database(v2_rules, name="main", version=2, compiled=None)
    diff = diff_databases(old=read_database(v1), new=read_database(v2))
    out = diff.to_dict()
    assert out["from"] == {"version": 1, "sha256": hashlib.sha256(v1).hexdigest()}
    assert out["to"] == {"version": 2, "sha256": hashlib.sha256(v2).hexdigest()}
    (change,) = out["changes"]
    assert {k: change[k] for k in ("rule_id", "change", "old_version", "new_version")} == {
        "rule_id": "OVT-0666",
        "change": "added",
        "old_version": "",
        "new_version": "1",
    }
    assert (
        change["diff"].startswith("--- 1/OVT-0666\n+++ 2/OVT-0666\n")
        and '+    $m = "TOP SECRET"' in change["diff"]
    )
    assert "sensitive-marking" in {f["check"] for f in change["findings"]}
    assert all(set(f) == FINDING_KEYS for f in change["findings"])
    assert diff_databases(old=read_database(v1), new=read_database(v1)).to_dict()["changes"] == []


def test_saved_delta_view_is_the_file_it_wrote(tmp_path: Path) -> None:
    v1 = build_database(
        ruleset({"yara/eicar.yar": EICAR_RULE}, strict=True), name="main", version=1, compiled=None
    )
    more = rule("Dropper_Q", "OVT-0700", '    $a = "dropper-q"', "$a")
    v2_rules = ruleset({"yara/eicar.yar": EICAR_RULE, "yara/more.yar": more}, strict=True)
    v2 = build_database(v2_rules, name="main", version=2, compiled=None)
    out = tmp_path / "1-2.delta"
    saved = write_delta(old=v1, new=v2, out=out)
    assert saved.to_dict() == {"delta": str(out), "bytes": out.stat().st_size, "full_bytes": len(v2)}
    assert apply_delta(v1, out.read_bytes(), hashlib.sha256(v2).hexdigest()) == v2
