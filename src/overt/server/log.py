"""The log's HTTP write API and static file server.

``POST /add`` takes one entry (the raw body, at most 65,535 bytes, the tlog-tiles entry limit) and answers,
once the entry's batch is integrated and its checkpoint published, ``{"index", "tree_size", "proof"}`` where
``proof`` is a c2sp.org/tlog-proof. Batching (size and interval) comes from the home's config. Every request
may simply be resent: deduplication returns the same index. The two 503 answers say why in ``"reason"``:

- ``"unpublished"``: the witness quorum has not cosigned yet (``"witness_failures"`` names each witness's
  failure); the integrator retries publishing every interval, the request waited ``wait_timeout`` seconds.
- ``"storage"``: the log could not write (``"error"`` is the fault, e.g. a read-only ``public/log``); the
  integrator retries with backoff and recovers by itself once the fault clears.

Any other overt error a request meets answers its family's status (:func:`overt.server.errors.http_status`)
and ``{"error"}``, not a bare 500.

Everything under ``public/`` is served as static files (``/log/checkpoint``, ``/log/tile/...``).

While the server runs it holds the home's writer lock, and ``<home>/log.server`` holds its base URL (written
once it listens, removed at shutdown) so that conveyor commands on the home send entries through it.
HTTP framing, body and connection limits are the edge's (:mod:`overt.server.runner`), not this module's.
With jurisdictions configured, the telemetry API (:mod:`overt.server.telemetry`) is mounted beside ``/add``
and the edge's body limit is raised to a telemetry batch's (:func:`edge_limits`).

:func:`create_telemetry_app` (``overt serve --telemetry-only``) serves the telemetry API alone: no ``/add``,
no static files, and no writer lock on the main log, so one process per region can run beside the one that
serves the log (the access-log entries they append take each access log's lock for the append only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import replace
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from overt.atomic import atomic_write
from overt.errors import Error, StorageError, UsageError
from overt.home import Home
from overt.server.errors import STATUS, http_status
from overt.server.runner import EdgeConfig, EdgeLimits, EdgeServer, base_url, listen
from overt.tlog.batcher import Integrator
from overt.tlog.tiles import MAX_ENTRY_SIZE

if TYPE_CHECKING:
    from overt.server.telemetry import TelemetryAPI

_log = logging.getLogger(__name__)


def _storage_fault(message: str, integrator: Integrator) -> JSONResponse:
    """503 ``reason: storage``: the log cannot write; resending the entry later is safe (deduplication)."""
    retry = max(1, round(integrator.backoff))
    return JSONResponse(
        {"error": f"{message}; resend it later", "reason": "storage"},
        status_code=STATUS[StorageError],
        headers={"Retry-After": str(retry)},
    )


def _announce(home: Home, url: str) -> None:
    """Name this server in ``home.log.paths.server`` (``<home>/log.server``) for the conveyor commands."""
    try:
        atomic_write(home.log.paths.server, f"{url}\n".encode())
    except OSError as e:
        raise StorageError(f"cannot write {home.log.paths.server}: {e.strerror or e}") from e


def create_app(
    home: Home,
    *,
    wait_timeout: float = 30.0,
    url: str | None = None,
    serving: Collection[str] | None = None,
) -> FastAPI:
    """The log's app; with ``url`` (where it listens), ``<home>/log.server`` names it while the log is open.

    With jurisdictions configured (or ``serving`` given), the telemetry API is mounted too
    (:mod:`overt.server.telemetry`), serving the jurisdictions in ``serving`` (default: all configured)."""
    cfg = home.log.config
    state: dict[str, Integrator] = {}
    telemetry = telemetry_api(home, serving)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if telemetry is not None:
            telemetry.open()
        log = home.log.open()  # holds the home's writer lock until log.close()
        try:
            integrator = Integrator(log, cfg.batch_size, cfg.batch_interval)
            state["integrator"] = integrator
            task = asyncio.create_task(integrator.run())
            try:
                if url is not None:
                    _announce(home, url)
                yield
            finally:
                if url is not None:
                    home.log.paths.server.unlink(missing_ok=True)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            log.close()
            if telemetry is not None:
                telemetry.close()

    app = FastAPI(title="overt log", lifespan=lifespan)
    json_errors(app)
    if telemetry is not None:
        app.include_router(telemetry.router())

    @app.post("/add", summary="Append one entry; answers its index and a tlog-proof once published")
    async def add(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_ENTRY_SIZE:
                return JSONResponse({"error": f"entry exceeds {MAX_ENTRY_SIZE} bytes"}, status_code=413)
        if not body:
            return JSONResponse({"error": "empty entry"}, status_code=400)
        integrator = state["integrator"]
        try:
            index, size, proof = await asyncio.wait_for(
                asyncio.shield(integrator.submit(bytes(body))), timeout=wait_timeout
            )
        except TimeoutError:
            if integrator.fault is not None:
                return _storage_fault(f"{integrator.fault}; the entry is not logged yet", integrator)
            entry = bytes(body)
            sequenced = next((i for i, p in integrator.waiting if p.entry == entry), None)
            return JSONResponse(
                {
                    "error": "entry appended but the checkpoint is not yet cosigned by the witness quorum; "
                    "resend the same entry later to get its proof",
                    "reason": "unpublished",
                    "index": sequenced,
                    "tree_size": integrator.log.tree_size,
                    "witness_failures": integrator.last_failures,
                },
                status_code=503,
            )
        except StorageError as e:
            return _storage_fault(f"{e}; the entry is not logged yet", integrator)
        return JSONResponse({"index": index, "tree_size": size, "proof": proof})

    app.add_middleware(StaticCacheHeaders)
    app.mount("/", StaticFiles(directory=home.paths.public), name="public")
    return app


_CHECKPOINT_HEADERS = {"Cache-Control": "no-cache, max-age=0", "Content-Type": "text/plain; charset=utf-8"}
_TILE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "Content-Type": "application/octet-stream",
}


class StaticCacheHeaders:
    """The cache headers of the log's static files: a checkpoint is never cached, a full tile forever
    (immutable). A plain ASGI middleware that only looks at the path, so every other request (a telemetry
    batch streaming its body) passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.endswith("/checkpoint"):
            fields, only_ok = _CHECKPOINT_HEADERS, False
        elif "/tile/" in path:
            fields, only_ok = _TILE_HEADERS, True
        else:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and (message["status"] == 200 or not only_ok):
                headers = MutableHeaders(scope=message)
                for name, value in fields.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_telemetry_app(home: Home, *, serving: Collection[str] | None = None) -> FastAPI:
    """The telemetry API alone, for the jurisdictions in ``serving`` (default: all configured).

    Raises:
        UsageError: no jurisdiction is configured, so there is no telemetry to serve.
    """
    telemetry = telemetry_api(home, serving)
    if telemetry is None:
        raise UsageError(
            "no jurisdiction has a store, so there is no telemetry to serve: 'overt residency store add J' "
            "sets one up"
        )
    api = telemetry

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        api.open()
        try:
            yield
        finally:
            api.close()

    app = FastAPI(title="overt telemetry", lifespan=lifespan)
    json_errors(app)
    app.include_router(api.router())
    return app


def json_errors(app: FastAPI) -> None:
    """Every error answer of ``app`` in one style, ``{"error":"..."}``: an overt error that escapes a route
    (its family's status and its message, not a bare 500) and the framework's own (an unknown path, a
    method a path does not take), whose default body would be ``{"detail":...}``."""

    @app.exception_handler(Error)
    async def overt_error(request: Request, e: Error) -> Response:
        return JSONResponse({"error": str(e)}, status_code=http_status(e))

    @app.exception_handler(StarletteHTTPException)
    async def framework_error(request: Request, e: StarletteHTTPException) -> Response:
        allow = (e.headers or {}).get("Allow")
        if e.status_code == 405 and allow:
            message = f"{request.method} is not allowed on {request.url.path}: it takes {allow}"
        elif e.status_code == 404:
            message = f"nothing is at {request.url.path}"
        else:
            message = str(e.detail)
        return JSONResponse({"error": message}, status_code=e.status_code, headers=e.headers)


LOG_LIMITS = EdgeLimits(max_body=MAX_ENTRY_SIZE)


def telemetry_api(home: Home, serving: Collection[str] | None) -> TelemetryAPI | None:
    """The telemetry API for ``home`` if it has jurisdictions configured or ``serving`` names some."""
    from overt.residency.config import jurisdiction_configs

    if serving is None and not jurisdiction_configs(home):
        return None
    from overt.server.telemetry import TelemetryAPI

    return TelemetryAPI(home, serving=serving)


def edge_limits(home: Home, limits: EdgeLimits, serving: Collection[str] | None = None) -> EdgeLimits:
    """``limits`` with the body limit raised to a telemetry batch's when the telemetry API is mounted
    (``POST /add`` keeps its own 65,535-byte check)."""
    from overt.residency.config import jurisdiction_configs

    if serving is None and not jurisdiction_configs(home):
        return limits
    from overt.server.telemetry import TELEMETRY_MAX_BODY

    return replace(limits, max_body=max(limits.max_body, TELEMETRY_MAX_BODY))


def serve_home(
    home: Home,
    *,
    host: str,
    port: int,
    limits: EdgeLimits = LOG_LIMITS,
    on_started: Callable[[str], None] | None = None,
    serving: Collection[str] | None = None,
    telemetry_only: bool = False,
) -> None:
    """Serve ``home``'s log on ``host:port`` until SIGINT or SIGTERM; ``on_started(url)`` once it is up.

    With jurisdictions configured, the telemetry API too, for the jurisdictions in ``serving`` (default:
    every configured one). With ``telemetry_only``, the telemetry API alone (:func:`create_telemetry_app`).

    Raises:
        TransportError: the address cannot be listened on.
        Error: the log refused to open (its lock is held, its store or tiles are broken, its policy is bad).
    """
    with listen(host, port) as sock:
        url = base_url(sock)
        app = (
            create_telemetry_app(home, serving=serving)
            if telemetry_only
            else create_app(home, url=url, serving=serving)
        )
        started = None if on_started is None else (lambda: on_started(url))
        EdgeServer(EdgeConfig(app, edge_limits(home, limits, serving)), sock, on_started=started).run()
