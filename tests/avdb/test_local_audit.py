"""``overt avdb audit --local DIR --markings FILE``: a customer audits rules with their own codenames, with no
home and no keys, and nothing is signed, logged or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.avdb.samples import EICAR_RULE, rule

# The vendor's list does not name the customer's codename; the customer's own list does.
PLANTED = rule("Project_Notes", "OVT-0777", '    $a = "BLUEFIN ROADMAP"', "$a")


def run_local(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``overt`` with no home at all: $HOME an empty directory, no OVERT_HOME, an empty working directory."""
    home = tmp_path / "empty-home"
    cwd = tmp_path / "cwd"
    home.mkdir(exist_ok=True)
    cwd.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERT_", "XDG_"))}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "overt", "avdb", "audit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_customer_finds_their_codename_with_no_home_and_nothing_left_behind(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "rules", {"yara/eicar.yar": EICAR_RULE, "yara/notes.yar": PLANTED})
    markings = tmp_path / "codenames.txt"
    markings.write_text("# our project names\nBLUEFIN\n")
    (tmp_path / "empty-home").mkdir()
    (tmp_path / "cwd").mkdir()
    before = snapshot(tmp_path)
    r = run_local(tmp_path, "--local", str(tree), "--markings", str(markings), "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["signed"] is False and out["logged"] is False and out["blocking"] >= 1
    hits = [f for f in out["findings"] if f["check"] == "sensitive-marking"]
    assert [(f["ruleId"], "BLUEFIN" in f["message"]) for f in hits] == [("OVT-0777", True)]
    r = run_local(tmp_path, "--local", str(tree), "--markings", str(markings))
    assert r.returncode == 1 and "nothing was signed, logged or written" in r.stdout
    assert snapshot(tmp_path) == before  # no home made, no file written anywhere under it


def test_a_clean_tree_exits_0_and_bad_input_exits_2(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "rules", {"yara/eicar.yar": EICAR_RULE, "yara/notes.yar": PLANTED})
    markings = tmp_path / "codenames.txt"
    markings.write_text("MARLIN\n")
    r = run_local(tmp_path, "--local", str(tree), "--markings", str(markings), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["blocking"] == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    for args, message in (
        (("--local", str(tree), "--markings", str(empty)), "the marking list is empty"),
        (("--local", str(tree), "--markings", str(tmp_path / "missing.txt")), "cannot read the marking list"),
        (("--local", str(tmp_path / "nowhere"), "--markings", str(markings)), "does not exist"),
    ):
        r = run_local(tmp_path, *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)


def test_the_packaged_list_is_audited_beside_the_customers(tmp_path: Path) -> None:
    hunting = rule("Memo_Hunt", "OVT-0900", '    $a = "TOP SECRET"', "$a")
    tree = write_tree(tmp_path / "rules", {"yara/eicar.yar": EICAR_RULE, "yara/memo.yar": hunting})
    markings = tmp_path / "codenames.txt"
    markings.write_text("MARLIN\n")
    for extra in ((), ("--markings", str(markings))):
        r = run_local(tmp_path, "--local", str(tree), *extra, "--json")
        out = json.loads(r.stdout)
        assert r.returncode == 1 and out["blocking"] >= 1, (extra, r.stderr)
        assert out["markings"].startswith("packaged markings.toml")
        assert {f["ruleId"] for f in out["findings"] if f["check"] == "sensitive-marking"} == {"OVT-0900"}
