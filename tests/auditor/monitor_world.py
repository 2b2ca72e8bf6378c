"""The world a monitor watches, all real: a conveyor home whose log two real witnesses cosign, a TUF repository,
releases with logged VSAs by test auditors, ``public/`` served over HTTP on 127.0.0.1 (tests.distribute.world),
and helpers that put into the log what overt's own signing service would refuse to sign (signed directly with
the home's keys), so the monitor has something to find."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.statement import ResourceDescriptor, Statement
from overt.auditor.monitor import MonitorConfig, MonitorReport, monitor_config, monitor_once
from overt.distribute.testbed import conveyor_home, sample_provenance
from overt.keys.registry import KeyRecord, Role
from tests.distribute.world import World, make_world

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    home = conveyor_home(tmp_path / "conveyor", origin="conveyor.example/log", jurisdiction="CH")
    it = make_world(home, tmp_path)
    w = next(it)
    w.release("1.0")
    (w.customer / "policy.toml").write_text(w.policy_text())
    yield w
    it.close()


def config(w: World, state: Path, *, now: datetime = NOW, **kw: object) -> MonitorConfig:
    made = monitor_config(w.site.url + "/log", policy=w.customer / "policy.toml", state=state)
    fields = {"now": lambda: now, **kw}
    return MonitorConfig(**{**{f: getattr(made, f) for f in MonitorConfig.__dataclass_fields__}, **fields})


def run(w: World, state: Path, **kw: object) -> MonitorReport:
    return monitor_once(config(w, state, **kw))


def kinds(report: MonitorReport) -> list[str]:
    return sorted(a.kind for a in report.alerts)


def current(w: World, role: Role) -> KeyRecord:
    return w.home.registry.current(role, datetime.now(UTC))


def signed_entry(w: World, statement: Statement, record: KeyRecord) -> bytes:
    """``statement`` in a DSSE envelope signed with ``record``'s key directly (no jurisdiction judge)."""
    signer = w.home.signer_for(record)
    return sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer]).to_bytes()


def log_signed(w: World, statement: Statement, record: KeyRecord) -> int:
    """:func:`signed_entry`, logged and published; its index."""
    entry = signed_entry(w, statement, record)
    receipt = w.home.log.append(entry)
    assert receipt.published
    return receipt.index


def provenance(w: World, data: bytes, *, builder_id: str | None = None) -> Statement:
    digest = {"sha256": hashlib.sha256(data).hexdigest()}
    return sample_provenance(w.home, builder_id=builder_id).statement(
        (ResourceDescriptor(name="demo.tar.gz", digest=digest),)
    )


LATER = NOW + timedelta(hours=25)
