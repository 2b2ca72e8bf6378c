"""The rebuilder's verdict store on both backends (SQLite in a temp dir, a real PostgreSQL database): one
verdict per (auditor, provenance) whoever writes it first, a position that only moves forward, FAIL and BAD
attempts counted apart; and the job's wire types, both ways."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from overt.auditor.rebuild import RebuildJob, RebuildSettings, site_of
from overt.auditor.verdicts import BAD, FAIL, GOOD, StoredVerdict, VerdictStore
from overt.errors import FormatError, UsageError

A, B = "a" * 64, "b" * 64
P1, P2, P3 = "1" * 64, "2" * 64, "3" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VerdictStore]:
    if request.param == "sqlite":
        with VerdictStore(None, default=tmp_path / "state" / "rebuild.sqlite") as s:
            yield s
        return
    import psycopg

    server = request.getfixturevalue("postgres_dsn")
    name = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        with VerdictStore(server.rsplit("/", 1)[0] + f"/{name}", default=tmp_path / "unused") as s:
            yield s
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def verdict(provenance: str, envelope: bytes, *, auditor: str = A, kind: str = GOOD) -> StoredVerdict:
    return StoredVerdict(
        auditor=auditor, provenance_sha256=provenance, log_index=7, verdict=kind, result="PASSED",
        reason="r", envelope=envelope, vsa_index=None, decided_at="2026-01-01T00:00:00Z",
    )  # fmt: skip


def test_the_first_verdict_stored_is_the_one_kept_and_logged(store: VerdictStore) -> None:
    store.record_discovery(A, [(7, P1), (9, P2)], next_index=10)
    assert [j.provenance_sha256 for j in store.unfinished(A)] == [P1, P2]
    first = store.put_verdict(verdict(P1, b"first"))
    assert (
        store.put_verdict(verdict(P1, b"second", kind=BAD)) == first
    )  # a second writer gets the first's bytes
    assert first.envelope == b"first" and first.vsa_index is None
    assert [j.provenance_sha256 for j in store.unfinished(A)] == [
        P1,
        P2,
    ]  # stored, not logged yet: unfinished
    store.mark_logged(A, P1, vsa_index=12)
    assert [j.provenance_sha256 for j in store.unfinished(A)] == [P2]
    assert store.verdict(A, P1) == replace(first, vsa_index=12)
    # Another auditor sharing the database judges the same provenance on its own.
    assert store.put_verdict(verdict(P1, b"other", auditor=B)).envelope == b"other"
    assert [v.envelope for v in store.verdicts(A)] == [b"first"]


def test_the_position_only_moves_forward_and_jobs_are_recorded_once(store: VerdictStore) -> None:
    assert store.position(A) == 0
    store.record_discovery(A, [(3, P1)], next_index=5)
    store.record_discovery(A, [(3, P1), (6, P3)], next_index=4)  # a late, slower discovery
    assert store.position(A) == 5 and store.position(B) == 0
    assert [(j.log_index, j.provenance_sha256) for j in store.unfinished(A)] == [(3, P1), (6, P3)]


def test_fail_and_bad_attempts_are_counted_apart(store: VerdictStore) -> None:
    store.record_discovery(A, [(3, P1)], next_index=4)
    store.count_attempt(A, P1, log_index=3, kind=FAIL, reason="no such object")
    state = store.count_attempt(A, P1, log_index=3, kind=FAIL, reason="the build failed")
    assert (state.fail_attempts, state.bad_attempts, state.last_reason) == (2, 0, "the build failed")
    state = store.count_attempt(A, P1, log_index=3, kind=BAD, reason="differs")
    assert (state.fail_attempts, state.bad_attempts) == (2, 1)
    # A job the queue hands over without a discovery here is counted too.
    assert store.count_attempt(A, P2, log_index=8, kind=BAD, reason="x").bad_attempts == 1


def test_a_store_that_is_neither_postgresql_nor_sqlite_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="neither a PostgreSQL DSN"):
        VerdictStore("mysql://x/y", default=tmp_path / "s")
    with VerdictStore(f"sqlite:///{tmp_path}/elsewhere.sqlite", default=tmp_path / "unused") as s:
        s.record_discovery(A, [], next_index=1)
    assert (tmp_path / "elsewhere.sqlite").is_file() and not (tmp_path / "unused").exists()


def test_jobs_and_settings_cross_a_process_both_ways() -> None:
    job = RebuildJob(4, P1)
    assert RebuildJob.from_dict(job.to_dict()) == job
    follow = RebuildSettings.of("http://127.0.0.1:8080/log", store="postgresql://db/x", max_fail_attempts=5)
    assert (follow.site, follow.submit) == ("http://127.0.0.1:8080", "http://127.0.0.1:8080")
    assert RebuildSettings.from_dict(follow.to_dict()) == follow
    with pytest.raises(FormatError):
        RebuildJob.from_dict({"log_index": True, "provenance_sha256": P1})
    with pytest.raises(FormatError):
        RebuildSettings.from_dict({**follow.to_dict(), "surprise": 1})
    with pytest.raises(UsageError, match="give --site"):
        site_of("http://127.0.0.1:8080")
    assert site_of("https://vendor.example/a/log/") == "https://vendor.example/a"
