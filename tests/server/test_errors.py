"""HTTP status codes for overt's error families, and the edges that answer with them instead of a bare 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from overt.errors import (
    BuildError,
    ConfigError,
    ConsistencyError,
    Error,
    FormatError,
    InclusionError,
    PolicyError,
    QuorumError,
    ReproducibilityError,
    SignatureError,
    StorageError,
    TransportError,
    UnpublishedError,
    UsageError,
    VerificationError,
)
from overt.home import Home, LogConfig
from overt.server import log, witness
from overt.server.errors import http_status
from overt.server.runner import BackgroundServer
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.guard import StaleDatabaseError
from overt.tlog.policy import Policy
from overt.tlog.witness import WitnessConflict, init_witness, load_witness


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (FormatError("x"), 400),
        (UsageError("x"), 400),
        (VerificationError("x"), 422),
        (SignatureError("x"), 422),
        (InclusionError("x"), 422),
        (ConsistencyError("x"), 422),
        (QuorumError("x"), 422),
        (PolicyError("x"), 403),
        (ConfigError("x"), 500),
        (StorageError("x"), 503),
        (StaleDatabaseError("x"), 503),
        (TransportError("x"), 502),
        (WitnessConflict(3), 502),
        (UnpublishedError("x"), 503),
        (BuildError("x"), 500),
        (ReproducibilityError("x"), 500),
        (Error("x"), 500),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Error) else str(v),
)
def test_each_family_has_its_status(error: Error, status: int) -> None:
    assert http_status(error) == status


def _route_raising_a_format_error(app: FastAPI) -> None:
    """A route that parses a malformed checkpoint, as the coming portal and TUF routes will parse requests."""

    @app.get("/parse-checkpoint")
    def parse() -> str:
        SignedCheckpoint.from_bytes(b"not a checkpoint\n")
        return "unreachable"

    app.router.routes.insert(0, app.router.routes.pop())  # before the log's static files, mounted at /


def test_the_witness_answers_an_overt_error_with_its_family_status(tmp_path: Path) -> None:
    init_witness(tmp_path / "w", "witness.test.overt.example")
    app = witness.create_app(load_witness(tmp_path / "w"))
    _route_raising_a_format_error(app)
    with BackgroundServer(app) as srv:
        r = httpx.get(f"{srv.url}/parse-checkpoint", timeout=30)
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text.startswith("note has no blank line separating text from signatures")


def test_the_log_answers_an_overt_error_with_its_family_status(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "home", config=LogConfig(origin="errors.test.overt.example/log"))
    app = log.create_app(home)
    _route_raising_a_format_error(app)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        r = http.get("/parse-checkpoint")
        assert r.status_code == 400
        assert r.json() == {"error": "note has no blank line separating text from signatures"}
        Policy.from_bytes(http.get("/log/policy").content)  # the static files are still served
