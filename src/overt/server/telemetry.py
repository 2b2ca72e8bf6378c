"""The telemetry API of ``overt serve``: ``POST /v1/telemetry`` and ``GET /v1/aggregates``.

Mounted into the log's app (:func:`overt.server.log.create_app`) when the home has jurisdictions configured
(``[jurisdictions.J]``); the edge's body limit is then raised to :data:`TELEMETRY_MAX_BODY` for the whole
server, while ``POST /add`` keeps its own 65,535-byte check.

- ``POST /v1/telemetry`` with ``Authorization: Bearer <API token>`` and a JSON batch
  (:mod:`overt.residency.telemetry`, at most 4 MiB) answers 200 and where the batch landed:
  ``{"tenant", "jurisdiction", "batch_id", "events", "duplicate", "sha256"}``.
- ``GET /v1/aggregates?since=YYYY-MM-DD&until=YYYY-MM-DD`` answers the token's tenant's detections per rule
  per day, computed in its home jurisdiction. ``jurisdiction=J`` may name where the caller expects them; any
  other jurisdiction than the tenant's home is a cross-jurisdiction read, refused (403) and logged. Any
  other query parameter, or one given twice, is a 400.

A request is checked in this order, and its body read only once it is let in: the headers (one
``Authorization``, the content type and encoding); the token, the tenant's routing, status and batch rate
(:meth:`~overt.residency.ingest.Ingest.admit`); then the body (413 over the limit) and the batch itself
(:meth:`~overt.residency.ingest.Ingest.store_batch`). A CH tenant's batch sent to a server that does not
serve CH is refused (421, logged) before a byte of it is read.

Errors, every body one JSON object ``{"error":"<what went wrong and what to do>"}`` written compactly:

====  ======================================================================================
400   the body is not a valid batch (the message names the first bad field; more than 5,000 events
      is such a schema error too), an event time before 2000 or more than a day ahead, a bad or
      unknown query parameter, or two ``Authorization`` headers
401   no token, or a token that authenticates no tenant (with ``WWW-Authenticate: Bearer``): unknown,
      revoked and wrong tokens all get "the API token is not valid"
403   a cross-jurisdiction read
405   a method the path does not take (``Allow`` names the one it does)
409   the batch_id was used with another body
413   the body is larger than 4 MiB
415   the body is not declared ``application/json``, or has a ``Content-Encoding`` other than identity
421   this server does not serve the tenant's home jurisdiction
429   the tenant is over its rate limit, or too many tokens that are not valid came for this token id or
      from this address (``Retry-After``)
503   the tenant is being migrated, the store cannot serve now or is not this jurisdiction's own, or too
      many tokens are being checked at once (``Retry-After``); send again later
====  ======================================================================================

A rejected batch leaves nothing written (the store's transaction is the only write). The handlers read the
body on the event loop and run the work (token check, parse, SQLite or PostgreSQL) in the thread pool, so
the loop and the log's ``/add`` keep running. A token this process has not verified before costs an argon2
verification: those requests wait for one of the hasher's few slots on the event loop
(:class:`_VerificationGate`), not in the thread pool, so that requests of tenants whose tokens are
remembered always find a thread; beyond :data:`MAX_WAITING_VERIFICATIONS` waiting, they are answered 503.
The logic is :mod:`overt.residency.ingest`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from overt.errors import Error
from overt.residency.ingest import Admitted, Ingest, check_days, parse_day
from overt.residency.telemetry import MAX_BATCH_BYTES
from overt.residency.tokens import AuthenticationError
from overt.server.errors import http_status

if TYPE_CHECKING:
    from overt.home import Home

TELEMETRY_MAX_BODY = MAX_BATCH_BYTES
MAX_WAITING_VERIFICATIONS = 32  # requests waiting for an argon2 slot; more are answered 503
AGGREGATES_PARAMETERS = ("since", "until", "jurisdiction")
_BEARER = {"WWW-Authenticate": 'Bearer realm="overt telemetry"'}
_T = TypeVar("_T")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error body: ``{"error":"..."}``, compact as every JSONResponse is."""
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


def _token(request: Request) -> str | JSONResponse:
    """The bearer token, or the answer to a request without one (401) or with two (400)."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        return _error(400, f"send one Authorization header, not {len(values)}")
    scheme, _, token = (values[0] if values else "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(
            401, "this API needs the header Authorization: Bearer <API token of the tenant>", _BEARER
        )
    return token.strip()


def _client(request: Request) -> str | None:
    return None if request.client is None else request.client.host


def _json_declared(request: Request) -> bool:
    kind, _, params = request.headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _content_refusal(request: Request) -> JSONResponse | None:
    """415 for a body not declared as uncompressed JSON, else None."""
    if not _json_declared(request):
        return _error(415, "a telemetry batch is sent as Content-Type: application/json (UTF-8)")
    codings = [
        c.strip().lower()
        for value in request.headers.getlist("content-encoding")
        for c in value.split(",")
        if c.strip()
    ]
    other = [c for c in codings if c != "identity"]
    if other:
        return _error(
            415,
            f"a telemetry batch is sent uncompressed: Content-Encoding {other[0][:32]} is not accepted "
            "(send no Content-Encoding, or identity)",
        )
    return None


def _query_refusal(request: Request) -> JSONResponse | None:
    """400 for a query parameter /v1/aggregates does not take, or one given twice, else None."""
    names = [name for name, _ in request.query_params.multi_items()]
    for name in names:
        if name not in AGGREGATES_PARAMETERS:
            return _error(
                400,
                f"/v1/aggregates takes the query parameters {', '.join(AGGREGATES_PARAMETERS)}, not "
                f"{name[:40]!r}",
            )
        if names.count(name) > 1:
            return _error(400, f"the query parameter {name} is given {names.count(name)} times; give it once")
    return None


class _VerificationGate:
    """Requests whose token needs an argon2 verification wait here, on the event loop, for one of the
    hasher's slots (as many as it verifies at once), so that they never hold a thread of the pool while
    they wait; beyond ``max_waiting`` waiting, they are refused (503)."""

    def __init__(self, slots: int, max_waiting: int = MAX_WAITING_VERIFICATIONS) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.max_waiting = max_waiting
        self.waiting = 0

    async def run(self, work: Callable[[], Awaitable[_T]]) -> _T | JSONResponse:
        if self.waiting >= self.max_waiting:
            return _error(
                503, "too many API tokens are being checked at once; send again in 1 s", {"Retry-After": "1"}
            )
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            return await work()
        finally:
            self.slots.release()


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
        self._gate: _VerificationGate | None = None

    def served(self) -> list[str]:
        """The jurisdictions this API serves once open: those asked for, else every configured one."""
        if self.ingest is not None:
            return sorted(self.ingest.router.serving)
        if self.serving is not None:
            return sorted(set(self.serving))
        from overt.residency.config import jurisdiction_configs

        return sorted(jurisdiction_configs(self.home))

    def open(self) -> None:
        """Open the directory and every store served, each checked to be its jurisdiction's own.

        Raises:
            ConfigError: a jurisdiction served has no store, or one that does not open as its own.
        """
        ingest = Ingest(self.home, serving=self.serving)
        try:
            ingest.router.check_stores()
        except Error:
            ingest.close()
            raise
        self.ingest = ingest
        self._gate = _VerificationGate(ingest.directory.hasher.max_concurrent)

    def close(self) -> None:
        if self.ingest is not None:
            self.ingest.close()
            self.ingest = None

    def _service(self) -> Ingest:
        if self.ingest is None or self._gate is None:
            raise RuntimeError("the telemetry API is not open (the app's lifespan opens it)")
        return self.ingest

    async def _admit(
        self, request: Request, token: str, *, purpose: str, jurisdiction: str | None = None
    ) -> Admitted | JSONResponse:
        """Let the request in (:meth:`Ingest.admit`), through the verification gate if its token costs an
        argon2 verification; a refusal is its answer."""
        ingest, client = self._service(), _client(request)

        async def admit() -> Admitted:
            return await run_in_threadpool(
                lambda: ingest.admit(token, client=client, purpose=purpose, jurisdiction=jurisdiction)
            )

        try:
            if not ingest.needs_verification(token):
                return await admit()
            ingest.check_failures(token, client=client)  # before waiting for a slot: no argon2 for these
            assert self._gate is not None
            return await self._gate.run(admit)
        except Error as e:
            return error_response(e)

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.post("/v1/telemetry", summary="Store a telemetry batch in the tenant's home jurisdiction")
        async def telemetry(request: Request) -> Response:
            token = _token(request)
            if isinstance(token, JSONResponse):
                return token
            refused = _content_refusal(request)
            if refused is not None:
                return refused
            admitted = await self._admit(request, token, purpose="ingest")
            if isinstance(admitted, JSONResponse):
                return admitted
            try:
                body = await _body(request)
            except ClientDisconnect:
                return _error(400, "the client left before sending the whole body; nothing was stored")
            if isinstance(body, JSONResponse):
                return body
            try:
                landed = await run_in_threadpool(self._service().store_batch, admitted, body)
            except Error as e:
                return error_response(e)
            return JSONResponse(landed.to_dict())

        @router.get("/v1/aggregates", summary="The tenant's detections per rule per day")
        async def aggregates(request: Request) -> Response:
            token = _token(request)
            if isinstance(token, JSONResponse):
                return token
            refused = _query_refusal(request)
            if refused is not None:
                return refused
            query = request.query_params
            try:
                since = parse_day(query.get("since"), "since")
                until = parse_day(query.get("until"), "until")
                check_days(since, until)
            except Error as e:
                return error_response(e)
            admitted = await self._admit(
                request, token, purpose="aggregates", jurisdiction=query.get("jurisdiction") or None
            )
            if isinstance(admitted, JSONResponse):
                return admitted
            try:
                found: Any = await run_in_threadpool(
                    self._service().aggregates_of, admitted, since=since, until=until
                )
            except Error as e:
                return error_response(e)
            return JSONResponse(found.to_dict())

        @router.get("/v1/telemetry", include_in_schema=False)
        async def telemetry_get() -> Response:
            return _error(405, "POST a telemetry batch to /v1/telemetry", {"Allow": "POST"})

        @router.post("/v1/aggregates", include_in_schema=False)
        async def aggregates_post() -> Response:
            return _error(405, "GET /v1/aggregates reads the tenant's aggregates", {"Allow": "GET"})

        return router
