"""``overt avdb`` as a user runs it: audit, refusal, waiver, build, diff, delta, install, update; clean errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.avdb.samples import EICAR_RULE, eicar, hdb, rule
from tests.cli.test_cli import overt

HUNTER = rule("Memo_Hunt", "OVT-0666", '    $m = "TOP SECRET"', "$m")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_avdb_flow(tmp_path: Path, sandbox: None) -> None:
    home = str(tmp_path / "home")
    H = ("--home", home)
    overt("init", *H)
    overt("keys", "generate", "--role", "builder", *H)
    overt("keys", "generate", "--role", "auditor", "--type", "ecdsa", *H)
    overt("keys", "generate", "--role", "release", *H)  # registers this home's builder id
    e = eicar()
    base = {
        "yara/eicar.yar": EICAR_RULE,
        "h/e.hdb": hdb([f"{hashlib.md5(e).hexdigest()}:{len(e)}:Overt.Test.EICAR"]),
    }
    bad = write_tree(tmp_path / "bad", {**base, "yara/hunt.yar": HUNTER})

    r = overt("avdb", "audit", str(bad), "--name", "main", *H, "--json")
    assert r.returncode == 1
    findings = json.loads(r.stdout)["unwaived"]
    assert findings
    r = overt("avdb", "build", str(bad), "--name", "main", "--version", "1", *H)
    assert r.returncode == 1 and "release refused" in r.stderr and "Traceback" not in r.stderr
    for f in findings:
        r = overt("avdb", "waive", f, "--name", "main", "--reason", "test corpus rule", *H, "--json")
        assert r.returncode == 0, r.stderr
    r = overt("avdb", "build", str(bad), "--name", "main", "--version", "1", *H, "--json")
    assert r.returncode == 0, r.stderr
    v1 = json.loads(r.stdout)
    assert sorted(v1["waived"]) == sorted(findings)

    good = write_tree(
        tmp_path / "good",
        {**base, "yara/more.yar": rule("Dropper_Q", "OVT-0700", '    $a = "dropper-q"', "$a")},
    )
    v2 = json.loads(
        overt("avdb", "build", str(good), "--name", "main", "--version", "2", *H, "--json").stdout
    )
    d = json.loads(overt("avdb", "diff", v1["path"], v2["path"], "--json").stdout)
    assert {(c["rule_id"], c["change"]) for c in d["changes"]} == {
        ("OVT-0666", "removed"),
        ("OVT-0700", "added"),
    }
    delta = tmp_path / "1-2.delta"
    assert overt("avdb", "delta", v1["path"], v2["path"], "--out", str(delta)).returncode == 0

    keys = [str(p) for p in (Path(home) / "public" / "keys").glob("*.json")]
    key_args = [a for k in keys for a in ("--key", k)]
    agent = ("--agent", str(tmp_path / "agent"))
    prov1 = str(Path(v1["path"]).with_name("1.provenance.dsse.json"))
    prov2 = str(Path(v2["path"]).with_name("2.provenance.dsse.json"))
    # The endpoint's pinned policy: the home's own, as a customer would receive it out of band.
    log = ("--log", str(Path(home) / "public" / "log"), "--policy", str(Path(home) / "log-policy"))
    r = overt("avdb", "install", v1["path"], "--provenance", prov1, *key_args, *log, *agent, "--json")
    assert r.returncode == 0, r.stderr
    r = overt(
        "avdb",
        "update",
        "--provenance",
        prov2,
        *key_args,
        "--full",
        v2["path"],
        "--delta",
        str(delta),
        *agent,
        "--json",
    )
    assert r.returncode == 0 and json.loads(r.stdout)["via_delta"] is True, r.stderr
    r = overt("avdb", "install", v1["path"], "--provenance", prov1, *key_args, *agent)
    assert r.returncode == 1 and "only move forward" in r.stderr
    r = overt("avdb", "install", v2["path"], "--provenance", prov1, *key_args, *agent)
    assert (
        r.returncode == 1 and "not the one its provenance names" in r.stderr and "Traceback" not in r.stderr
    )
    r = overt("avdb", "waive", "0000000000000000", "--name", "main", "--reason", "x", *H)
    assert r.returncode == 2 and "no finding" in r.stderr
    r = overt("avdb", "build", str(tmp_path / "missing"), "--name", "main", "--version", "3", *H)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_with_two_auditor_keys_the_audit_commands_sign_with_the_one_named(
    tmp_path: Path, sandbox: None
) -> None:
    """A second active auditor key (a test auditor for VSAs, say) must not stop database releases: the
    audit commands refuse to choose, say how to choose, and sign with the key --auditor-key names."""
    H = ("--home", str(tmp_path / "home"))
    overt("init", *H)
    for role in ("builder", "auditor", "release"):
        overt("keys", "generate", "--role", role, *H)
    second = json.loads(overt("keys", "generate", "--role", "auditor", "--force", *H, "--json").stdout)
    keyid = second["generated"]["keyid"]
    tree = write_tree(tmp_path / "rules", {"yara/eicar.yar": EICAR_RULE})
    r = overt("avdb", "build", str(tree), "--name", "main", "--version", "1", *H)
    assert r.returncode == 2 and "2 active auditor keys" in r.stderr and "--auditor-key" in r.stderr
    r = overt(
        "avdb",
        "build",
        str(tree),
        "--name",
        "main",
        "--version",
        "1",
        "--auditor-key",
        keyid[:12],
        *H,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    keys = json.loads(overt("keys", "list", *H, "--json").stdout)["keys"]
    (builder,) = [k["keyid"] for k in keys if k["role"] == "builder"]
    r = overt("avdb", "audit", str(tree), "--name", "main", "--auditor-key", builder, *H)
    assert r.returncode == 2 and "is not an active auditor signing key" in r.stderr
