"""tlog-witness HTTP edge: ``POST /add-checkpoint`` and ``GET /<sha256(origin)>/checkpoint``.

Refusals carry the exact Content-Type the witness chose: the 409 is ``text/x.tlog.size`` with no parameter,
because sigsum-go and the transparency-dev witness client (used by Tessera logs) compare it byte for byte.
Starlette appends ``; charset=utf-8`` to any ``text/*`` media type, so the header is set directly.
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import FastAPI, Request, Response

from overt.errors import Error
from overt.server.errors import http_status
from overt.tlog.witness import MAX_REQUEST_BYTES, TEXT_CONTENT_TYPE, Witness, WitnessRefusal


def _text(body: str | bytes, *, status: int = 200, content_type: str = TEXT_CONTENT_TYPE) -> Response:
    data = body.encode() if isinstance(body, str) else body
    return Response(data, status_code=status, headers={"Content-Type": content_type})


def create_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="overt witness")

    @app.exception_handler(Error)
    async def overt_error(request: Request, e: Error) -> Response:
        """An overt error other than a refusal: its family's status and its message, not a bare 500."""
        return _text(f"{e}\n", status=http_status(e))

    @app.post("/add-checkpoint", summary="c2sp.org/tlog-witness add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return _text("request too large\n", status=413)
        try:
            lines = await asyncio.to_thread(witness.add_checkpoint, bytes(body))
        except WitnessRefusal as e:
            return _text(e.body, status=e.status, content_type=e.content_type)
        return _text(lines)

    @app.get("/{origin_hash}/checkpoint", summary="latest cosigned checkpoint of a log")
    async def checkpoint(origin_hash: str) -> Response:
        for origin in witness.logs:
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                data = witness.latest(origin)
                if data is not None:
                    return _text(data)
        return _text("not found\n", status=404)

    return app
