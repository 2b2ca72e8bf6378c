"""A conveyor home with an auditor key (AV-database audits and waivers are signed by it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key
from overt.tlog.client import LogClient, directory_fetcher


@pytest.fixture
def av(conveyor: Home, sandbox: None) -> Home:
    uri, key = generate_file_key(conveyor.paths.keys, "ecdsa")
    start = datetime.now(UTC) - timedelta(minutes=1)
    conveyor.registry.save(
        KeyRecord.create(
            key, role=Role.AUDITOR, jurisdiction="CH", valid_from=start, valid_until=None, uri=uri
        )
    )
    return conveyor


def entries(h: Home) -> list[bytes]:
    """Every entry of ``h``'s log, read back as a verifier reads it."""
    c = LogClient(directory_fetcher(h.log.paths.public), h.log.policy())
    return c.entries(c.update().checkpoint.checkpoint.tree_size)
