"""The log's HTTP write API and static file server.

``POST /add`` takes one entry (the raw body, at most 65,535 bytes, the tlog-tiles entry limit) and answers,
once the entry's batch is integrated and its checkpoint published, ``{"index", "tree_size", "proof"}`` where
``proof`` is a c2sp.org/tlog-proof. Batching (size and interval) comes from the home's config. While the
witness quorum is not met the integrator retries publishing every interval; a waiting request gets 503 after
``wait_timeout`` seconds and may simply be resent: deduplication returns the same index.

Everything under ``public/`` is served as static files (``/log/checkpoint``, ``/log/tile/...``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from overt.errors import Error
from overt.home import Home
from overt.tlog.log import LocalLog
from overt.tlog.tiles import MAX_ENTRY_SIZE


@dataclass
class _Pending:
    entry: bytes
    future: asyncio.Future[tuple[int, int, str]]


@dataclass
class Integrator:
    """Collects entries into batches and integrates them on a worker thread, one batch at a time."""

    log: LocalLog
    batch_size: int
    interval: float
    queue: list[_Pending] = field(default_factory=list)
    waiting: list[tuple[int, _Pending]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_failures: dict[str, str] = field(default_factory=dict)

    async def submit(self, entry: bytes) -> tuple[int, int, str]:
        fut: asyncio.Future[tuple[int, int, str]] = asyncio.get_running_loop().create_future()
        self.queue.append(_Pending(entry, fut))
        if len(self.queue) >= self.batch_size:
            self.wake.set()
        return await fut

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.interval)
            self.wake.clear()
            if not self.queue and not self.waiting:
                continue
            batch, self.queue = self.queue[: self.batch_size], self.queue[self.batch_size :]
            if self.queue:
                self.wake.set()
            try:
                done = await asyncio.to_thread(self._integrate, [p.entry for p in batch], batch)
            except Error as e:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            for (index, pending), proof in done:
                if not pending.future.done():
                    pending.future.set_result((index, self.log.tree_size, proof))

    def _integrate(
        self, entries: list[bytes], batch: list[_Pending]
    ) -> list[tuple[tuple[int, _Pending], str]]:
        if entries:
            indices = self.log.add(entries)
            self.waiting.extend(zip(indices, batch, strict=True))
        result = self.log.publish()
        self.last_failures = result.failures
        if not result.published:
            return []
        done = [
            (item, self.log.proof(item[0], result.checkpoint).to_bytes().decode()) for item in self.waiting
        ]
        self.waiting = []
        return done


def create_app(home: Home, *, wait_timeout: float = 30.0) -> FastAPI:
    cfg = home.log_config
    state: dict[str, Integrator] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log = home.open_log()
        integrator = Integrator(log, cfg.batch_size, cfg.batch_interval)
        state["integrator"] = integrator
        task = asyncio.create_task(integrator.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.close()

    app = FastAPI(title="overt log", lifespan=lifespan)

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
            return JSONResponse(
                {
                    "error": "entry accepted but the checkpoint is not yet cosigned by the witness quorum; "
                    "resend the same entry later to get its proof",
                    "witness_failures": integrator.last_failures,
                },
                status_code=503,
            )
        except Error as e:
            return JSONResponse({"error": str(e)}, status_code=500)
        return JSONResponse({"index": index, "tree_size": size, "proof": proof})

    @app.middleware("http")
    async def cache_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        path = request.url.path
        if path.endswith("/checkpoint"):
            response.headers["Cache-Control"] = "no-cache, max-age=0"
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
        elif "/tile/" in path and response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            response.headers["Content-Type"] = "application/octet-stream"
        return response

    app.mount("/", StaticFiles(directory=home.public), name="public")
    return app
