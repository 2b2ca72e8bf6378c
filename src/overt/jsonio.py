"""Strict JSON in, deterministic JSON out: the one JSON codec of the attestation and key formats.

Parsing refuses what JSON parsers disagree on (duplicate keys, NaN and infinities, lone surrogates, a top
level that is not an object) and anything larger than the caller's limit, and it raises
:class:`overt.errors.FormatError` for all of it. Writing sorts keys and uses no insignificant whitespace, so
the same value always serialises to the same bytes.

Field accessors (``req_str``, ``opt_dict``, ...) turn a missing or mistyped field into a FormatError that
names the field. They do not know any schema; the wire types do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from overt.errors import FormatError

MAX_DOCUMENT = 1 << 20
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook`` that refuses an object naming a key twice (FormatError)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise FormatError(f"duplicate JSON key {k[:64]!r}")
            seen.add(k)
    return out


def _no_constant(name: str) -> Any:
    raise FormatError(f"JSON value {name} is not allowed")


def load_object(data: bytes, what: str, *, max_size: int = MAX_DOCUMENT) -> dict[str, Any]:
    """Parse ``data`` as one JSON object."""
    if len(data) > max_size:
        raise FormatError(f"{what} is {len(data)} bytes, more than the {max_size} allowed")
    try:
        text = data.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=no_duplicate_keys, parse_constant=_no_constant)
        # Lone surrogates can only come from \ud800-style escapes; they cannot be re-encoded as UTF-8.
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except FormatError as e:
        raise FormatError(f"{what}: {e}") from e
    except (UnicodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{what} is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise FormatError(f"{what} must be a JSON object, not {type(obj).__name__}")
    return obj


def dump(obj: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no whitespace."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def req_str(obj: Mapping[str, Any], key: str, what: str, *, allow_empty: bool = False) -> str:
    if key not in obj:
        raise FormatError(f"{what}: missing required field {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        raise FormatError(f"{what}: field {key!r} must be a string")
    if not value and not allow_empty:
        raise FormatError(f"{what}: field {key!r} must not be empty")
    return value


def opt_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise FormatError(f"{what}: field {key!r} must be a string")
    return value


def opt_dict(obj: Mapping[str, Any], key: str, what: str) -> dict[str, Any]:
    value = obj.get(key, {})
    if not isinstance(value, dict):
        raise FormatError(f"{what}: field {key!r} must be an object")
    return value


def req_dict(obj: Mapping[str, Any], key: str, what: str) -> dict[str, Any]:
    if key not in obj:
        raise FormatError(f"{what}: missing required field {key!r}")
    return opt_dict(obj, key, what)


def opt_list(obj: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise FormatError(f"{what}: field {key!r} must be an array")
    return value


def str_map(value: Mapping[str, Any], what: str) -> dict[str, str]:
    """A JSON object whose values are all strings (a DigestSet, a version map, annotations of strings)."""
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise FormatError(f"{what}: value of {k!r} must be a string")
        out[k] = v
    return out
