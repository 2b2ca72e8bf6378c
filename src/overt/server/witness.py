"""tlog-witness HTTP edge: ``POST /add-checkpoint`` and ``GET /<sha256(origin)>/checkpoint``."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import FastAPI, Request, Response

from overt.tlog.witness import MAX_REQUEST_BYTES, Witness, WitnessRefusal


def create_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="overt witness")

    @app.post("/add-checkpoint", summary="c2sp.org/tlog-witness add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return Response("request too large\n", status_code=413, media_type="text/plain")
        try:
            lines = await asyncio.to_thread(witness.add_checkpoint, bytes(body))
        except WitnessRefusal as e:
            return Response(e.body, status_code=e.status, media_type=e.content_type)
        return Response(lines, media_type="text/plain; charset=utf-8")

    @app.get("/{origin_hash}/checkpoint", summary="latest cosigned checkpoint of a log")
    async def checkpoint(origin_hash: str) -> Response:
        for origin in witness.logs:
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash:
                data = witness.latest(origin)
                if data is not None:
                    return Response(data, media_type="text/plain; charset=utf-8")
        return Response("not found\n", status_code=404, media_type="text/plain")

    return app
