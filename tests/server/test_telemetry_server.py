"""The telemetry API of ``overt serve`` over real HTTP: status codes and error bodies, the body limits (4 MiB
here, 65,535 bytes for /add on the same server), nothing written by a rejected or cut-off batch, routing
before the body is read, failed authentications limited, and ``overt serve --jurisdiction`` restricting what
a process serves."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from overt.errors import ConfigError
from overt.home import Home
from overt.residency.accesslog import ensure_access_log
from overt.residency.config import JurisdictionConfig, add_jurisdiction, root_of
from overt.residency.ratelimit import IngestLimits
from overt.residency.router import Router, StoreStampError
from overt.residency.tenants import MIGRATING, open_directory
from overt.residency.tokens import NOT_VALID
from overt.server.log import LOG_LIMITS, create_app, edge_limits
from overt.server.runner import BackgroundServer, EdgeLimits
from overt.server.telemetry import error_response
from tests.residency.world import World, access_entries, batch, make_world, rows_in_sqlite


@pytest.fixture
def world(conveyor: Home) -> World:
    return make_world(conveyor)


def serve(w: World, *, serving: list[str] | None = None, limits: EdgeLimits = LOG_LIMITS) -> BackgroundServer:
    return BackgroundServer(create_app(w.home, serving=serving), limits=edge_limits(w.home, limits, serving))


@pytest.fixture
def server(world: World) -> Iterator[BackgroundServer]:
    with serve(world) as srv:
        yield srv


def post(url: str, body: bytes, token: str | None, **headers: str) -> httpx.Response:
    head = {"Content-Type": "application/json", **headers}
    if token is not None:
        head["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/v1/telemetry", content=body, headers=head, timeout=60)


def ch_rows(w: World) -> int:
    return rows_in_sqlite(root_of(w.home, "CH"))


def test_a_batch_lands_in_the_tenants_home_and_the_answer_says_where(
    world: World, server: BackgroundServer
) -> None:
    r = post(server.url, batch("batch-0001", 5000), world.token("acme"))  # ~1 MB: over the log's 64 KiB
    assert r.status_code == 200, r.text
    assert r.json() == {
        "tenant": world.tenants["acme"].id,
        "jurisdiction": "CH",
        "batch_id": "batch-0001",
        "events": 5000,
        "duplicate": False,
        "sha256": r.json()["sha256"],
    }
    again = post(server.url, batch("batch-0001", 5000), world.token("acme"))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert post(server.url, batch("batch-0001", 2), world.token("samba")).json()["jurisdiction"] == "BR"
    assert ch_rows(world) == 5000 and rows_in_sqlite(root_of(world.home, "BR")) == 2


@pytest.mark.parametrize(
    ("body", "headers", "token", "status", "message"),
    [
        (b'{"batch_id": "x"}', {}, "acme", 400, "batch_id must be 8 to 64"),
        (b"\xff\xfe{}", {}, "acme", 400, "not valid JSON"),
        (b"[" * 200_000 + b"]" * 200_000, {}, "acme", 400, "nested too deep"),
        (b"null", {}, "acme", 400, "must be a JSON object, not null"),
        (batch("batch-0001", 5001), {}, "acme", 400, "1 to 5000 events"),
        (batch("batch-0001", day="9999-12-31"), {}, "acme", 400, "more than a day after"),
        (batch("batch-0001"), {}, None, 401, "Authorization: Bearer"),
        (batch("batch-0001"), {}, "ovt_0123456789abcdef_" + "A" * 43, 401, NOT_VALID),
        (batch("batch-0001"), {"Content-Type": "text/plain"}, "acme", 415, "application/json"),
        (batch("batch-0001"), {"Content-Type": "application/json; charset=latin-1"}, "acme", 415, "UTF-8"),
        (batch("batch-0001"), {"Content-Encoding": "gzip"}, "acme", 415, "Content-Encoding gzip"),
        (batch("batch-0001"), {"Content-Encoding": "identity"}, "acme", 200, ""),
        (b"{" + b" " * (4 * 1024 * 1024) + b"}", {}, "acme", 413, "4194304 bytes"),
    ],
)
def test_bad_requests_get_their_status_a_clear_error_and_write_nothing(
    world: World,
    server: BackgroundServer,
    body: bytes,
    headers: dict[str, str],
    token: str | None,
    status: int,
    message: str,
) -> None:
    r = post(server.url, body, world.tokens.get(token or "", token), **headers)
    if status == 200:  # identity is no encoding
        assert r.status_code == 200 and ch_rows(world) == 3, r.text
        return
    assert r.status_code == status and message in r.json()["error"], r.text
    assert set(r.json()) == {"error"}
    assert r.content == json.dumps(r.json(), separators=(",", ":"), ensure_ascii=False).encode()
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert ch_rows(world) == 0


def test_two_authorization_headers_are_400_and_wrong_tokens_are_answered_alike(
    world: World, server: BackgroundServer
) -> None:
    auth = f"Bearer {world.token('acme')}"
    two = httpx.post(
        f"{server.url}/v1/telemetry",
        content=batch("batch-0001"),
        headers=[("Content-Type", "application/json"), ("Authorization", auth), ("Authorization", auth)],
    )
    assert two.status_code == 400 and two.json() == {"error": "send one Authorization header, not 2"}
    directory = open_directory(world.home)
    try:
        revoked = directory.create_token(world.tenants["acme"].id)
        directory.revoke_token(revoked.info.token_id)
    finally:
        directory.close()
    answers = {
        post(server.url, batch("batch-0001"), token).content
        for token in (
            "ovt_0123456789abcdef_" + "A" * 43,  # unknown
            f"ovt_{world.token('acme').split('_')[1]}_" + "B" * 43,  # a live id, the wrong secret
            f"ovt_{revoked.info.token_id}_" + "C" * 43,  # a revoked id, the wrong secret
            revoked.token,  # a revoked token
        )
    }
    assert answers == {b'{"error":"the API token is not valid"}'}
    assert ch_rows(world) == 0


def test_failed_authentications_of_one_token_id_are_429_before_any_check(world: World) -> None:
    limits = IngestLimits(auth_failures_per_token=2)
    world.home.config.replace("ingest", limits).write(world.home.paths.config)
    world.home = Home(world.home.path)
    wrong = f"ovt_{world.token('acme').split('_')[1]}_" + "B" * 43
    with serve(world) as srv:
        assert post(srv.url, batch("batch-0001"), world.token("acme")).status_code == 200
        codes = [post(srv.url, batch("batch-0002"), wrong).status_code for _ in range(3)]
        limited = post(srv.url, batch("batch-0002"), wrong)
        assert post(srv.url, batch("batch-0003"), world.token("acme")).status_code == 200  # remembered
    assert codes == [401, 401, 429]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) == 30
    assert "too many API tokens that are not valid" in limited.json()["error"]
    assert ch_rows(world) == 6


def test_a_forwarded_for_header_does_not_change_the_address_that_is_limited(world: World) -> None:
    """The failures of one peer count against it whatever X-Forwarded-For or Forwarded it claims (no proxy
    is trusted, loopback included): a client cannot pose as many addresses."""
    limits = IngestLimits(auth_failures_per_client=3)
    world.home.config.replace("ingest", limits).write(world.home.paths.config)
    world.home = Home(world.home.path)
    with serve(world) as srv:
        codes = [
            post(
                srv.url,
                batch("batch-0002"),
                f"ovt_{i:016x}_" + "A" * 43,
                **{"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=198.51.100.{i}"},
            ).status_code
            for i in range(5)
        ]
    assert codes == [401, 401, 401, 429, 429]


def test_a_tenant_not_served_here_is_421_before_its_body_is_read(world: World) -> None:
    with serve(world, serving=["BR"]) as srv:
        r = post(srv.url, b"{", world.token("acme"))  # not even JSON: never parsed here
        assert r.status_code == 421 and "does not serve" in r.json()["error"], r.text
        chunked = httpx.post(
            f"{srv.url}/v1/telemetry",
            content=iter([b"{" * 1024] * 8),
            headers={"Authorization": f"Bearer {world.token('acme')}", "Content-Type": "application/json"},
        )
        assert chunked.status_code == 421
    entries = access_entries(world.home, "CH")
    assert [(e.reason, e.resource) for e in entries] == [("not-served", "telemetry:ingest")] * 2
    # The second refusal of the minute is counted, and logged when the server closes, as an entry of its own
    # (once it had the same bytes as the first one in the same second, and the log kept one copy of them).
    assert "refusals: 1 (this one" in entries[0].detail
    assert "refusals: 1, none logged one by one" in entries[1].detail and "closed" in entries[1].detail


def test_wrong_methods_are_405(server: BackgroundServer) -> None:
    got = httpx.get(f"{server.url}/v1/telemetry")
    assert got.status_code == 405 and got.headers["allow"] == "POST" and "POST" in got.json()["error"]
    posted = httpx.post(f"{server.url}/v1/aggregates")
    assert posted.status_code == 405 and posted.headers["allow"] == "GET"
    # The framework's own answers (a method a route does not take, an unknown path) in the same style.
    for method, path, status in [
        ("PUT", "/v1/telemetry", 405),
        ("DELETE", "/v1/aggregates", 405),
        ("POST", "/v1/nonexistent", 405),  # the static files take GET and HEAD only
        ("GET", "/v1/nonexistent", 404),
    ]:
        r = httpx.request(method, f"{server.url}{path}")
        assert r.status_code == status and set(r.json()) == {"error"}, (method, path, r.text)
        assert path in r.json()["error"], r.text


def test_a_chunked_body_over_the_limit_is_413(world: World, server: BackgroundServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b" " * (1024 * 1024)

    r = httpx.post(
        f"{server.url}/v1/telemetry",
        content=chunks(),
        headers={"Authorization": f"Bearer {world.token('acme')}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and "error" in r.json()
    assert ch_rows(world) == 0


def test_add_keeps_its_own_entry_limit_on_the_telemetry_server(server: BackgroundServer) -> None:
    assert httpx.post(f"{server.url}/add", content=b"x" * 65_536).status_code == 413
    ok = httpx.post(f"{server.url}/add", content=b"x" * 65_535, timeout=60)
    assert ok.status_code == 200 and ok.json()["index"] >= 0


def test_a_reused_batch_id_is_409_and_a_migrating_tenant_503(world: World, server: BackgroundServer) -> None:
    assert post(server.url, batch("batch-0001", 3), world.token("acme")).status_code == 200
    conflict = post(server.url, batch("batch-0001", 4), world.token("acme"))
    assert conflict.status_code == 409 and "already stored with other content" in conflict.json()["error"]
    directory = open_directory(world.home)
    try:
        directory.set_status(world.tenants["samba"].id, MIGRATING)
    finally:
        directory.close()
    busy = post(server.url, batch("batch-0002"), world.token("samba"))
    assert (
        busy.status_code == 503
        and int(busy.headers["retry-after"]) > 0
        and "migrated" in busy.json()["error"]
    )
    reading = httpx.get(
        f"{server.url}/v1/aggregates", headers={"Authorization": f"Bearer {world.token('samba')}"}
    )
    assert reading.status_code == 503 and int(reading.headers["retry-after"]) > 0
    assert "aggregates" in reading.json()["error"] and "batch" not in reading.json()["error"]
    assert rows_in_sqlite(root_of(world.home, "BR")) == 0


def test_a_tenant_over_its_rate_limit_is_429_with_retry_after(world: World) -> None:
    limits = IngestLimits(batches_per_second=0.01, batch_burst=2)
    world.home.config.replace("ingest", limits).write(world.home.paths.config)
    world.home = Home(world.home.path)
    with serve(world) as srv:
        codes = [post(srv.url, batch(f"batch-{i:04d}", 1), world.token("acme")).status_code for i in range(3)]
        limited = post(srv.url, batch("batch-9999", 1), world.token("acme"))
        assert (
            post(srv.url, batch("batch-0001", 1), world.token("samba")).status_code == 200
        )  # its own bucket
    assert codes == [200, 200, 429]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["error"]
    assert ch_rows(world) == 2


def test_a_tenant_not_served_here_is_421_and_logged_in_its_home(world: World) -> None:
    with serve(world, serving=["BR"]) as srv:
        r = post(srv.url, batch("batch-0001"), world.token("acme"))
        assert r.status_code == 421 and "does not serve" in r.json()["error"]
        assert post(srv.url, batch("batch-0001"), world.token("samba")).status_code == 200
    assert ch_rows(world) == 0
    assert [(e.reason, e.tenant) for e in access_entries(world.home, "CH")] == [
        ("not-served", world.tenants["acme"].id)
    ]


def test_a_store_stamped_for_another_jurisdiction_stops_the_server_or_is_503_naming_no_path(
    conveyor: Home, tmp_path: Path
) -> None:
    w = make_world(conveyor, configs={"CH": JurisdictionConfig()})
    copied = tmp_path / "br-root"
    shutil.copytree(root_of(w.home, "CH"), copied)  # CH's store, configured as BR's
    add_jurisdiction(w.home, "BR", JurisdictionConfig(root=str(copied)))
    ensure_access_log(w.home, "BR")
    refused = r"cannot serve BR: the telemetry store at .* belongs to jurisdiction"
    with pytest.raises(ConfigError, match=refused), serve(w):
        pass
    with serve(w, serving=["CH"]) as srv:  # a process serving CH alone starts
        assert post(srv.url, batch("batch-0001"), w.token("acme")).status_code == 200
    # Met at request time (a store that changed under a running server), it is the server's fault: 503.
    router = Router(w.home)
    try:
        with pytest.raises(StoreStampError) as refused:
            router.store_for(w.tenants["samba"])
    finally:
        router.close()
    answer = error_response(refused.value)
    error = json.loads(answer.body)["error"]
    assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
    assert "stamped for jurisdiction 'CH'" in error and "nothing was read or written" in error
    assert str(tmp_path) not in error and "store.db" not in error
    assert rows_in_sqlite(copied) == 0


def test_a_token_reads_only_its_own_tenants_aggregates(world: World, server: BackgroundServer) -> None:
    post(server.url, batch("batch-0001", 6, rules=1), world.token("acme"))
    post(server.url, batch("batch-0002", 9, rules=3), world.token("samba"))
    auth = {"Authorization": f"Bearer {world.token('samba')}"}
    r = httpx.get(
        f"{server.url}/v1/aggregates", params={"since": "2026-12-01", "until": "2026-12-01"}, headers=auth
    )
    assert r.status_code == 200 and r.json()["tenant"] == world.tenants["samba"].id
    assert sorted(a["rule_id"] for a in r.json()["aggregates"]) == ["rule-0", "rule-1", "rule-2"]
    # Query parameters cannot name a tenant: the token decides, and a parameter the API does not take is
    # refused, not ignored. Naming another jurisdiction is refused.
    other = httpx.get(
        f"{server.url}/v1/aggregates", params={"tenant": world.tenants["acme"].id}, headers=auth
    )
    assert other.status_code == 400 and "not 'tenant'" in other.json()["error"]
    twice = httpx.get(f"{server.url}/v1/aggregates?since=2026-12-01&since=2026-12-02", headers=auth)
    assert twice.status_code == 400 and "since is given 2 times" in twice.json()["error"]
    cross = httpx.get(f"{server.url}/v1/aggregates", params={"jurisdiction": "CH"}, headers=auth)
    assert cross.status_code == 403 and "homed in BR" in cross.json()["error"]
    assert (
        httpx.get(f"{server.url}/v1/aggregates", params={"since": "12/01/2026"}, headers=auth).status_code
        == 400
    )
    assert httpx.get(f"{server.url}/v1/aggregates").status_code == 401
    assert [e.reason for e in access_entries(world.home, "BR")] == ["cross-jurisdiction"]


def _send_short(url: str, token: str, *, declared: int, sent: bytes, close: bool) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"POST /v1/telemetry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + sent)
        if close:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(30)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def test_a_body_shorter_than_its_content_length_writes_nothing(world: World) -> None:
    raw = batch("batch-0001", 100)
    with serve(world, limits=EdgeLimits(max_body=LOG_LIMITS.max_body, body_timeout=1.0)) as srv:
        waited = _send_short(srv.url, world.token("acme"), declared=len(raw) + 500, sent=raw, close=False)
        assert b" 408 " in waited.split(b"\r\n", 1)[0]
        _send_short(srv.url, world.token("acme"), declared=len(raw) + 500, sent=raw, close=True)
        # The server is still healthy, and neither attempt stored anything.
        assert post(srv.url, batch("batch-0002", 1), world.token("acme")).status_code == 200
    assert ch_rows(world) == 1


def test_add_answers_while_telemetry_batches_are_stored(world: World, server: BackgroundServer) -> None:
    done: list[int] = []

    def flood() -> None:
        for i in range(6):
            done.append(post(server.url, batch(f"flood-{i:04d}", 5000), world.token("acme")).status_code)

    sender = threading.Thread(target=flood)
    sender.start()
    added = httpx.post(f"{server.url}/add", content=b"an entry while batches are stored", timeout=60)
    sender.join()
    assert added.status_code == 200 and done == [200] * 6


def test_overt_serve_jurisdiction_restricts_what_the_process_serves(world: World) -> None:
    env = {**os.environ, "OVERT_HOME": str(world.home.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "overt", "serve", "--port", "0", "--jurisdiction", "BR", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["telemetry"] == ["BR"]
        url = started["url"]
        assert post(url, batch("batch-0001"), world.token("acme")).status_code == 421
        assert post(url, batch("batch-0001"), world.token("samba")).json()["jurisdiction"] == "BR"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    bad = subprocess.run(
        [sys.executable, "-m", "overt", "serve", "--port", "0", "--jurisdiction", "IN"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and b"cannot serve IN" in bad.stderr
    assert Path(world.home.path / "log.server").exists() is False


def test_the_edge_sets_tcp_nodelay_on_each_connection(server: BackgroundServer) -> None:
    """asyncio leaves Nagle on for sockets of socket.create_server (proto 0): a response's body would then wait
    for the client's delayed ACK behind its head."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /log/checkpoint HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(65536)
        (protocol,) = server.server.server_state.connections
        accepted = protocol.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
