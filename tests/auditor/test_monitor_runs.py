"""The monitor as cron and CI run it: the command line, its JSON and exit codes, the webhook (a real HTTP
receiver on 127.0.0.1), a log that rolls back or serves other entries than its tree, and SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from overt.attest.dsse import Envelope
from overt.auditor.monitor_state import DATABASE
from overt.keys.jurisdiction import KEY_ROTATION_V1
from overt.keys.registry import Role
from overt.tlog.tiles import TILE_WIDTH, entries_path
from tests.auditor.monitor_world import current, log_signed, provenance, run, world
from tests.auditor.sites import LoopbackSite
from tests.distribute.world import World

__all__ = ["world"]
LOG_FAILED = 3


def monitor_cli(w: World, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["auditor", "monitor", w.site.url + "/log", "--policy", str(w.customer / "policy.toml")]
    return subprocess.run(
        [sys.executable, "-m", "overt", *args, "--state", str(state), "--once", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_json_text_and_exit_codes(world: World, tmp_path: Path) -> None:
    clean = monitor_cli(world, tmp_path / "m", "--json")
    assert clean.returncode == 0, clean.stderr
    shown = json.loads(clean.stdout)
    assert set(shown) == {
        "log",
        "tree_size",
        "previous_size",
        "entries_read",
        "alerts",
        "pending",
        "webhook",
        "unknown_signers",
        "log_error",
        "position",
        "error",
    }
    assert shown["alerts"] == [] and shown["entries_read"] == shown["tree_size"]
    world.release("1.1", vouched=1)
    index = log_signed(
        world, provenance(world, b"x", builder_id="https://elsewhere.example/b"), current(world, Role.BUILDER)
    )
    found = monitor_cli(world, tmp_path / "m", "--json")
    assert found.returncode == 1, found.stderr
    report = json.loads(found.stdout)
    assert [set(a) for a in report["alerts"]] == [{"id", "kind", "index", "subject", "message"}]
    assert report["alerts"][0]["kind"] == "builder-registry" and report["alerts"][0]["index"] == index
    assert [p["target"] for p in report["pending"]] == ["products/demo/1.1/demo.tar.gz"]
    assert set(report["pending"][0]) == {"target", "sha256", "passed", "required", "deadline"}
    again = monitor_cli(world, tmp_path / "m")
    assert again.returncode == 0, again.stderr  # reported once
    assert "pending: products/demo/1.1/demo.tar.gz has 1 of 2 PASSED verdicts" in again.stdout
    bad = monitor_cli(world, tmp_path / "m", "--verdict-deadline", "-1")
    assert bad.returncode == 2


def test_alerts_print_one_line_each(world: World, tmp_path: Path) -> None:
    index = log_signed(
        world, provenance(world, b"x", builder_id="https://elsewhere.example/b"), current(world, Role.BUILDER)
    )
    done = monitor_cli(world, tmp_path / "m")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(
        f'builder-registry: builder "https://elsewhere.example/b" (log index {index}): '
    )
    assert lines[-1].startswith(f"checked {world.site.url}/log up to size ")


def test_a_rolled_back_log_exits_with_the_log_code(world: World, tmp_path: Path) -> None:
    checkpoint = world.home.log.paths.public / "checkpoint"
    old = checkpoint.read_bytes()
    world.release("1.1")
    assert monitor_cli(world, tmp_path / "m").returncode == 0
    checkpoint.write_bytes(old)
    rolled = monitor_cli(world, tmp_path / "m")
    assert rolled.returncode == LOG_FAILED, rolled.stderr
    assert "rolled back" in rolled.stderr


def test_entries_that_are_not_the_trees_are_caught(world: World, tmp_path: Path) -> None:
    bundles = sorted((world.home.log.paths.public / "tile" / "entries").rglob("*"))
    changed = 0
    for path in (p for p in bundles if p.is_file()):
        data = path.read_bytes()
        if b"in-toto" in data:
            path.write_bytes(data.replace(b"in-toto", b"in-totx", 1))
            changed += 1
    assert changed
    caught = monitor_cli(world, tmp_path / "m")
    assert caught.returncode == LOG_FAILED, caught.stderr
    assert "not the entries the tree commits to" in caught.stderr or "not the ones" in caught.stderr


def test_an_unreachable_log_exits_with_the_log_code(world: World, tmp_path: Path) -> None:
    text = (world.customer / "policy.toml").read_text()
    (world.customer / "policy.toml").write_text(text)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        "auditor",
        "monitor",
        f"http://127.0.0.1:{port}/log",
        "--policy",
        str(world.customer / "policy.toml"),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "overt", *args, "--state", str(tmp_path / "m"), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == LOG_FAILED, done.stderr
    assert "unreachable" in done.stderr


# --- the webhook ------------------------------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records every JSON body POSTed to it."""

    def __init__(self, port: int = 0) -> None:
        received: list[dict[str, object]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_gets_each_alert_and_a_receiver_down_loses_none(
    world: World, tmp_path: Path, free_port: int
) -> None:
    url = f"http://127.0.0.1:{free_port}/alerts"
    first = log_signed(
        world, provenance(world, b"x", builder_id="https://elsewhere.example/b"), current(world, Role.BUILDER)
    )
    down = run(world, tmp_path / "m", webhook=url)
    assert [a.index for a in down.alerts] == [first]
    assert down.webhook is not None and down.webhook.undelivered == 1 and down.webhook.error is not None
    assert down.exit_code == 2  # alerts the webhook did not take: 2 outranks 1
    second = log_signed(
        world, provenance(world, b"y", builder_id="https://elsewhere.example/c"), current(world, Role.BUILDER)
    )
    receiver = Receiver(free_port)
    try:
        up = run(world, tmp_path / "m", webhook=url)
        assert [a.index for a in up.alerts] == [second]
        assert up.webhook is not None and (up.webhook.sent, up.webhook.undelivered) == (2, 0)
        assert [r["index"] for r in receiver.received] == [first, second]
        assert {r["kind"] for r in receiver.received} == {"builder-registry"}
        assert run(world, tmp_path / "m", webhook=url).webhook == type(up.webhook)(
            url=url, sent=0, undelivered=0, error=None
        )
        assert len(receiver.received) == 2
    finally:
        receiver.stop()


# --- SIGKILL mid-run ---------------------------------------------------------------------------------------

RUNNER = """
import sys
from dataclasses import replace
from overt.auditor.monitor import monitor_config, monitor_once
config = monitor_config(sys.argv[1], policy=__import__("pathlib").Path(sys.argv[2]), state=__import__("pathlib").Path(sys.argv[3]))
monitor_once(replace(config, commit_bundles=1, workers=1))
"""


def _rotations(count: int) -> Iterator[bytes]:
    """Unsigned key-rotation statements naming an old key nobody knows: each one an alert."""
    for i in range(count):
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": f"key:{i}", "digest": {"sha256": f"{i:064x}"}}],
            "predicateType": KEY_ROTATION_V1,
            "predicate": {"oldKeyid": f"{i + 1:064x}"},
        }
        yield Envelope(
            payload=json.dumps(statement).encode(), payload_type="application/vnd.in-toto+json"
        ).to_bytes()


def _position(state: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{state / DATABASE}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'position'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return 0 if row is None else int(row[0])


class StallingLog(LoopbackSite):
    """The log's ``public/`` directory served on 127.0.0.1, except that a request for ``stall`` is held until
    :meth:`stop`: a reader that asks for it has done everything before it, and can go no further."""

    def __init__(self, root: Path, stall: str) -> None:
        self.reached = threading.Event()
        self.released = threading.Event()

        def intercept(h: SimpleHTTPRequestHandler, path: str) -> bool:
            if path != stall:
                return False
            self.reached.set()
            self.released.wait(120)
            h.send_error(503)
            return True

        super().__init__(root, intercept)

    def stop(self) -> None:
        self.released.set()
        super().stop()


def test_sigkill_mid_run_skips_nothing_and_alerts_nothing_twice(world: World, tmp_path: Path) -> None:
    rotations = list(_rotations(40))
    filler = [f"filler entry {i}".encode() * 4 for i in range(12_000)]
    entries = [e for i, r in enumerate(rotations) for e in (r, *filler[i * 300 : (i + 1) * 300])]
    log = world.home.log.open()
    try:
        first = log.add(entries)[0]
        assert log.publish().published
    finally:
        log.close()
    size = first + len(entries)
    state = tmp_path / "m"
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    # The runner reads in this process, one bundle at a time, committing after each: when it asks for bundle
    # 20 it has committed bundles 0-19, and it cannot read further until it is killed.
    stalled = 20
    served = StallingLog(world.home.log.paths.public, entries_path(stalled, TILE_WIDTH))
    try:
        proc = subprocess.Popen(
            [sys.executable, str(script), served.url, str(world.customer / "policy.toml"), str(state)],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        try:
            while not served.reached.wait(0.1):  # until it asks for the bundle, or ends without asking
                assert proc.poll() is None, "the monitor ended before it asked for the stalled bundle"
            killed_at = _position(state)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
    finally:
        served.stop()
    assert killed_at == stalled * TILE_WIDTH < size  # committed up to the bundle it was reading, no further
    report = run(world, tmp_path / "m")
    assert report.previous_size == killed_at and report.tree_size == size
    expected = {first + i * 301 for i in range(len(rotations))}
    assert min(expected) < killed_at < max(expected)  # alerts on both sides of the kill
    found = [a.index for a in report.alerts if a.kind == "rotation-unsigned"]
    assert sorted(found) == sorted(expected)  # every one, once
    db = sqlite3.connect(state / DATABASE)
    try:
        assert db.execute("SELECT count(*) FROM alerts WHERE kind = 'rotation-unsigned'").fetchone() == (40,)
    finally:
        db.close()
