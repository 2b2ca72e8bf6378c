"""The HTTP edge of every overt server: uvicorn with limits, and clean answers for request-level faults.

Owns how an ASGI app (the log's, the witness's, any other) is put on a socket: :class:`EdgeConfig` builds the
uvicorn configuration, :class:`EdgeServer` runs it on a socket bound by :func:`listen`, and
:class:`BackgroundServer` does the same on a thread for the demo and tests. It owns no route and no domain
logic. What it adds to uvicorn (0.54, h11 protocol), and why uvicorn's own options do not suffice:

- **Framing** (:class:`EdgeGuard`, a pure-ASGI middleware): a request with both Content-Length and
  Transfer-Encoding is answered 400 and the connection closed (RFC 9112 section 6.1; h11 would read it as
  chunked and go on to answer a pipelined request). A declared body over ``max_body`` is answered 413 before
  the app runs, so ``Expect: 100-continue`` gets no 100 (uvicorn sends the 100 at the app's first read) and
  then the connection is closed, since the body it announced never comes.
  A body that does not arrive within ``body_timeout`` is answered 408; a chunked body that grows past
  ``max_body`` is answered 413. A client that leaves mid-body is one log line, not a traceback.
- **Descriptors** (:class:`_EdgeProtocol`, uvicorn's h11 protocol with two additions): a connection
  beyond ``max_connections`` is closed as soon as it is accepted (uvicorn's ``limit_concurrency`` answers
  503 but accepts and keeps every connection, so it cannot bound descriptors), and a connection that sends
  no complete request head within ``header_timeout`` of connecting or of its previous response is closed
  (h11_impl arms no timer before the first request, nor while a head trickles in). asyncio accepts up to
  ``backlog`` connections a tick before any is counted, so the backlog is capped at the same number. If the
  process still runs out of descriptors (a burst, or a limit set above them), asyncio's accept error is one
  line a minute instead of a traceback for each accept attempt (thousands a second); accepting resumes by
  itself once connections end.
- **Latency**: TCP_NODELAY on each accepted connection (:func:`_no_delay`): asyncio sets it only on
  sockets made with ``proto`` IPPROTO_TCP, which :func:`socket.create_server` does not, and without it a
  response's body waits behind its head for the client's delayed ACK (40 ms on Linux).
- **Startup**: an :class:`overt.errors.Error` raised by the app's lifespan (a log that refuses to open) is
  raised by :meth:`EdgeServer.run` for the caller to report, instead of uvicorn's traceback and exit 3.

uvicorn's own options are used where they do the job: ``timeout_keep_alive``, ``h11_max_incomplete_event_size``
(request head size), ``timeout_graceful_shutdown`` and ``backlog``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import h11
import uvicorn
import uvicorn.config
from uvicorn.protocols.http.h11_impl import H11Protocol

from overt.errors import Error, TransportError

log = logging.getLogger(__name__)

# The ASGI callables, spelled as Starlette spells them.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Descriptors kept for the app itself (database, tiles being written, witness connections, logging) and the
# cost of one connection: its socket plus, at most, the file a static response is streaming.
_RESERVED_FDS = 32
_FDS_PER_CONNECTION = 2
_MAX_CONNECTIONS_CAP = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeLimits:
    """Limits applied to every request and connection of one server.

    Attributes:
        max_body: request body limit in bytes (the default covers a tlog-tiles entry and a tlog-witness
            request); the app may enforce a smaller one itself.
        body_timeout: seconds for the whole body to arrive once the app starts reading it.
        header_timeout: seconds for a complete request head after connecting or after the previous response.
        keep_alive: seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``).
        max_header_bytes: largest request head (uvicorn's ``h11_max_incomplete_event_size``).
        max_connections: open connections at most; ``None`` derives it from the open-file limit.
        graceful_shutdown: seconds requests in flight get at shutdown before they are cancelled.
    """

    max_body: int = 1 << 16
    body_timeout: float = 15.0
    header_timeout: float = 10.0
    keep_alive: int = 5
    max_header_bytes: int = 16 * 1024
    max_connections: int | None = None
    graceful_shutdown: int = 10

    def __post_init__(self) -> None:
        if self.max_body < 0 or self.body_timeout <= 0 or self.header_timeout <= 0:
            raise ValueError("edge limits must be positive")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


def default_max_connections() -> int:
    """Connections that fit in this process's open-file limit, next to the app's own descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS_CAP
    return max(8, min(_MAX_CONNECTIONS_CAP, (soft - _RESERVED_FDS) // _FDS_PER_CONNECTION))


class _Throttle:
    """At most one log line per key and minute, however often the condition repeats."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return
            self._last[key] = now
        log.warning(message, *args)


_throttle = _Throttle()


# -- request framing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: int
    message: str
    close: bool


def _error_answer(message: str, *, close: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of an error answer the edge writes itself: ``{"error":"..."}``, as every other."""
    body = json.dumps({"error": message}, separators=(",", ":"), ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # uvicorn closes the connection after a response that says so
        headers.append((b"connection", b"close"))
    return headers, body


async def _answer(send: Send, refusal: _Refusal) -> None:
    headers, body = _error_answer(refusal.message, close=refusal.close)
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _framing_refusal(headers: list[tuple[bytes, bytes]], max_body: int) -> _Refusal | None:
    """The answer to a request whose head alone is unacceptable, or None."""
    names = {name.lower() for name, _ in headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        # RFC 9112 section 6.1: such a message may be an attempt at request smuggling; the server MUST close.
        return _Refusal(400, "a request must not carry both Content-Length and Transfer-Encoding", True)
    try:
        declared = max((int(v) for n, v in headers if n.lower() == b"content-length"), default=0)
    except ValueError:
        return _Refusal(400, "Content-Length is not a number", True)
    if declared > max_body:
        # A client waiting for 100 Continue has not sent the body: the connection cannot be reused. A client
        # already sending it keeps the connection: uvicorn discards the rest, and closing now could reset
        # the connection before the client reads this answer.
        expects = any(n.lower() == b"expect" and v.lower() == b"100-continue" for n, v in headers)
        return _Refusal(413, f"request body exceeds {max_body} bytes", expects)
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"


class _Exchange:
    """One request as the edge sees it: the body's deadline and size, and whether the edge took over.

    Until the body is complete or the app starts its answer, the edge enforces ``body_timeout`` and
    ``max_body``. Once the edge has answered for the app (408, 413) or the client has left, the app is told
    the client disconnected, its own sends are dropped and the exception it raises in reaction is not a
    server error.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, limits: EdgeLimits) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.limits = limits
        self.cut_off = False
        self._started = False
        self._body_done = False
        self._received = 0
        self._deadline: float | None = None

    async def receive(self) -> Message:
        if self.cut_off:
            return {"type": "http.disconnect"}
        if (
            self._body_done or self._started
        ):  # once the app answers, the rest of the body is uvicorn's to drop
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self.limits.body_timeout
        try:
            message = await asyncio.wait_for(self._receive(), max(0.01, self._deadline - loop.time()))
        except TimeoutError:
            seconds = f"{self.limits.body_timeout:g}"
            return await self._cut(_Refusal(408, f"the request body did not arrive within {seconds} s", True))
        if message["type"] == "http.disconnect":
            log.warning(
                "%s closed the connection before sending the whole body of %s %s",
                _client(self.scope),
                self.scope.get("method", "?"),
                self.scope.get("path", "?"),
            )
            self.cut_off = True
            return message
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self.limits.max_body:
                return await self._cut(
                    _Refusal(413, f"request body exceeds {self.limits.max_body} bytes", False)
                )
            self._body_done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self.cut_off:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)

    async def _cut(self, refusal: _Refusal) -> Message:
        self.cut_off = True
        if not self._started:
            await _answer(self._send, refusal)
        return {"type": "http.disconnect"}


class _DropStartupFailed(logging.Filter):
    """uvicorn's "Application startup failed" line: :class:`EdgeServer` raises the reason instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Application startup failed. Exiting."


class EdgeGuard:
    """Pure-ASGI middleware around any app: framing faults get clean answers, startup errors are kept.

    ``startup_error`` holds the :class:`overt.errors.Error` that made the app's lifespan startup fail.
    """

    def __init__(self, app: ASGIApp, limits: EdgeLimits) -> None:
        self.app = app
        self.limits = limits
        self.startup_error: Error | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _framing_refusal(list(scope["headers"]), self.limits.max_body)
        if refusal is not None:
            await _answer(send, refusal)
            return
        exchange = _Exchange(scope, receive, send, self.limits)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if not exchange.cut_off:
                raise
            log.debug("%s %s ended after its request was cut off", scope["method"], scope["path"])

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = failed = False

        async def report(message: Message) -> None:
            nonlocal started, failed
            if message["type"] == "lifespan.startup.complete":
                started = True
            elif message["type"] == "lifespan.startup.failed":
                failed = True  # without Starlette's traceback text: the reason is raised or logged below
                message = {"type": "lifespan.startup.failed", "message": ""}
            await send(message)

        try:
            await self.app(scope, receive, report)
        except Exception as e:
            if started:
                raise
            if not isinstance(e, Error):
                log.error("application startup failed", exc_info=e)
                raise
            self.startup_error = e
            if not failed:
                await send({"type": "lifespan.startup.failed", "message": ""})


# -- connections -------------------------------------------------------------------------------------


class EdgeConfig(uvicorn.Config):
    """uvicorn's configuration for ``app`` behind :class:`EdgeGuard`, with the :class:`EdgeLimits` applied."""

    def __init__(self, app: ASGIApp, limits: EdgeLimits | None = None) -> None:
        self.limits = limits or EdgeLimits()
        self.max_connections = self.limits.max_connections or default_max_connections()
        self.guard = EdgeGuard(app, self.limits)
        super().__init__(
            self.guard,
            http=_EdgeProtocol,
            lifespan="on",
            log_config=_log_config(),
            log_level="warning",
            timeout_keep_alive=self.limits.keep_alive,
            h11_max_incomplete_event_size=self.limits.max_header_bytes,
            timeout_graceful_shutdown=self.limits.graceful_shutdown,
            # The peer's address is the client's: no proxy is trusted, loopback included (uvicorn would take
            # X-Forwarded-For from 127.0.0.1, and a local client could pose as any address to the limits).
            proxy_headers=False,
            # asyncio accepts up to `backlog` connections a tick before any is counted against the limit.
            backlog=min(2048, self.max_connections),
        )


def _log_config() -> dict[str, Any]:
    cfg = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    cfg["filters"] = {"startup_reported": {"()": _DropStartupFailed}}
    cfg["loggers"]["uvicorn.error"]["filters"] = ["startup_reported"]
    cfg["loggers"]["overt"] = {"handlers": ["default"], "level": "WARNING", "propagate": False}
    return cfg


class _EdgeProtocol(H11Protocol):
    """uvicorn's h11 protocol with a connection limit and a deadline for each request head."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if not isinstance(config, EdgeConfig):
            raise TypeError("_EdgeProtocol needs an EdgeConfig")
        self._max_connections = config.max_connections
        self._header_timeout = config.limits.header_timeout
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None  # the request cycle whose successor's head is awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._max_connections:
            self._refused = True
            self.transport = transport
            _throttle.warning(
                "connections",
                "connection limit reached (%d open): closing new connections until some end",
                len(self.connections),
            )
            transport.close()
            return
        _no_delay(transport)
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self.cycle is not self._waiting_after:  # a new request's head is complete
            self._stop_waiting()

    def on_response_complete(self) -> None:
        self._await_head()
        super().on_response_complete()  # may start a pipelined request at once
        if self.cycle is not self._waiting_after or self.transport.is_closing():
            self._stop_waiting()

    def send_400_response(self, msg: str) -> None:
        """A request that is not valid HTTP/1.1 (a negative Content-Length, a bad request line): answered
        400 in the JSON error style of every other answer, and the connection closed (uvicorn's own answer
        is plain text)."""
        head, body = _error_answer("the request is not valid HTTP/1.1; nothing was done", close=True)
        self.transport.write(
            self.conn.send(h11.Response(status_code=400, headers=head, reason=b"Bad Request"))
        )
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()

    def _await_head(self) -> None:
        self._stop_waiting()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self._header_timeout, self._head_overdue)

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.cycle is self._waiting_after and not self.transport.is_closing():
            self.transport.close()


def _no_delay(transport: asyncio.Transport) -> None:
    """TCP_NODELAY, which asyncio sets only on sockets whose ``proto`` is IPPROTO_TCP, and
    :func:`socket.create_server` (:func:`listen`) makes them with ``proto`` 0: without it, a response's
    body waits behind its head for the client's delayed ACK (40 ms on Linux)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the connection is already gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
        # asyncio logs this with a traceback for each of up to `backlog` accepts a tick, then retries.
        _throttle.warning("accept", "cannot accept connections: %s; retrying every second", exc.strerror)
        return
    loop.default_exception_handler(context)


def listen(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as e:
        raise TransportError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


def base_url(sock: socket.socket) -> str:
    """The URL a local client reaches ``sock`` at (a wildcard address becomes loopback)."""
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        return f"http://[{'::1' if host == '::' else host}]:{port}"
    return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"


class EdgeServer(uvicorn.Server):
    """uvicorn's server for an :class:`EdgeConfig` on an already listening socket.

    :meth:`run` serves until SIGINT/SIGTERM (on the main thread) or ``should_exit``; it raises the
    :class:`overt.errors.Error` that stopped the app's startup. ``on_started`` runs once the app is up.
    """

    def __init__(
        self, config: EdgeConfig, sock: socket.socket, *, on_started: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self.edge = config
        self.sock = sock
        self.on_started = on_started

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        with self.sock:
            super().run(sockets=sockets or [self.sock])

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_exception)
        try:
            await super().startup(sockets=sockets)
        except SystemExit:  # uvicorn exits with status 3 when the lifespan startup failed
            if self.edge.guard.startup_error is not None:
                raise self.edge.guard.startup_error from None
            raise
        if self.started and self.on_started is not None:
            self.on_started()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class BackgroundServer:
    """``with BackgroundServer(app) as srv: srv.url``: serve on a thread until the block ends."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        limits: EdgeLimits | None = None,
    ) -> None:
        self.host = host
        sock = listen(host, port or 0)
        self.port: int = sock.getsockname()[1]
        self.url = base_url(sock)
        self.server = EdgeServer(EdgeConfig(app, limits), sock)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as e:  # reported by __enter__ to the test or demo that started the server
            self.error = e

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                self.thread.join(timeout=20)
                if isinstance(self.error, Error):
                    raise self.error
                raise TransportError(f"server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
