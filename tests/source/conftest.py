"""A conveyor home with a builder key, which escrow signs with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home.init(tmp_path / "conveyor", origin="conveyor.example/log", jurisdiction="CH")
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    record = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction="CH", valid_from=datetime.now(UTC), valid_until=None, uri=uri
    )
    h.registry.add(record, conveyor_jurisdiction="CH")
    return h
