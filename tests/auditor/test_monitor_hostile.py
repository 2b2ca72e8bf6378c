"""The monitor against what a hostile tester did to get past it (docs/operations.md, Monitoring the log): FAILED
verdicts after a release left "pending" or before any release, releases listed by the top-level targets role,
key records the site fails to serve, deleted metadata versions, repeated duplicates, AV-database versions
spelled another way, rebuilders' verdicts, forged verdicts, a broken repository in front of a broken log."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.vsa import FAILED
from overt.auditor.monitor import monitor_once
from overt.distribute.repository import NewTarget
from overt.distribute.state import RepositoryState
from overt.distribute.testbed import add_key, auditor_verdict, forge
from overt.errors import TransportError
from overt.keys.jurisdiction import SOURCE_ESCROW_V1
from overt.keys.registry import Role
from overt.keys.rotation import rotation_statement
from overt.tlog.tiles import TILE_WIDTH, entries_path
from tests.auditor.monitor_world import LATER, NOW, config, current, kinds, log_signed, run, world
from tests.auditor.sites import LoopbackSite
from tests.auditor.test_monitor_runs import StallingLog
from tests.distribute.world import World

__all__ = ["world"]


def _provenance_sha(released: Any) -> str:
    return str(released.custom["overt"]["provenance"]["sha256"])


# --- verdicts -----------------------------------------------------------------------------------------------


def test_a_failed_verdict_after_the_release_was_verified_is_alerted(world: World, tmp_path: Path) -> None:
    released = world.release("1.1")  # PASSED by two auditors: verified on the first run
    assert run(world, tmp_path / "m").alerts == ()
    world.vouch(released, world.auditors[2], result=FAILED)
    report = run(world, tmp_path / "m")
    assert [(a.kind, a.subject) for a in report.alerts if a.kind == "release-failed"] == [
        ("release-failed", released.path)
    ]


def test_a_failed_verdict_on_a_build_nobody_released_is_alerted(world: World, tmp_path: Path) -> None:
    build = b"a build the conveyor made and nobody released\n"
    sha = hashlib.sha256(build).hexdigest()
    provenance = "cd" * 32
    auditor_verdict(
        world.home, world.auditors[0], path="out/x.tar.gz", sha256=sha, result=FAILED, provenance=provenance
    )
    report = run(world, tmp_path / "m")
    (alert,) = report.alerts
    assert alert.kind == "verdict-failed" and sha[:16] in alert.subject
    assert provenance[:16] in alert.message and world.auditors[0].keyid[:16] in alert.message


def test_rebuilders_passed_verdicts_count_through_the_provenance_they_name(
    world: World, tmp_path: Path
) -> None:
    released = world.release("1.1", vouched=0)
    # A rebuilder's VSA (subject out/demo.tar.gz) naming another provenance binds to nothing here.
    auditor_verdict(
        world.home, world.auditors[0], path=released.path, sha256=released.sha256, provenance="ef" * 32
    )
    assert [p.passed for p in run(world, tmp_path / "m", now=NOW).pending] == [0]
    for auditor in world.auditors[:2]:  # naming the target's provenance in inputAttestations: they count
        auditor_verdict(
            world.home,
            auditor,
            path=released.path,
            sha256=released.sha256,
            provenance=_provenance_sha(released),
        )
    second = run(world, tmp_path / "m", now=NOW)
    assert second.pending == () and second.alerts == ()
    assert run(world, tmp_path / "m", now=LATER).alerts == ()


def _forged_failed_verdict(world: World, sha: str) -> int:
    """A FAILED VSA naming auditor 0's keyid, signed by another key."""
    impostor = add_key(world.home, Role.AUDITOR)
    entry = auditor_verdict(
        world.home, impostor, path="out/x", sha256=sha, result=FAILED, provenance="ab" * 32
    )
    forged = entry.replace(impostor.keyid.encode(), world.auditors[0].keyid.encode())
    receipt = world.home.log.append(forged)
    assert receipt.published
    return receipt.index


def test_a_forged_failed_verdict_is_reported_as_forged_not_as_a_verdict(world: World, tmp_path: Path) -> None:
    index = _forged_failed_verdict(world, "12" * 32)
    report = run(world, tmp_path / "m")
    assert [(a.kind, a.index) for a in report.alerts if a.kind != "verdict-failed"] == [
        ("forged-entry", index)
    ]
    assert "verdict-failed" not in kinds(report)
    assert "signature does not verify" in report.alerts[0].message


# --- the repository -----------------------------------------------------------------------------------------


def _custom(version: str, provenance: str) -> dict[str, Any]:
    return {
        "overt": {
            "kind": "product",
            "product": "demo",
            "channel": "stable",
            "version": version,
            "provenance": {"sha256": provenance, "logIndex": 1},
        }
    }


def test_a_release_listed_by_the_top_level_targets_role_is_judged(world: World, tmp_path: Path) -> None:
    assert run(world, tmp_path / "m").alerts == ()
    other = NewTarget(
        path="products/demo/1.0/other.tar.gz", data=b"other\n", custom=_custom("1.0", "aa" * 32)
    )

    def change(state: RepositoryState) -> list[str]:
        state.metadata("targets").signed.targets[other.path] = other.info()
        return ["targets"]

    names = forge(world.home, world.home.path, change)
    report = run(world, tmp_path / "m")
    duplicates = [a for a in report.alerts if a.kind == "duplicate-version"]
    assert len(duplicates) == 1 and names[0] in duplicates[0].message


def test_a_third_artifact_for_one_version_is_alerted_again(world: World, tmp_path: Path) -> None:
    def add(version: str, data: bytes) -> None:
        target = NewTarget(
            path=f"products/demo/{version}/demo.tar.gz", data=data, custom=_custom(version, "bb" * 32)
        )

        def change(state: RepositoryState) -> list[str]:
            state.metadata("targets").signed.targets[target.path] = target.info()
            return ["targets"]

        forge(world.home, world.home.path, change)

    add("1.0.0", b"second\n")
    assert [a.kind for a in run(world, tmp_path / "m").alerts].count("duplicate-version") == 1
    add("1.0.0.0", b"third\n")
    third = run(world, tmp_path / "m")
    assert [a.kind for a in third.alerts].count("duplicate-version") == 1  # the third artifact, alerted too
    assert [a.kind for a in third.alerts].count("unlogged-metadata") >= 1  # a second targets.json digest


def test_a_logged_targets_version_the_repository_deleted_is_alerted(world: World, tmp_path: Path) -> None:
    metadata = world.repo.public / "metadata"
    before = {p.name for p in metadata.iterdir()}
    world.release("1.1")
    (withheld,) = [n for n in {p.name for p in metadata.iterdir()} - before if ".release." in n]
    world.release("1.2")
    (metadata / withheld).unlink()  # served for a while, then gone before any monitor read it
    report = run(world, tmp_path / "m")
    assert [(a.kind, a.subject) for a in report.alerts] == [("metadata-withheld", withheld)]


# --- key records ----------------------------------------------------------------------------------------------


class FailingSite(LoopbackSite):
    """``public/`` served on 127.0.0.1, except that every path starting with ``fail`` answers 500."""

    def __init__(self, root: Path, fail: str) -> None:
        def intercept(h: SimpleHTTPRequestHandler, path: str) -> bool:
            if path.startswith(fail):
                h.send_error(500)
                return True
            return False

        super().__init__(root, intercept)


@pytest.fixture
def failing_keys(world: World) -> Iterator[FailingSite]:
    site = FailingSite(world.home.paths.public, "keys/")
    yield site
    site.stop()


def test_key_records_the_site_fails_to_serve_stop_the_run_without_moving_the_position(
    world: World, tmp_path: Path, failing_keys: FailingSite
) -> None:
    old = current(world, Role.BUILDER)
    new = add_key(world.home, Role.BUILDER)
    log_signed(world, rotation_statement(old, new, reason="test", now=datetime.now(UTC)), old)
    base = config(world, tmp_path / "m")
    broken = replace(base, log_url=failing_keys.url + "/log", repository_url=failing_keys.url + "/tuf")
    report = monitor_once(broken)
    assert isinstance(report.error, TransportError) and "key record" in str(report.error)
    assert report.exit_code == 2 and report.alerts == () and report.entries_read == 0
    fixed = monitor_once(base)
    assert fixed.previous_size == 0 and fixed.alerts == () and fixed.unknown_signers == 0


# --- AV databases in the log ----------------------------------------------------------------------------------


def _avdb_provenance(world: World, version: object, data: bytes, name: object = "main") -> Statement:
    provenance = Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/avdb/v1",
            external_parameters={"database": name, "version": version},
        ),
        run_details=RunDetails(
            builder=Builder(id=world.home.conveyor.provenance_builder_id),
            metadata=BuildMetadata(started_on="2026-11-28T10:00:00Z", finished_on="2026-11-28T10:01:00Z"),
        ),
    )
    digest = {"sha256": hashlib.sha256(data).hexdigest()}
    return provenance.statement((ResourceDescriptor(name="main-7.avdb", digest=digest),))


@pytest.mark.parametrize("spelling", [7.0, True])
def test_an_av_database_version_spelled_another_way_is_the_same_version(
    world: World, tmp_path: Path, spelling: object
) -> None:
    builder = current(world, Role.BUILDER)
    number = 1 if spelling is True else 7
    log_signed(world, _avdb_provenance(world, number, b"first"), builder)
    index = log_signed(world, _avdb_provenance(world, spelling, b"second"), builder)
    report = run(world, tmp_path / "m")
    assert [(a.kind, a.index) for a in report.alerts] == [("duplicate-version", index)]


def test_an_av_database_version_no_release_could_have_is_alerted(world: World, tmp_path: Path) -> None:
    builder = current(world, Role.BUILDER)
    log_signed(world, _avdb_provenance(world, 7, b"first"), builder)
    index = log_signed(world, _avdb_provenance(world, "07", b"second"), builder)
    report = run(world, tmp_path / "m")
    assert [(a.kind, a.index) for a in report.alerts] == [("malformed-version", index)]


# --- the command line -------------------------------------------------------------------------------------------


def _cli(world: World, state: Path, *extra: str, log: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [
        "auditor",
        "monitor",
        log or world.site.url + "/log",
        "--policy",
        str(world.customer / "policy.toml"),
    ]
    return subprocess.run(
        [sys.executable, "-m", "overt", *args, "--state", str(state), "--once", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("hours", ["inf", "1e308", "8e7"])
def test_an_unbounded_verdict_deadline_is_refused_before_anything_is_read(
    world: World, tmp_path: Path, hours: str
) -> None:
    done = _cli(world, tmp_path / "m", "--verdict-deadline", hours)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "m").exists()


def test_a_broken_repository_still_checks_the_log_and_json_says_why(world: World, tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/tuf"  # discard port: nothing listens
    done = _cli(world, tmp_path / "m", "--json", "--repository", dead)
    assert done.returncode == 2, done.stderr
    shown = json.loads(done.stdout)
    assert shown["error"]["error"] == "TransportError" and "repository" in shown["error"]["message"]
    assert shown["tree_size"] > 0 and shown["log_error"] is None  # the log was checked
    checkpoint = world.home.log.paths.public / "checkpoint"
    old = checkpoint.read_bytes()
    world.release("1.1")
    assert _cli(world, tmp_path / "m").returncode == 0
    checkpoint.write_bytes(old)  # a rollback, behind a broken repository
    rolled = _cli(world, tmp_path / "m", "--repository", dead)
    assert rolled.returncode == 3, rolled.stderr
    assert "stopped: the log failed" in rolled.stdout and "up to size 0" not in rolled.stdout


def test_a_monitor_that_cannot_start_prints_its_json_object(world: World, tmp_path: Path) -> None:
    (tmp_path / "m").write_text("not a directory")
    done = _cli(world, tmp_path / "m", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["error"] == "ConfigError"


# --- processes and HTTP ---------------------------------------------------------------------------------------

ORPHAN_RUNNER = """
import sys
from dataclasses import replace
from pathlib import Path
import overt.auditor.monitor_read as read
read.POOL_MIN = 0  # worker processes even for a small log
from overt.auditor.monitor import monitor_config, monitor_once
if __name__ == "__main__":  # spawned workers import this module too
    site, policy, state = sys.argv[1:4]
    config = monitor_config(site + "/log", policy=Path(policy), state=Path(state))
    monitor_once(replace(config, workers=2, repository_url=site + "/tuf"))
"""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_monitor_killed_with_sigkill_leaves_no_worker_behind(world: World, tmp_path: Path) -> None:
    # The monitor stalls fetching the builder's key record, after its workers read the log: they are idle.
    builder = current(world, Role.BUILDER)
    served = StallingLog(world.home.paths.public, f"keys/{builder.keyid}.json")
    script = tmp_path / "runner.py"
    script.write_text(ORPHAN_RUNNER)
    root = str(Path(__file__).parents[2])
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(script),
                served.url,
                str(world.customer / "policy.toml"),
                str(tmp_path / "m"),
            ],
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), root])),
            },
        )
        try:
            while not served.reached.wait(0.1):
                assert proc.poll() is None, "the monitor ended before it asked for the key record"
            children = _children(proc.pid)
            assert children
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        give_up = time.monotonic() + 60
        while any(map(_alive, children)) and time.monotonic() < give_up:
            time.sleep(0.2)
        left = [c for c in children if _alive(c)]
        for c in left:  # a failing run leaves nothing behind either
            os.kill(c, signal.SIGKILL)
        assert not left, "processes of the killed monitor are still running"
    finally:
        served.stop()


class TricklingServer(LoopbackSite):
    """Answers every GET with a 200 whose body arrives one byte every 0.2 s, for ever."""

    def __init__(self) -> None:
        def intercept(h: SimpleHTTPRequestHandler, path: str) -> bool:
            h.send_response(200)
            h.end_headers()
            try:
                while True:
                    h.wfile.write(b"x")
                    h.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                return True

        super().__init__(None, intercept)


def test_a_response_trickling_in_fails_at_the_deadline() -> None:
    from overt.auditor.monitor_http import monitor_fetcher

    server = TricklingServer()
    try:
        fetch = monitor_fetcher(server.url + "/log", deadline=1.0)
        with pytest.raises(TransportError, match="took more than 1 s"):
            fetch("checkpoint")
    finally:
        server.stop()


class TruncatingLog(LoopbackSite):
    """``public/`` on 127.0.0.1, except that ``path`` is cut short: its Content-Length promised more."""

    def __init__(self, root: Path, path: str) -> None:
        def intercept(h: SimpleHTTPRequestHandler, asked: str) -> bool:
            if asked != path:
                return False
            data = (root / path).read_bytes()
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.close_connection = True
            return True

        super().__init__(root, intercept)


def test_a_truncated_partial_tile_is_named_not_hidden_behind_the_full_tiles_404(
    world: World, tmp_path: Path
) -> None:
    size = world.home.log.open().tree_size
    partial = entries_path(0, size % TILE_WIDTH)
    served = TruncatingLog(world.home.log.paths.public, partial)
    try:
        report = monitor_once(replace(config(world, tmp_path / "m"), log_url=served.url))
    finally:
        served.stop()
    assert report.exit_code == 3 and report.log_error is not None
    message = str(report.log_error)
    assert partial in message and "404" in message and "peer closed" in message


def test_text_output_says_how_many_entries_no_known_key_signed(world: World, tmp_path: Path) -> None:
    stranger = add_key(world.home, Role.BUILDER)
    (world.home.paths.public / "keys" / f"{stranger.keyid}.json").unlink(missing_ok=True)
    log_signed(
        world,
        Statement(
            subject=(ResourceDescriptor(name="x", digest={"sha256": "ab" * 32}),),
            predicate_type=SOURCE_ESCROW_V1,
            predicate={"uri": "escrow/x"},
        ),
        stranger,
    )
    done = _cli(world, tmp_path / "m")
    assert done.returncode == 0, done.stderr
    assert "unknown signers: 1 new entries are signed by no key this monitor knows" in done.stdout


def test_every_log_client_gives_up_on_a_response_trickling_in() -> None:
    """The same deadline bounds overt's own log fetcher (log verify, the endpoint's log reads, the rebuilder)."""
    from overt.tlog.client import http_fetcher

    server = TricklingServer()
    try:
        with pytest.raises(TransportError, match="took more than 1 s"):
            http_fetcher(server.url + "/log", deadline=1.0)("checkpoint")
    finally:
        server.stop()
