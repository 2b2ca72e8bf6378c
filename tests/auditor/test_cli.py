"""``overt auditor init`` and ``overt auditor show`` as a user runs them, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from overt.home import Home
from tests.auditor.conftest import LOG_ORIGIN, Vendor

USAGE = 2


def overt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "overt", *args], capture_output=True, text=True, timeout=120)


def init_args(
    home: Path, vendor: Vendor, *, policy: Path | None = None, key: Path | None = None
) -> list[str]:
    keys = [key] if key is not None else list(vendor.keys)
    return [
        "auditor",
        "init",
        "--home",
        str(home),
        "--name",
        "auditor.example/a1",
        "--log-url",
        "https://vendor.example/log",
        "--log-policy",
        str(policy or vendor.policy),
        *[arg for k in keys for arg in ("--vendor-key", str(k))],
    ]


def test_init_then_show(tmp_path: Path, vendor: Vendor) -> None:
    home = tmp_path / "a1"
    made = overt(*init_args(home, vendor), "--jurisdiction", "DE", "--json")
    assert made.returncode == 0, made.stderr
    view = json.loads(made.stdout)
    assert view["jurisdiction"] == "DE" and view["auditor_key"]["role"] == "auditor"
    assert view["log"]["origins"] == [LOG_ORIGIN] and view["log"]["quorum"] == "w1"
    assert [k["role"] for k in view["vendor_keys"]] == ["release", "builder"]
    shown = overt("auditor", "show", "--home", str(home), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == view
    text = overt("auditor", "show", "--home", str(home))
    assert text.returncode == 0, text.stderr
    assert f"auditor key:  {view['auditor_key']['keyid']} (ed25519)" in text.stdout
    assert f"witness vkey: {view['witness']['vkey']}" in text.stdout
    assert f"log policy:   sha256:{view['log']['policy_sha256']}" in text.stdout
    again = overt(*init_args(home, vendor))
    assert again.returncode == USAGE
    assert again.stderr.strip().count("\n") == 0 and "auditor home already" in again.stderr
    assert json.loads(overt("auditor", "show", "--home", str(home), "--json").stdout) == view


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("policy-fifo", "is a FIFO"),
        ("policy-zero", "character device"),
        ("policy-garbage", "not a C2SP tlog-policy"),
        ("key-fifo", "is a FIFO"),
        ("key-zero", "character device"),
        ("conveyor-home", "conveyor's home"),
    ],
)
def test_refusals_are_one_line_and_exit_2(tmp_path: Path, vendor: Vendor, case: str, message: str) -> None:
    home = tmp_path / "a1"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    garbage = tmp_path / "garbage.policy"
    garbage.write_text("log nonsense\nquorum none\n")
    policy, key = {
        "policy-fifo": (fifo, None),
        "policy-zero": (Path("/dev/zero"), None),
        "policy-garbage": (garbage, None),
        "key-fifo": (None, fifo),
        "key-zero": (None, Path("/dev/zero")),
        "conveyor-home": (None, None),
    }[case]
    if case == "conveyor-home":
        Home.init(home)
    before = sorted(home.rglob("*")) if home.exists() else None
    r = overt(*init_args(home, vendor, policy=policy, key=key))
    assert r.returncode == USAGE, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message in r.stderr
    assert "Traceback" not in r.stderr
    assert (sorted(home.rglob("*")) if home.exists() else None) == before


def test_show_refuses_what_is_no_auditor_home(tmp_path: Path) -> None:
    Home.init(tmp_path / "conveyor")
    for home, message in [
        (tmp_path / "conveyor", "conveyor's home"),
        (tmp_path / "none", "not an auditor home"),
    ]:
        r = overt("auditor", "show", "--home", str(home))
        assert r.returncode == USAGE and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_witness_serve_on_an_auditor_home_serves_the_auditors_own_witness(
    tmp_path: Path, vendor: Vendor
) -> None:
    """Point 5: an auditor runs its witness with its own key: ``overt witness serve --home AUDITOR_HOME``."""
    from tests.tlog.test_witness_serve import start_serve

    home = tmp_path / "a1"
    made = overt(*init_args(home, vendor), "--json")
    assert made.returncode == 0, made.stderr
    vkey = json.loads(made.stdout)["witness"]["vkey"]
    served = start_serve(home)
    try:
        import httpx

        from overt.tlog.cosignature import parse_cosignature_vkey

        assert parse_cosignature_vkey(vkey).name == "auditor.example/a1"
        stranger = httpx.get(f"{served.url}/{'0' * 64}/checkpoint", timeout=10)
        assert stranger.status_code == 404
    finally:
        served.proc.terminate()
        out, _ = served.proc.communicate(timeout=60)
    assert "witness auditor.example/a1 on" in out and LOG_ORIGIN in out, out
