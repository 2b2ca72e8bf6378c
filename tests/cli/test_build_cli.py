"""``overt source`` and ``overt build`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import overt

RECIPE = '[build]\nsteps = ["mkdir -p out", "cp hello.txt out/"]\noutputs = ["out/hello.txt"]\n'


def test_escrow_build_and_diff(tmp_path: Path, sandbox) -> None:
    home = str(tmp_path / "home")
    H = ("--home", home)
    overt("init", *H)
    assert overt("keys", "generate", "--role", "builder", *H).returncode == 0
    # The release key registers this home's builder id: log entry 0.
    assert overt("keys", "generate", "--role", "release", *H).returncode == 0
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hello v1\n")
    recipe = tmp_path / "overt.toml"
    recipe.write_text(RECIPE)
    r = overt("source", "add", str(src), "--recipe", str(recipe), "--name", "hello-1", *H, "--json")
    assert r.returncode == 0, r.stderr
    v1 = json.loads(r.stdout)["source"]
    assert v1["kind"] == "source" and v1["files"] == 2 and v1["log_index"] == 1
    again = json.loads(
        overt("source", "add", str(src), "--recipe", str(recipe), "--name", "hello-1", *H, "--json").stdout
    )
    assert again["new"] is False and again["source"]["sha256"] == v1["sha256"]
    assert (Path(home) / "public" / "escrow" / v1["sha256"]).exists()

    (src / "hello.txt").write_text("hello v2\n")
    (src / "NEW").write_text("n\n")
    v2 = json.loads(
        overt("source", "add", str(src), "--recipe", str(recipe), "--name", "hello-2", *H, "--json").stdout
    )["source"]
    d = json.loads(overt("source", "diff", v1["sha256"][:12], v2["sha256"][:12], *H, "--json").stdout)
    assert d["added"] == ["NEW"] and d["changed"] == ["hello.txt"] and d["removed"] == []
    r = overt("source", "diff", v1["sha256"][:12], v2["sha256"][:12], *H)
    assert "-hello v1" in r.stdout and "+hello v2" in r.stdout
    listing = json.loads(overt("source", "show", *H, "--json").stdout)["escrow"]
    assert [e["name"] for e in listing] == ["hello-1", "hello-2"]
    one = json.loads(overt("source", "show", v2["sha256"][:10], *H, "--json").stdout)
    assert {e["path"] for e in one["entries"]} == {"NEW", "hello.txt", "overt.toml"}

    r = overt("build", v2["sha256"][:12], "--check", *H, "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["verdict"] == "identical" and b["provenance_log_index"] == 3
    assert Path(b["outputs"][0]["path"]).read_text() == "hello v2\n"
    r = overt("build", v2["sha256"][:12], *H)
    assert r.returncode == 0 and "built once" in r.stdout and "provenance signed by builder key" in r.stdout
    audit = json.loads(
        overt(
            "keys",
            "audit",
            json.loads(overt("keys", "list", *H, "--json").stdout)["keys"][0]["keyid"],
            *H,
            "--policy",
            str(Path(home) / "log-policy"),
            "--json",
        ).stdout
    )
    kinds = [e["predicate_type"] for e in audit["entries"]]
    assert (
        kinds.count("https://slsa.dev/provenance/v1") == 2
        and kinds.count("https://overt.dev/attestation/source-escrow/v1") == 2
    )


def test_build_errors_are_clean(tmp_path: Path, sandbox) -> None:
    home = str(tmp_path / "home")
    H = ("--home", home)
    overt("init", *H)
    r = overt("source", "add", str(tmp_path), *H)
    assert r.returncode == 2 and "no active builder key" in r.stderr
    overt("keys", "generate", "--role", "builder", *H)
    src = tmp_path / "s"
    src.mkdir()
    (src / "a").write_text("a\n")
    r = overt("source", "add", str(src), *H, "--json")
    sha = json.loads(r.stdout)["source"]["sha256"]
    r = overt("build", sha, *H)
    assert r.returncode == 2 and "no overt.toml" in r.stderr and "Traceback" not in r.stderr
    for args, message in [
        (("build", "deadbeef00"), "no escrowed objects match"),
        (("source", "add", str(tmp_path / "missing")), "does not exist"),
        (("source", "show", "xyz"), "prefix of at least 8"),
    ]:
        r = overt(*args, *H)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8bnot really")
    r = overt("source", "add", str(bad), *H)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def _home_with_builder(tmp_path: Path) -> tuple[str, ...]:
    home = str(tmp_path / "home")
    H = ("--home", home)
    overt("init", *H)
    assert overt("keys", "generate", "--role", "builder", *H).returncode == 0
    assert overt("keys", "generate", "--role", "release", *H).returncode == 0
    return H


def test_source_add_refuses_a_broken_recipe_before_escrow(tmp_path: Path) -> None:
    H = _home_with_builder(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hello\n")
    recipe = tmp_path / "overt.toml"
    for text, message in [
        (RECIPE + '[build.env]\nTZ = "Europe/Londn"\n', "did you mean Europe/London?"),
        ('[build]\nsteps = ["true"]\n', "build.outputs must be a non-empty array"),
    ]:
        recipe.write_text(text)
        r = overt("source", "add", str(src), "--recipe", str(recipe), *H)
        assert r.returncode != 0 and message in r.stderr and "nothing was escrowed" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert json.loads(overt("source", "show", *H, "--json").stdout)["escrow"] == []


EMBEDS_TIME = '[build]\nsteps = ["mkdir -p out", "date -u +built-at-%s.%N > out/info.txt"]\noutputs = ["out/info.txt"]\n'


def test_a_failed_check_prints_the_report_once_and_says_where_it_is_kept(tmp_path: Path, sandbox) -> None:
    import shutil

    from tests.conftest import require

    require(
        shutil.which("diffoscope") is not None, "diffoscope not installed (Debian package diffoscope-minimal)"
    )
    H = _home_with_builder(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "README").write_text("r\n")
    recipe = tmp_path / "overt.toml"
    recipe.write_text(EMBEDS_TIME)
    sha = json.loads(overt("source", "add", str(src), "--recipe", str(recipe), *H, "--json").stdout)[
        "source"
    ]["sha256"]
    r = overt("build", sha[:12], "--check", *H)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (kept,) = (Path(H[1]) / "public" / "builds").iterdir()
    assert f"kept in {kept}" in r.stderr and "nothing was signed" in r.stderr
    report = (kept / "diffoscope.txt").read_text().strip()
    assert "reference/out/info.txt" in report and r.stderr.count(report) == 1
    assert r.stderr.count("built-at-") == report.count("built-at-")  # the report, and only once
    assert (kept / "diffoscope.html").is_file()
    assert (kept / "reference" / "out" / "info.txt").is_file() and (
        kept / "varied" / "out" / "info.txt"
    ).is_file()
    r = overt("build", sha[:12], "--check", *H, "--json")
    assert r.returncode == 1 and r.stdout == ""
    err = json.loads(r.stderr.strip().splitlines()[-1])
    assert err["error"] == "ReproducibilityError" and err["evidence"]["differing"] == ["out/info.txt"]


def test_build_json_reports_variations_and_executable_outputs(tmp_path: Path, sandbox) -> None:
    H = _home_with_builder(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "README").write_text("r\n")
    recipe = tmp_path / "overt.toml"
    recipe.write_text(
        '[build]\nsteps = ["mkdir -p bin", "printf \'#!/bin/sh\\n\' > bin/run", "chmod +x bin/run"]\noutputs = ["bin/run"]\n'
    )
    sha = json.loads(overt("source", "add", str(src), "--recipe", str(recipe), *H, "--json").stdout)[
        "source"
    ]["sha256"]
    b = json.loads(overt("build", sha[:12], "--check", *H, "--json").stdout)
    (out,) = b["outputs"]
    assert out["name"] == "bin/run" and out["executable"] is True and Path(out["path"]).stat().st_mode & 0o111
    assert b["variations"]["pinned"] == ["buildPath"] and "TZ" in b["variations"]["varied"]
    r = overt("build", sha[:12], "--check", *H)
    assert (
        r.returncode == 0 and "the second build varied: TZ (UTC → " in r.stdout and "(executable)" in r.stdout
    )


def _scratch_holding(marker: str) -> list[Path]:
    """The build scratch directories (on tmpfs, or in the temporary directory) holding a file ``marker``."""
    import os
    import tempfile

    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return [d for d in base.glob("overt-build-*") if d.is_dir() and any(d.rglob(marker))]


def test_a_killed_builds_scratch_directory_is_removed_by_the_next_build(tmp_path: Path, sandbox) -> None:
    """SIGKILL leaves a build's scratch directory behind; the next build removes it, as its lock is free."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid

    home = str(tmp_path / "home")
    H = ("--home", home)
    overt("init", *H)
    overt("keys", "generate", "--role", "builder", *H)
    overt("keys", "generate", "--role", "release", *H)
    marker = f"marker-{uuid.uuid4().hex}"
    slow, quick = tmp_path / "slow", tmp_path / "quick"
    for src, step in ((slow, "sleep 600"), (quick, "true")):
        src.mkdir()
        (src / marker).write_text("x\n")
        (src / "overt.toml").write_text(
            f'[build]\nsteps = ["cp {marker} out", "{step}"]\noutputs = ["out"]\n'
        )
    refs = [
        json.loads(overt("source", "add", str(s), *H, "--json").stdout)["source"]["sha256"]
        for s in (slow, quick)
    ]
    build = subprocess.Popen(
        [sys.executable, "-m", "overt", "build", refs[0], *H],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _scratch_holding(marker) and build.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
    (left,) = _scratch_holding(marker)  # the killed build's, left behind
    r = overt("build", refs[1], *H)
    assert r.returncode == 0, r.stderr
    assert not left.exists() and not Path(f"{left}.lock").exists()
    assert _scratch_holding(marker) == []
