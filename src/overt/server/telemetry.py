"""The telemetry API of ``overt serve``: ``POST /v1/telemetry`` and ``GET /v1/aggregates``.

Mounted into the log's app (:func:`overt.server.log.create_app`) when the home has jurisdictions configured
(``[jurisdictions.J]``); the edge's body limit is then raised to :data:`TELEMETRY_MAX_BODY` for the whole
server, while ``POST /add`` keeps its own 65,535-byte check.

- ``POST /v1/telemetry`` with ``Authorization: Bearer <API token>`` and a JSON batch
  (:mod:`overt.residency.telemetry`, at most 4 MiB) answers 200 and where the batch landed:
  ``{"tenant", "jurisdiction", "batch_id", "events", "duplicate", "sha256"}``.
- ``GET /v1/aggregates?since=YYYY-MM-DD&until=YYYY-MM-DD`` answers the token's tenant's detections per rule
  per day, computed in its home jurisdiction. ``jurisdiction=J`` may name where the caller expects them; any
  other jurisdiction than the tenant's home is a cross-jurisdiction read, refused (403) and logged.

Errors, every body ``{"error": "<what went wrong and what to do>"}``:

====  ======================================================================================
400   the body is not a valid batch (the message names the first bad field), or a bad query
401   no token, or a token that authenticates no tenant (with ``WWW-Authenticate: Bearer``)
403   a cross-jurisdiction read, or a store stamped for another jurisdiction than configured
409   the batch_id was used with another body
413   the body is larger than 4 MiB
415   the body is not declared ``application/json``
421   this server does not serve the tenant's home jurisdiction
429   the tenant is over its rate limit (``Retry-After``)
503   the tenant is being migrated, or the store cannot write now (``Retry-After``); resend later
====  ======================================================================================

A rejected batch leaves nothing written (the store's transaction is the only write). The handlers read the
body on the event loop and run the work (token check, parse, SQLite or PostgreSQL) in the thread pool, so
the loop and the log's ``/add`` keep running. The logic is :mod:`overt.residency.ingest`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from overt.errors import Error
from overt.residency.ingest import Ingest, parse_day
from overt.residency.telemetry import MAX_BATCH_BYTES
from overt.residency.tokens import AuthenticationError
from overt.server.errors import http_status

if TYPE_CHECKING:
    from overt.home import Home

TELEMETRY_MAX_BODY = MAX_BATCH_BYTES
_BEARER = {"WWW-Authenticate": 'Bearer realm="overt telemetry"'}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def error_response(e: Error) -> JSONResponse:
    """The answer to an overt error: its own status if it has one (409, 421, 429, 503), else its family's."""
    if isinstance(e, AuthenticationError):
        return _error(
            401, str(e), {"WWW-Authenticate": f'{_BEARER["WWW-Authenticate"]}, error="invalid_token"'}
        )
    status = getattr(e, "status", None)
    headers = None
    retry = getattr(e, "retry_after", None)
    if isinstance(retry, int):
        headers = {"Retry-After": str(retry)}
    elif http_status(e) == 503:
        headers = {"Retry-After": "1"}
    return _error(status if isinstance(status, int) else http_status(e), str(e), headers)


def _token(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthenticated() -> JSONResponse:
    return _error(401, "this API needs the header Authorization: Bearer <API token of the tenant>", _BEARER)


def _json_declared(request: Request) -> bool:
    kind, _, params = request.headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


async def _body(request: Request) -> bytes | JSONResponse:
    """The body, or the 413 answer once it is over the limit (declared or received)."""
    too_large = _error(
        413, f"a telemetry batch is at most {MAX_BATCH_BYTES} bytes; send fewer events per batch"
    )
    try:
        if int(request.headers.get("content-length", "0")) > MAX_BATCH_BYTES:
            return too_large
    except ValueError:
        return _error(400, "Content-Length is not a number")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BATCH_BYTES:
            return too_large
    return bytes(body)


class TelemetryAPI:
    """The two routes over one :class:`~overt.residency.ingest.Ingest`, opened with the app's lifespan."""

    def __init__(self, home: Home, *, serving: Iterable[str] | None = None) -> None:
        self.home = home
        self.serving = None if serving is None else tuple(serving)
        self.ingest: Ingest | None = None

    def served(self) -> list[str]:
        """The jurisdictions this API serves once open: those asked for, else every configured one."""
        if self.ingest is not None:
            return sorted(self.ingest.router.serving)
        if self.serving is not None:
            return sorted(set(self.serving))
        from overt.residency.config import jurisdiction_configs

        return sorted(jurisdiction_configs(self.home))

    def open(self) -> None:
        """Open the directory and check the jurisdictions served (ConfigError: one has no store)."""
        self.ingest = Ingest(self.home, serving=self.serving)

    def close(self) -> None:
        if self.ingest is not None:
            self.ingest.close()
            self.ingest = None

    def _service(self) -> Ingest:
        if self.ingest is None:
            raise RuntimeError("the telemetry API is not open (the app's lifespan opens it)")
        return self.ingest

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.post("/v1/telemetry", summary="Store a telemetry batch in the tenant's home jurisdiction")
        async def telemetry(request: Request) -> Response:
            token = _token(request)
            if token is None:
                return _unauthenticated()
            if not _json_declared(request):
                return _error(415, "a telemetry batch is sent as Content-Type: application/json (UTF-8)")
            try:
                body = await _body(request)
            except ClientDisconnect:
                return _error(400, "the client left before sending the whole body; nothing was stored")
            if isinstance(body, JSONResponse):
                return body
            try:
                landed = await run_in_threadpool(self._service().ingest, token, body)
            except Error as e:
                return error_response(e)
            return JSONResponse(landed.to_dict())

        @router.get("/v1/aggregates", summary="The tenant's detections per rule per day")
        async def aggregates(request: Request) -> Response:
            token = _token(request)
            if token is None:
                return _unauthenticated()
            query = request.query_params
            try:
                since = parse_day(query.get("since"), "since")
                until = parse_day(query.get("until"), "until")
                jurisdiction = query.get("jurisdiction") or None
                found: Any = await run_in_threadpool(
                    lambda: self._service().aggregates(
                        token, since=since, until=until, jurisdiction=jurisdiction
                    )
                )
            except Error as e:
                return error_response(e)
            return JSONResponse(found.to_dict())

        return router
