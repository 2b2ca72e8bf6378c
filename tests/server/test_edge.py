"""The HTTP edge (overt.server.runner) against a real uvicorn on 127.0.0.1, spoken to over raw sockets.

Framing faults get clean answers; silent connections are closed; running out of descriptors is one log line
and serving resumes; ``overt serve`` names its URL in ``<home>/log.server`` and reports a log that refuses to
open as one ``error:`` line with status 2.
"""

from __future__ import annotations

import json
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from overt.errors import ConfigError
from overt.home import Home, LogConfig
from overt.server.log import LOG_LIMITS, create_app
from overt.server.runner import BackgroundServer, EdgeLimits
from overt.tlog.checkpoint import SignedCheckpoint
from overt.writerlock import WriterLock


def make_home(tmp_path: Path) -> Home:
    return Home.init(
        tmp_path / "home", config=LogConfig(origin="test.overt.example/log", batch_interval=0.05)
    )


def exchange(url: str, request: bytes, *, timeout: float = 30.0) -> tuple[bytes, bool]:
    """Send raw bytes; read until the server closes (True) or ``timeout`` passes (False)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            pass
        return data, True


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


FRAMING = {
    # RFC 9112 section 6.1: both headers -> 400 and close; the pipelined GET must not be answered.
    "content-length-and-transfer-encoding": (
        b"POST /add HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /log/vkey HTTP/1.1\r\nHost: t\r\n\r\n",
        400,
    ),
    "body-declared-never-sent": (b"POST /add HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", 408),
    # Not HTTP/1.1 at all, as h11 finds it: the JSON error style too (uvicorn's own answer is plain text).
    "negative-content-length": (b"POST /add HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
    "not-a-request-line": (b"HELLO THERE\r\n\r\n", 400),
    "expect-100-continue-over-size": (
        b"POST /add HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
        413,
    ),
}


@pytest.mark.parametrize("case", list(FRAMING))
def test_http_framing_cases(tmp_path: Path, case: str) -> None:
    request, status = FRAMING[case]
    home = make_home(tmp_path)
    limits = EdgeLimits(max_body=LOG_LIMITS.max_body, body_timeout=0.5)
    with BackgroundServer(create_app(home), limits=limits) as srv:
        data, closed = exchange(srv.url, request)
        assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:200]
        assert data.count(b"HTTP/1.1 ") == 1, data  # no 100 Continue, no answer to a pipelined request
        assert closed, "the server must close the connection"
        assert "error" in json.loads(data.partition(b"\r\n\r\n")[2])
        cp = SignedCheckpoint.from_bytes(httpx.get(f"{srv.url}/log/checkpoint").content)
        assert cp.checkpoint.tree_size == 0  # nothing was logged


def test_client_leaving_mid_body_is_one_log_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    home = make_home(tmp_path)
    with BackgroundServer(create_app(home)) as srv:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /add HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        r = httpx.post(f"{srv.url}/add", content=b"still serving", timeout=30)
        assert r.status_code == 200
    # Leaving the block waited for the server's requests to finish, so everything is logged by now.
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "before sending the whole body of POST /add" in line]
    assert len(lines) == 1, err


@pytest.mark.parametrize("sent", [b"", b"POST /add HTTP/1.1\r\nHost: t\r\n"], ids=["nothing", "half-a-head"])
def test_silent_connections_are_closed(tmp_path: Path, sent: bytes) -> None:
    home = make_home(tmp_path)
    with BackgroundServer(create_app(home), limits=EdgeLimits(header_timeout=0.5)) as srv:
        data, closed = exchange(srv.url, sent)
        assert closed and data == b""


def test_a_log_that_refuses_to_open_is_raised_by_the_server(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    home.log.paths.policy.write_text("not a policy\n")
    with pytest.raises(ConfigError, match="log-policy"), BackgroundServer(create_app(home)):
        pass


# -- overt serve in its own process ------------------------------------------------------------------


@contextmanager
def overt_serve(home: Home, *args: str, nofile: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """``overt serve --port 0`` on ``home``; stderr goes to ``<home>/../serve.err``."""

    def limit() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    err = (home.path.parent / "serve.err").open("w")
    cmd = [sys.executable, "-m", "overt", "serve", "--home", str(home.path), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, preexec_fn=limit)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        err.close()


def stderr_of(home: Home) -> str:
    return (home.path.parent / "serve.err").read_text()


def test_serve_names_its_url_in_log_server_while_it_runs(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with overt_serve(home) as proc:
        wait_for(home.log.paths.server.exists, "log.server")
        text = home.log.paths.server.read_text()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", text), text
        r = httpx.post(f"{text.strip()}/add", content=b"through the server", timeout=30)
        assert r.status_code == 200, r.text
        with pytest.raises(ConfigError, match="another process"):
            WriterLock(home.path / "log.lock", wait=0)  # the server holds the home's writer lock
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert not home.log.paths.server.exists()
    assert "Traceback" not in stderr_of(home)


def _remove_tiles(home: Home) -> None:
    home.log.append(b"an entry")
    for tile in (home.log.paths.public / "tile" / "0").rglob("*"):
        if tile.is_file():
            tile.unlink()


def _break_policy(home: Home) -> None:
    home.log.paths.policy.write_text("not a policy\n")


@pytest.mark.parametrize("fault", [_remove_tiles, _break_policy], ids=["tiles-missing", "policy-unreadable"])
def test_serve_reports_a_log_that_refuses_to_open(tmp_path: Path, fault: Callable[[Home], None]) -> None:
    home = make_home(tmp_path)
    fault(home)
    with overt_serve(home) as proc:
        assert proc.wait(timeout=60) == 2
    err = stderr_of(home)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert not home.log.paths.server.exists()


@pytest.mark.parametrize(
    "args", [(), ("--max-connections", "1000")], ids=["default-limit", "limit-above-the-descriptors"]
)
def test_out_of_descriptors_is_one_line_and_serving_resumes(tmp_path: Path, args: tuple[str, ...]) -> None:
    home = make_home(tmp_path)
    with overt_serve(home, *args, nofile=64):
        wait_for(home.log.paths.server.exists, "log.server")
        url = home.log.paths.server.read_text().strip()
        host, port = url.removeprefix("http://").rsplit(":", 1)
        flood = [socket.create_connection((host, int(port))) for _ in range(80)]
        try:
            wait_for(
                lambda: "connection limit reached" in stderr_of(home) or "cannot accept" in stderr_of(home),
                "the server to notice it ran out of connections",
            )
        finally:
            for s in flood:
                s.close()
        r = httpx.post(f"{url}/add", content=b"after the flood", timeout=60)
        assert r.status_code == 200, r.text
    err = stderr_of(home)
    assert "Traceback" not in err, err[:3000]
    assert err.count("cannot accept") <= 1 and err.count("connection limit reached") <= 1, err
