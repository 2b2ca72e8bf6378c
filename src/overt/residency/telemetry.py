"""The telemetry batch: the body of ``POST /v1/telemetry``, its schema, limits and strict parser.

::

    {"batch_id": "<uuid, or 8-64 of A-Z a-z 0-9 _ ->", "endpoint": "<1-128 printable ASCII>",
     "events": [{"time": "2026-12-01T10:00:00Z", "file_sha256": "<64 lower-case hex>",
                 "rule_id": "<1-256 printable ASCII, no space>", "verdict": "malicious" | "suspicious" | "clean",
                 "database": "<1-128 of A-Z a-z 0-9 . _ ->", "database_version": <integer >= 0>}]}

1 to :data:`MAX_EVENTS` events, at most :data:`MAX_BATCH_BYTES`. :func:`parse_batch` checks the size
before it parses anything, refuses what JSON parsers disagree on (duplicate keys, NaN, lone surrogates, as
:func:`overt.jsonio.load_object` does), and validates the raw bytes with pydantic in strict mode
(``TypeAdapter.validate_json``): no coercion (``"5"`` is no integer, ``true`` no number), no unknown
field, times in RFC 3339 with seconds and a zone (``Z`` or ``±hh:mm``; ``-00:00``, "offset unknown", is
refused; the time is kept in UTC, to the microsecond). Every failure is one
:class:`~overt.errors.FormatError` naming the first bad field, such as ``telemetry batch: events[3].file_sha256
must be 64 lower-case hex digits``, in the sender's terms: what the JSON holds (:func:`_check_json`), never
the words of Python's codecs or of the parsers. More than :data:`MAX_EVENTS` events is such a schema error
too (HTTP 400, as for none); only a body over :data:`MAX_BATCH_BYTES` is "too large" (HTTP 413, at the edge).

:func:`check_event_times` is the check of a batch as received: every event time from :data:`EARLIEST_TIME`
to a day after its receipt (a later clock skew than that is an endpoint's wrong clock, and a year 0001 or
9999 would be aggregated under days no one asks for). It is not part of :func:`parse_batch`, which also
reads stored batches again (a migration, a backup) long after they were received.

Speed: a 1,000-event batch parses in about 2 ms here. Duplicate keys are ruled out by counting quotes
(:func:`_surely_unambiguous`) unless the body holds a backslash; only then is it parsed a second time.

Owns the wire format only: where a batch is stored is :mod:`overt.residency.stores`, who may send it is
the ingest edge's.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from overt import jsonio
from overt.errors import FormatError

MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_EVENTS = 5000
MAX_DATABASE_VERSION = (1 << 63) - 1  # a PostgreSQL bigint
VERDICTS = ("malicious", "suspicious", "clean")
EARLIEST_TIME = "2000-01-01T00:00:00.000000Z"  # no detection of an endpoint is older
MAX_CLOCK_AHEAD = timedelta(days=1)  # an event time at most this far after the batch was received

# The time of day is checked by the pattern (00:00:00 to 23:59:59: no leap second, as datetime has none); the
# date by :func:`_check_date`, once per distinct date.
_RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
# Only keys are cached while parsing: the values (file hashes, times) rarely repeat, and putting each into
# pydantic's string cache cost about a fifth of a batch's parse.
_STRICT = ConfigDict(strict=True, extra="forbid", cache_strings="keys")


@lru_cache(maxsize=4096)
def _check_date(text: str) -> None:
    """ValueError for a date that is no date (a month 13, a February 30); the events of a batch share a few
    dates, so each is checked once (a refused one is checked again each time: it fails the batch anyway)."""
    date.fromisoformat(text)


def _utc(text: str) -> str:
    """An RFC 3339 time (already matched by the pattern) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, in UTC: one
    spelling, fixed width, so that stored times sort as text; digits beyond microseconds are dropped."""
    if text.endswith("Z"):
        fraction = text[19:-1]
        _check_date(text[:10])
        return text[:19] + (fraction[:7].ljust(7, "0") if fraction else ".000000") + "Z"
    if text.endswith("-00:00"):
        raise ValueError("offset -00:00 says the zone is unknown")
    try:
        utc = datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
        raise ValueError("out of range") from e
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


UtcTime = Annotated[str, StringConstraints(pattern=_RFC3339), AfterValidator(_utc)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
BatchId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Endpoint = Annotated[str, StringConstraints(pattern=r"^[!-~](?:[ -~]{0,126}[!-~])?$")]
RuleId = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,256}$")]
DatabaseName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,128}$")]
DatabaseVersion = Annotated[int, Field(ge=0, le=MAX_DATABASE_VERSION)]
Verdict = Literal["malicious", "suspicious", "clean"]

# What each field must hold, in the words of the error messages.
_RULES = {
    "batch_id": "8 to 64 characters of A-Z, a-z, 0-9, '_' and '-' (a UUID will do)",
    "endpoint": "1 to 128 printable ASCII characters, not starting or ending with a space",
    "events": f"a JSON array of 1 to {MAX_EVENTS} events",
    "time": "an RFC 3339 time with seconds and a zone, such as 2026-12-01T10:00:00Z",
    "file_sha256": "64 lower-case hex digits",
    "rule_id": "1 to 256 printable ASCII characters without spaces",
    "verdict": "one of " + ", ".join(VERDICTS),
    "database": "1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
    "database_version": f"an integer from 0 to {MAX_DATABASE_VERSION}",
}


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class TelemetryEvent:
    """One detection on an endpoint: when, which file, which rule of which database, and the verdict."""

    time: UtcTime  # as received, in UTC: 2026-12-01T10:00:00.000000Z
    file_sha256: Sha256Hex
    rule_id: RuleId
    verdict: Verdict
    database: DatabaseName
    database_version: DatabaseVersion

    @property
    def moment(self) -> datetime:
        return datetime.fromisoformat(self.time)

    @property
    def day(self) -> str:
        """The UTC date of the event, ``YYYY-MM-DD``."""
        return self.time[:10]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "file_sha256": self.file_sha256,
            "rule_id": self.rule_id,
            "verdict": self.verdict,
            "database": self.database,
            "database_version": self.database_version,
        }


@dataclass(frozen=True, slots=True, kw_only=True, config=_STRICT)
class TelemetryBatch:
    """A batch of detections from one endpoint, stored whole or not at all under ``(tenant, batch_id)``."""

    batch_id: BatchId
    endpoint: Endpoint
    events: Annotated[tuple[TelemetryEvent, ...], Field(min_length=1, max_length=MAX_EVENTS)]

    @classmethod
    def from_bytes(cls, raw: bytes) -> TelemetryBatch:
        return parse_batch(raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "endpoint": self.endpoint,
            "events": [e.to_dict() for e in self.events],
        }

    def to_bytes(self) -> bytes:
        """Compact JSON, as a sender would post it (a stored batch keeps the bytes it was sent as)."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


_ADAPTER: TypeAdapter[TelemetryBatch] = TypeAdapter(TelemetryBatch)


def parse_batch(raw: bytes) -> TelemetryBatch:
    """Parse and validate a telemetry batch from the bytes received.

    Raises:
        FormatError: the body is too large, not JSON, ambiguous JSON, or does not match the schema; the
            message names the first bad field.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError("parse_batch takes the raw bytes of the body")
    if len(raw) > MAX_BATCH_BYTES:
        raise FormatError(f"telemetry batch is {len(raw)} bytes, more than the {MAX_BATCH_BYTES} allowed")
    raw = bytes(raw)
    try:
        batch = _ADAPTER.validate_json(raw)
    except ValidationError as e:
        _check_json(raw)  # a JSON error, in its words
        raise FormatError(f"telemetry batch: {describe_error(e.errors(include_url=False)[0])}") from None
    if not _surely_unambiguous(raw, batch):
        _check_json(raw)  # duplicate keys, lone surrogates
    return batch


def check_event_times(batch: TelemetryBatch, *, received: datetime) -> None:
    """Refuse a batch received at ``received`` with an event time before :data:`EARLIEST_TIME` or more than
    :data:`MAX_CLOCK_AHEAD` after ``received`` (the first such event is named).

    Raises:
        FormatError: an event time is out of that range.
    """
    latest = (received.astimezone(UTC) + MAX_CLOCK_AHEAD).isoformat(timespec="microseconds")[:-6] + "Z"
    for i, e in enumerate(batch.events):  # one spelling, fixed width: text order is time order
        if e.time < EARLIEST_TIME:
            raise FormatError(
                f"telemetry batch: events[{i}].time {e.time} is before {EARLIEST_TIME[:10]}: no endpoint "
                "detected anything then; check the endpoint's clock"
            )
        if e.time > latest:
            raise FormatError(
                f"telemetry batch: events[{i}].time {e.time} is more than a day after the batch was received "
                f"({latest[:19]}Z is the latest accepted): check the endpoint's clock"
            )


# -- JSON errors in the sender's terms ----------------------------------------------------------------------

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_KINDS = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}


class _Refusal(Exception):
    """Raised inside the parser's hooks; turned into the FormatError of :func:`_check_json`."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    try:
        return jsonio.no_duplicate_keys(pairs)
    except FormatError as e:
        raise _Refusal(str(e)) from None


def _no_constant(name: str) -> Any:
    raise _Refusal(f"{name} is not a JSON number (NaN and infinities are not allowed)")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _KINDS.get(type(value), "a value")


def _check_json(raw: bytes) -> None:
    """Return if ``raw`` is one strict JSON object; else raise a FormatError saying what is wrong with it.

    Strict as :func:`overt.jsonio.load_object` is (duplicate keys, NaN and infinities, lone surrogates are
    refused), with messages in the sender's terms.
    """
    text = _utf8_text(raw)
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Refusal as e:
        raise FormatError(f"telemetry batch: {e}") from None
    except json.JSONDecodeError as e:
        what = e.msg.removesuffix(" at")
        raise FormatError(
            f"telemetry batch is not valid JSON: {what[:1].lower()}{what[1:]} at line {e.lineno}, column "
            f"{e.colno}"
        ) from None
    except RecursionError:
        raise FormatError(f"telemetry batch: {_TOO_DEEP}") from None
    except ValueError:  # only the limit on digits is a ValueError that is no JSONDecodeError
        raise FormatError(
            f"telemetry batch: a number has more than {sys.get_int_max_str_digits()} digits"
        ) from None
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(obj)
    if not isinstance(obj, dict):
        raise FormatError(f"telemetry batch must be a JSON object, not {_kind(obj)}")


_TOO_DEEP = "arrays and objects are nested too deep (a batch is an object holding an array of event objects)"


def _utf8_text(raw: bytes) -> str:
    if not raw.strip():
        raise FormatError("telemetry batch is not valid JSON: the body is empty")
    if raw.startswith(codecs.BOM_UTF8):
        raise FormatError(
            "telemetry batch is not valid JSON: the body starts with a UTF-8 byte order mark; send the JSON "
            "without it"
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FormatError("telemetry batch is not valid JSON: the body is UTF-16 text; send it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(
            f"telemetry batch is not valid JSON: it is sent as UTF-8 text, and the byte at offset {e.start} "
            f"(0x{raw[e.start]:02x}) is not UTF-8 there"
        ) from None


def _check_surrogates(value: Any) -> None:
    """Refuse a string or key holding half of a UTF-16 surrogate pair (an escape such as \\ud800 alone)."""
    if isinstance(value, str):
        for c in value:
            if "\ud800" <= c <= "\udfff":
                raise FormatError(
                    f"telemetry batch: a string holds the escape \\u{ord(c):04x}, half of a UTF-16 surrogate "
                    "pair without its other half, which is no character"
                )
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_surrogates(k)
            _check_surrogates(v)
    elif isinstance(value, list):
        for v in value:
            _check_surrogates(v)


def _surely_unambiguous(raw: bytes, batch: TelemetryBatch) -> bool:
    """True if ``raw``, which validated as ``batch``, has no duplicate key; False if it may have.

    Without a backslash every '"' delimits a string. A valid batch then holds exactly 5 + 11n strings
    (3 + 6n keys; batch_id, endpoint and five string values per event): every key is a known one (unknown
    keys are refused), every known key is there, and each kept value of a string field is one string. A
    duplicate key adds at least its own string, so the count is exact only without duplicates. With a
    backslash the full strict parse decides (:func:`overt.jsonio.load_object`): it costs a millisecond
    per thousand events, this count a few microseconds.
    """
    return b"\\" not in raw and raw.count(b'"') == 2 * (5 + 11 * len(batch.events))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_error(error: Any) -> str:
    """One pydantic error as a sentence naming the field, with what it must hold (no pydantic wording)."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    where = _path(loc) or "the batch"
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "json_invalid":  # strict JSON (checked first) that pydantic's parser does not take: its depth
        return _TOO_DEEP
    if kind == "missing":
        return f"{where} is missing"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        of = "an event" if any(isinstance(p, int) for p in loc) else "a telemetry batch"
        return f"{where} is not a field of {of}"
    if kind in ("dataclass_type", "dataclass_exact_type", "model_type", "dict_type"):
        return f"{where} must be a JSON object"
    if field in _RULES and not (field == "events" and loc[-1] != "events"):
        return f"{where} must be {_RULES[field]}"
    return f"{where} is not valid"
