"""``overt demo`` runs end to end on embedded defaults and leaves an inspectable, verifiable home."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import overt


def test_demo_proves_and_leaves_a_verifiable_home(tmp_path: Path, sandbox, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    r = overt("demo", "--home", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stdout + r.stderr
    proved = [line for line in r.stdout.splitlines() if line.startswith("PROVED")]
    assert len(proved) >= 12, r.stdout
    assert any("foreign signing request refused" in p and "refusal logged" in p for p in proved)
    assert any("refused through the builder registry" in p and "refusal logged" in p for p in proved)
    assert any("restored from an older backup" in p and "refused to append or sign" in p for p in proved)
    assert any("'overt log recover' rebuilt the database" in p and "the same root" in p for p in proved)
    assert "jurisdiction" in r.stdout and "builder" in r.stdout and "auditor" in r.stdout
    assert any("built twice in the bubblewrap sandbox" in p and ": identical;" in p for p in proved)
    assert any(p.startswith("PROVED SLSA provenance logged at index") for p in proved)
    assert any("document-hunting rule is refused" in p for p in proved)
    assert any("through a" in p and "-byte delta" in p and p.endswith("True") for p in proved)
    assert any("eicar.com:EICAR_Test_File" in p and "exit code 1" in p for p in proved)
    home = tmp_path / "demo" / "conveyor"
    keys = json.loads(overt("keys", "list", "--home", str(home), "--json").stdout)["keys"]
    builders = [k for k in keys if k["role"] == "builder"]
    assert sorted(k["status"] for k in builders) == ["active", "rotated"]
    rotated = next(k for k in builders if k["status"] == "rotated")
    # A verifier's pinned policy: the conveyor's own, as it would be handed out of band.
    pinned = ("--policy", str(home / "log-policy"))
    audit = overt("keys", "audit", rotated["keyid"], "--home", str(home), *pinned, "--json")
    assert audit.returncode == 0, audit.stderr
    assert [e["kind"] for e in json.loads(audit.stdout)["entries"]] == [
        "signed",
        "refused",
        "refused",
        "signed",
    ]
    escrow = json.loads(overt("source", "show", "--home", str(home), "--json").stdout)["escrow"]
    assert escrow[0]["name"] == "sample-agent-1.0"
    assert {"avdb-demo-rules"} <= {e["name"] for e in escrow}
    r = overt("log", "verify", "--home", str(home), "--log", str(home / "public" / "log"), *pinned)
    assert r.returncode == 0, r.stderr
