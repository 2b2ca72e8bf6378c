"""The telemetry batch: schema, limits, one clear FormatError per bad input, and fuzzing."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overt.errors import FormatError
from overt.jsonio import load_object
from overt.residency.telemetry import (
    MAX_BATCH_BYTES,
    MAX_EVENTS,
    TelemetryBatch,
    check_event_times,
    parse_batch,
)

HASH = "ab" * 32


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "time": "2026-12-01T10:00:00Z",
        "file_sha256": HASH,
        "rule_id": "Win.Trojan.Agent-1",
        "verdict": "malicious",
        "database": "overt-avdb",
        "database_version": 20261201,
    }
    return {**base, **fields}


def doc(n: int = 3, **fields: Any) -> dict[str, Any]:
    return {
        "batch_id": "3f2b9c1e-8d4a-4e7b-9c0d-1a2b3c4d5e6f",
        "endpoint": "host-1",
        "events": [event(rule_id=f"rule-{i}") for i in range(n)],
        **fields,
    }


def body(d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode()


def refusal(raw: bytes) -> str:
    with pytest.raises(FormatError) as e:
        parse_batch(raw)
    return str(e.value)


def test_a_valid_batch_parses_and_round_trips() -> None:
    batch = parse_batch(body(doc(3)))
    assert batch.batch_id == "3f2b9c1e-8d4a-4e7b-9c0d-1a2b3c4d5e6f"
    assert [e.rule_id for e in batch.events] == ["rule-0", "rule-1", "rule-2"]
    assert isinstance(batch.events, tuple)
    assert parse_batch(batch.to_bytes()) == batch
    assert TelemetryBatch.from_bytes(batch.to_bytes()).to_bytes() == batch.to_bytes()


@pytest.mark.parametrize(
    ("sent", "stored", "day"),
    [
        ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00.000000Z", "2026-12-01"),
        ("2026-12-01T10:00:00.5Z", "2026-12-01T10:00:00.500000Z", "2026-12-01"),
        ("2026-12-01T10:00:00.123456789Z", "2026-12-01T10:00:00.123456Z", "2026-12-01"),
        ("2026-12-01T23:30:00-02:00", "2026-12-02T01:30:00.000000Z", "2026-12-02"),
        ("2026-12-01T00:30:00+01:00", "2026-11-30T23:30:00.000000Z", "2026-11-30"),
    ],
)
def test_times_are_kept_in_utc_in_one_spelling(sent: str, stored: str, day: str) -> None:
    e = parse_batch(body(doc(1) | {"events": [event(time=sent)]})).events[0]
    assert (e.time, e.day) == (stored, day)
    assert e.moment.utcoffset() is not None


# (what is wrong, how to break a valid batch, what the message must say)
BAD = [
    (
        "upper-case hash",
        lambda d: d["events"][1].update(file_sha256=HASH.upper()),
        "events[1].file_sha256 must be 64",
    ),
    ("short hash", lambda d: d["events"][0].update(file_sha256="ab"), "events[0].file_sha256 must be 64"),
    ("missing field", lambda d: d.pop("endpoint"), "endpoint is missing"),
    ("missing event field", lambda d: d["events"][2].pop("rule_id"), "events[2].rule_id is missing"),
    ("unknown field", lambda d: d.update(tenant="t-1"), "tenant is not a field"),
    ("unknown event field", lambda d: d["events"][0].update(x=1), "events[0].x is not a field"),
    (
        "naive time",
        lambda d: d["events"][0].update(time="2026-12-01T10:00:00"),
        "events[0].time must be an RFC 3339",
    ),
    ("no seconds", lambda d: d["events"][0].update(time="2026-12-01T10:00Z"), "events[0].time must be"),
    ("space for T", lambda d: d["events"][0].update(time="2026-12-01 10:00:00Z"), "events[0].time must be"),
    ("month 13", lambda d: d["events"][0].update(time="2026-13-01T10:00:00Z"), "events[0].time must be"),
    (
        "unknown offset",
        lambda d: d["events"][0].update(time="2026-12-01T10:00:00-00:00"),
        "events[0].time must be",
    ),
    (
        "offset out of range",
        lambda d: d["events"][0].update(time="0001-01-01T00:00:00+01:00"),
        "time must be",
    ),
    ("time as number", lambda d: d["events"][0].update(time=1764583200), "events[0].time must be"),
    (
        "version as string",
        lambda d: d["events"][0].update(database_version="5"),
        "database_version must be an integer",
    ),
    ("version as bool", lambda d: d["events"][0].update(database_version=True), "database_version must be"),
    ("version as float", lambda d: d["events"][0].update(database_version=5.0), "database_version must be"),
    ("negative version", lambda d: d["events"][0].update(database_version=-1), "database_version must be"),
    (
        "version over bigint",
        lambda d: d["events"][0].update(database_version=1 << 63),
        "database_version must be",
    ),
    ("unknown verdict", lambda d: d["events"][0].update(verdict="evil"), "events[0].verdict must be one of"),
    ("no events", lambda d: d.update(events=[]), "events must be a JSON array of 1 to 5000"),
    ("events as object", lambda d: d.update(events={}), "events must be a JSON array"),
    ("event as number", lambda d: d["events"].__setitem__(0, 5), "events[0] must be a JSON object"),
    ("short batch_id", lambda d: d.update(batch_id="abc"), "batch_id must be 8 to 64"),
    ("batch_id with a slash", lambda d: d.update(batch_id="../../etc/passwd"), "batch_id must be"),
    ("endpoint with a newline", lambda d: d.update(endpoint="host\n1"), "endpoint must be"),
    ("endpoint too long", lambda d: d.update(endpoint="h" * 129), "endpoint must be"),
    ("rule_id with a space", lambda d: d["events"][0].update(rule_id="a b"), "events[0].rule_id must be"),
    ("non-ASCII database", lambda d: d["events"][0].update(database="avdé"), "events[0].database must be"),
]


@pytest.mark.parametrize(("desc", "breaks", "says"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_batch_is_refused_naming_the_field(desc: str, breaks: Any, says: str) -> None:
    d = copy.deepcopy(doc(3))
    breaks(d)
    message = refusal(body(d))
    assert message.startswith("telemetry batch")
    assert says in message, (desc, message)
    assert "pydantic" not in message and "\n" not in message and len(message) < 200


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"batch_id": "aaaaaaaa"} trailing', "not valid JSON"),
        (body(doc(1))[:-1] + b',"endpoint":"other"}', "duplicate JSON key 'endpoint'"),
        (
            body(doc(1)).replace(b'"verdict"', b'"verdict": "clean", "verdict"'),
            "duplicate JSON key 'verdict'",
        ),
        # The same key spelled with an escape: only the full strict parse sees it.
        (
            body(doc(1)).replace(b'"rule_id"', b'"\\u0072ule_id": "x", "rule_id"'),
            "duplicate JSON key 'rule_id'",
        ),
        (body(doc(1)).replace(b'"database_version": 20261201', b'"database_version": NaN'), "NaN"),
        (body(doc(1)).replace(b'"host-1"', b'"host-\\ud800"'), "\\ud800, half of a UTF-16 surrogate pair"),
    ],
)
def test_ambiguous_or_broken_json_is_refused(raw: bytes, says: str) -> None:
    assert says in refusal(raw)


# Python's own words that a sender must never read (the codec, the int limit, the recursion, type names).
INTERNALS = ("NoneType", "sys.", "set_int_max_str_digits", "recursion", "codec", "position", "unicode string")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"null", "must be a JSON object, not null"),
        (b"[]", "must be a JSON object, not an array"),
        (b'"x"', "must be a JSON object, not a string"),
        (b"5", "must be a JSON object, not a number"),
        (b"", "the body is empty"),
        (body(doc(1)).replace(b"20261201", b"9" * 5000), "a number has more than 4300 digits"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deep"),
        (
            body(doc(1))[:-2] + b"," + b"[" * 300 + b"]" * 300 + b"]}",
            "nested too deep",
        ),  # pydantic's own limit
        (body(doc(1)).replace(b'"host-1"', b'"\\udfff"'), "\\udfff, half of a UTF-16 surrogate pair"),
        ('{"batch_id": 1}'.encode("utf-16"), "UTF-16 text; send it as UTF-8"),
        (b"\xef\xbb\xbf" + body(doc(1)), "UTF-8 byte order mark"),
        (b'{"batch_id": "\xff"}', "byte at offset 14 (0xff) is not UTF-8"),
        (b'{"batch_id": "\xed\xa0\x80"}', "byte at offset 14 (0xed) is not UTF-8"),
        (b'{"batch_id":', "not valid JSON: expecting value at line 1, column 13"),
        (b'{"batch_id": "abc', "not valid JSON: unterminated string starting at line 1, column 14"),
        (body(doc(1)).replace(b"20261201", b"Infinity"), "Infinity is not a JSON number"),
    ],
)
def test_json_errors_say_what_is_wrong_in_the_senders_terms(raw: bytes, says: str) -> None:
    message = refusal(raw)
    assert says in message, message
    assert not [w for w in INTERNALS if w in message], message


def test_an_unknown_event_field_is_not_a_field_of_an_event() -> None:
    d = doc(2)
    d["events"][1]["username"] = "alice"
    assert refusal(body(d)) == "telemetry batch: events[1].username is not a field of an event"
    assert (
        refusal(body(doc(1) | {"tenant": "t"}))
        == "telemetry batch: tenant is not a field of a telemetry batch"
    )


def test_event_times_are_checked_against_the_time_of_receipt() -> None:
    received = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    ok = parse_batch(
        body(doc(1) | {"events": [event(time="2026-12-02T12:00:00Z"), event(time="2000-01-01T00:00:00Z")]})
    )
    check_event_times(ok, received=received)
    for time_, says in [
        ("1999-12-31T23:59:59.999999Z", "events[0].time 1999-12-31T23:59:59.999999Z is before 2000-01-01"),
        ("2026-12-02T12:00:00.000001Z", "is more than a day after the batch was received"),
        ("2026-12-02T14:00:00+02:00", None),  # 12:00 UTC: a day exactly
    ]:
        late = parse_batch(body(doc(1) | {"events": [event(time=time_)]}))
        if says is None:
            check_event_times(late, received=received)
            continue
        with pytest.raises(FormatError, match=re.escape(says)):
            check_event_times(late, received=received)


def test_escapes_are_allowed_where_the_value_is_valid() -> None:
    raw = body(doc(1) | {"endpoint": 'host "one" \\ two'})
    assert b"\\" in raw
    assert parse_batch(raw).endpoint == 'host "one" \\ two'


def test_size_is_checked_before_parsing() -> None:
    valid = body(doc(1))
    padded = valid + b" " * (MAX_BATCH_BYTES - len(valid))  # JSON whitespace: still a valid batch
    assert parse_batch(padded).batch_id == parse_batch(valid).batch_id
    message = refusal(padded + b" ")
    assert f"{MAX_BATCH_BYTES + 1} bytes, more than the {MAX_BATCH_BYTES} allowed" in message


def test_at_most_max_events() -> None:
    d = doc(1)
    d["events"] = [event() for _ in range(MAX_EVENTS)]
    assert len(parse_batch(body(d)).events) == MAX_EVENTS
    d["events"].append(event())
    assert f"events must be a JSON array of 1 to {MAX_EVENTS} events" in refusal(body(d))


# -- fuzzing -----------------------------------------------------------------------------------------------

_FIELD = re.compile(r"^[ -~]+$")


def check_outcome(raw: bytes) -> None:
    """parse_batch either refuses with one short FormatError, or returns a batch that holds its schema and
    that the strict parser reads as unambiguous JSON."""
    try:
        batch = parse_batch(raw)
    except FormatError as e:
        message = str(e)
        assert message.startswith("telemetry batch") and len(message) < 400
        assert "pydantic" not in message and "For further information" not in message
        return
    load_object(raw, "fuzzed", max_size=MAX_BATCH_BYTES)  # accepted => no duplicate key, no NaN, ...
    assert 1 <= len(batch.events) <= MAX_EVENTS
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", batch.batch_id) and _FIELD.match(batch.endpoint)
    for ev in batch.events:
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{6}Z", ev.time)
        assert re.fullmatch(r"[0-9a-f]{64}", ev.file_sha256)
        assert ev.verdict in ("malicious", "suspicious", "clean")
        assert isinstance(ev.database_version, int) and 0 <= ev.database_version < 1 << 63


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_else(raw: bytes) -> None:
    check_outcome(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=6,
)
KEYS = [
    "batch_id",
    "endpoint",
    "events",
    "time",
    "file_sha256",
    "rule_id",
    "verdict",
    "database",
    "database_version",
]


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    """A valid batch, changed: a value replaced, a key dropped or added, a key duplicated (in the text, so
    that no dict merges it away), or bytes flipped, cut or inserted."""
    d = doc(draw(st.integers(1, 3)))
    target: dict[str, Any] = draw(st.sampled_from([d, *d["events"]]))
    key = draw(st.sampled_from(sorted(target)))
    how = draw(st.sampled_from(["replace", "drop", "add", "duplicate", "bytes"]))
    if how == "replace":
        target[key] = draw(
            json_values | st.sampled_from(["2026-12-01T10:00:00+25:00", HASH.upper(), "", 2**64])
        )
    elif how == "drop":
        del target[key]
    elif how == "add":
        target[draw(st.sampled_from([*KEYS, "x"]))] = draw(json_values)
    raw = json.dumps(d, ensure_ascii=draw(st.booleans())).encode()
    if how == "duplicate":
        name = json.dumps(draw(st.sampled_from(KEYS))).encode()
        value = json.dumps(draw(json_values)).encode()
        if draw(st.booleans()):
            name = name.replace(b'"e', b'"\\u0065', 1)  # the same key, spelled with an escape
        at = raw.index(b"{", draw(st.integers(0, raw.count(b"{") - 1))) + 1
        raw = raw[:at] + name + b":" + value + b"," + raw[at:]
    if how == "bytes":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + draw(st.binary(max_size=3)) + raw[at + draw(st.integers(0, 2)) :]
    return raw


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_batches())
def test_mutated_batches_are_refused_or_valid(raw: bytes) -> None:
    check_outcome(raw)
