"""The monitor judges the repository's history the same whenever it started (docs/operations.md, Monitoring
the log): releases in metadata-version order, every released artifact judged, a target path that changes its
bytes, versions no release could have, and numeric options refused by overt (with ``--json``'s object)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from overt.attest.vsa import FAILED
from overt.auditor.monitor import MonitorReport
from overt.distribute.repository import NewTarget
from overt.distribute.testbed import auditor_verdict, forge_targets
from tests.auditor.monitor_world import run, world
from tests.distribute.world import World

__all__ = ["world"]


def _custom(kind: str, version: Any, provenance: str = "cc" * 32) -> dict[str, Any]:
    o: dict[str, Any] = {"kind": kind, "provenance": {"sha256": provenance, "logIndex": 1}}
    o.update({"product": "demo", "channel": "stable"} if kind == "product" else {"database": "main"})
    if version is not None:
        o["version"] = version
    return {"overt": o}


def _targeted(world: World, path: str, data: bytes, custom: dict[str, Any]) -> None:
    forge_targets(world.home, world.home.path, [NewTarget(path=path, data=data, custom=custom)])


def _alerts(report: MonitorReport) -> set[tuple[str, int | None, str, str]]:
    """The alerts, but for unlogged snapshot and timestamp versions: those only the current of which is read
    (a monitor that ran along saw the ones between)."""
    return {
        (a.kind, a.index, a.subject, a.message)
        for a in report.alerts
        if not (a.kind == "unlogged-metadata" and a.subject.endswith(("snapshot.json", "timestamp.json")))
    }


def test_a_monitor_started_late_judges_the_history_as_one_that_ran_along(
    world: World, tmp_path: Path
) -> None:
    genuine = world.release("1.1", vouched=2)
    provenance = str(genuine.custom["overt"]["provenance"]["sha256"])
    along = _alerts(run(world, tmp_path / "along"))
    for n in range(2):  # two targeted updates of other paths, then a forgery for 1.1 three versions later
        _targeted(
            world, f"products/demo/{n + 2}.0/demo.tar.gz", b"x%d\n" % n, _custom("product", f"{n + 2}.0")
        )
        along |= _alerts(run(world, tmp_path / "along"))
    _targeted(world, "products/demo/1.1/a.tar.gz", b"forged\n", _custom("product", "1.1"))
    along |= _alerts(run(world, tmp_path / "along"))
    auditor_verdict(
        world.home,
        world.auditors[0],
        path="out/demo.tar.gz",
        sha256=genuine.sha256,
        result=FAILED,
        provenance=provenance,
    )
    along |= _alerts(run(world, tmp_path / "along"))
    late = _alerts(run(world, tmp_path / "late"))
    assert late == along
    (duplicate,) = [a for a in late if a[0] == "duplicate-version"]
    assert "a.tar.gz with artifact" in duplicate[3] and f"released as {genuine.path}" in duplicate[3]
    (failed,) = [a for a in late if a[0] == "release-failed"]
    assert failed[2] == genuine.path
    assert f"judged provenance {provenance[:16]} (the released build)" in failed[3]


def test_both_artifacts_of_one_version_are_judged(world: World, tmp_path: Path) -> None:
    genuine = world.release("1.1", vouched=2)
    _targeted(world, "products/demo/1.1/a.tar.gz", b"forged\n", _custom("product", "1.1"))
    forged_sha = hashlib.sha256(b"forged\n").hexdigest()
    for sha in (genuine.sha256, forged_sha):
        auditor_verdict(world.home, world.auditors[1], path="out/x", sha256=sha, result=FAILED)
    failed = {a.subject for a in run(world, tmp_path / "m").alerts if a.kind == "release-failed"}
    assert failed == {genuine.path, "products/demo/1.1/a.tar.gz"}


def test_a_target_path_listed_with_other_bytes_is_alerted(world: World, tmp_path: Path) -> None:
    genuine = world.release("1.1", vouched=2)
    assert run(world, tmp_path / "m").alerts == ()
    _targeted(world, genuine.path, b"other bytes\n", _custom("product", "9.9"))
    report = run(world, tmp_path / "m")
    (changed,) = [a for a in report.alerts if a.kind == "target-changed"]
    assert changed.subject == genuine.path and genuine.sha256[:16] in changed.message
    (malformed,) = [a for a in report.alerts if a.kind == "malformed-version"]
    assert 'path names version "1.1" but its custom version is "9.9"' in malformed.message


@pytest.mark.parametrize(
    ("kind", "path", "version"),
    [
        ("product", "products/demo/7/demo.tar.gz", None),
        ("product", "products/demo/7/demo.tar.gz", " 7"),
        ("product", "products/demo/7_/demo.tar.gz", "7_"),
        ("avdb", "avdb/main/7.avdb", None),
        ("avdb", "avdb/main/7.avdb", " 7"),
        ("avdb", "avdb/main/7.avdb", "7_"),
    ],
)
def test_a_release_target_with_an_unusable_version_is_malformed(
    world: World, tmp_path: Path, kind: str, path: str, version: str | None
) -> None:
    _targeted(world, path, b"odd\n", _custom(kind, version))
    report = run(world, tmp_path / "m")
    assert [a.kind for a in report.alerts if a.kind == "malformed-version"] == ["malformed-version"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--verdict-deadline", "nan"),
        ("--verdict-deadline", "0x10"),
        ("--verdict-deadline", ""),
        ("--verdict-deadline", "87840.0000001"),
        ("--interval", "nan"),
        ("--workers", "abc"),
    ],
)
def test_a_bad_number_is_refused_by_overt_with_the_value_given_and_json_prints_its_object(
    tmp_path: Path, option: str, value: str
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "overt",
            "auditor",
            "monitor",
            "http://127.0.0.1:9/log",
            "--policy",
            str(tmp_path / "policy.toml"),
            "--state",
            str(tmp_path / "m"),
            "--once",
            "--json",
            option,
            value,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["error"]["error"] == "UsageError"
    assert f"{option} {value!r} is not" in report["error"]["message"]
    assert not (tmp_path / "m").exists()
