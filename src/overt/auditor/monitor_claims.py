"""The jurisdictions a logged statement names, as :func:`overt.keys.claims.foreign_claims` finds them, fast.

foreign_claims walks every name and string of a statement (30-70 µs); the monitor reads tens of thousands of
entries a second. :func:`claims_of` asks foreign_claims only about what can hold a claim, and foreign_claims
decides; it never decides anything itself. The fast path is exact for a *plain* payload (see
:func:`plain_claims`); anything else takes foreign_claims's full walk. This module judges nothing: the
monitor's judge compares the claims with the signing key's record (:mod:`overt.auditor.monitor_judge`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterator

from overt.attest.statement import ResourceDescriptor, Statement
from overt.errors import FormatError
from overt.keys.claims import WORD, foreign_claims, word_pattern

# A JSON string holding only base64 characters, at least 8, maybe padded. In a plain payload (valid JSON
# without a backslash) every '"' delimits a string and no two strings touch, so this finds every such string.
# Which of them have a length base64 can have is :func:`_base64_text`'s test.
_B64_STRING = re.compile(r'"([A-Za-z0-9+/]{8,}={0,2})"')
_PLACEHOLDER = (ResourceDescriptor(name="x", digest={"sha256": "0" * 64}),)
# A value no claim can equal: foreign_claims(statement, NO_JURISDICTION) lists every claim in the statement.
NO_JURISDICTION = "\x00"


@functools.cache
def _word() -> re.Pattern[str]:
    return re.compile(word_pattern(), re.IGNORECASE)


@functools.cache
def _word_starts() -> str:
    """The ASCII characters a match of the word can start with: those its first look-alike class matches
    (the rest of the word, as written, matches the rest of the pattern)."""
    word = _word()
    return "".join(c for c in map(chr, range(128)) if word.fullmatch(c + WORD[1:]))


def _word_matches(text: str) -> Iterator[re.Match[str]]:
    """``_word().finditer(text)`` for an ASCII ``text``: every match starts at one of :func:`_word_starts`,
    found with ``str.find`` (the regular expression's scan of every position costs more than the rest)."""
    starts = []
    for c in _word_starts():
        i = text.find(c)
        while i >= 0:
            starts.append(i)
            i = text.find(c, i + 1)
    word = _word()
    end = 0
    for i in sorted(starts):
        if i >= end and (m := word.match(text, i)) is not None:
            end = m.end()
            yield m


@functools.lru_cache(maxsize=4096)
def _string_claims(value: str) -> tuple[str, ...]:
    """What foreign_claims finds in one string value (statements repeat a few, such as a builder id)."""
    statement = Statement(subject=_PLACEHOLDER, predicate_type="x", predicate={"v": value})
    return tuple(v for _, v in foreign_claims(statement, NO_JURISDICTION))


@functools.lru_cache(maxsize=4096)
def _base64_text(value: str) -> bool:
    """Whether foreign_claims would read ``value`` as base64 of UTF-8 text (field names repeat: cached)."""
    if len(value) % 4:
        return False  # never valid base64 (padding included)
    try:
        base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return True


def plain_claims(text: str) -> list[tuple[str, str]] | None:
    """Claims of a plain payload ``text`` (see :func:`claims_of`), or None when it needs the full walk."""
    if not text.isascii() or "\\" in text or "%" in text or "&" in text:
        return None
    if any(map(_base64_text, _B64_STRING.findall(text))):
        return None  # base64 of text: foreign_claims reads the text inside
    found: list[tuple[str, str]] = []
    judged: set[int] = set()  # where each string judged starts: a string holding the word twice is read once
    for m in _word_matches(text):
        if '"' in m.group():
            return None  # the letters span two strings: let foreign_claims read them one by one
        start = text.rfind('"', 0, m.start())
        end = text.find('"', m.end())
        if start < 0 or end < 0 or text.count('"', 0, start) % 2:
            return None
        if text[end + 1 :].lstrip().startswith(":"):
            return None  # a field name: its value is judged with it
        if start in judged:
            continue
        judged.add(start)
        value = text[start + 1 : end]
        found.extend((f"string {value[:80]}", v) for v in _string_claims(value))
    return found


def claims_of(statement: Callable[[], Statement], text: str) -> list[tuple[str, str]]:
    """(where, value) for every jurisdiction ``statement`` names (``text``: its JSON, which parsed), as
    ``foreign_claims(statement, J)`` finds them for any J once the values equal to J are dropped.

    Fast and exact for a plain payload: ASCII (no look-alike letters), without backslashes (no JSON escapes,
    so every string is a substring of the payload), ``%`` or ``&`` (no percent or HTML escapes), and without a
    string that is base64 of text. Then only a string holding the word (the same look-alike pattern
    foreign_claims uses, searched over the whole payload) can hold a claim, and each such string is judged
    by foreign_claims alone. Anything else (a field name holding the word, an escape, base64 text) takes
    foreign_claims's full walk of the statement.
    """
    plain = plain_claims(text)
    if plain is not None:
        return plain
    try:
        return foreign_claims(statement(), NO_JURISDICTION)
    except FormatError:
        return []  # a statement overt's parser refuses is refused by every verifier: it names nothing
