"""Finding claims of a jurisdiction in a statement, however they are spelt: step 5 of the signing policy.

A statement may not name another jurisdiction than the signing key's, anywhere. A claim can hide in a field
name or in a string, so every name and every string is read as a person or a lenient parser would read it:

1. **What a reader sees.** Each character is decomposed (NFKD: fullwidth and mathematical letters become
   ASCII); combining marks (``s`` + U+0323 reads as ``ṣ``, and as ``s``), format characters and the other
   default-ignorable code points (zero-width spaces, variation selectors, Hangul fillers) are dropped.
2. **Look-alike letters.** The word ``jurisdiction`` is matched letter by letter, each letter by itself, its
   capital, and every character Unicode's ``confusables.txt`` (UTS #39) lists as its look-alike, taken from
   the ``confusable-homoglyphs`` package: Cyrillic ``о``, Greek ``ι``, Armenian ``ո`` and the rest. A few
   Cyrillic and Greek letters that confusables.txt maps to small capitals rather than to the Latin letter
   (``т``, ``τ``, ``п``, ``η``) are added by hand (:data:`EXTRA_LOOKALIKES`). Separators between the letters
   (``juris_diction``, ``j-u-r-i-s…``) are skipped.
3. **Escapes.** Percent- and HTML-escapes are decoded, repeatedly, and every stage is read.
4. **Text inside text.** A string that is base64 of UTF-8 text is read as that text too; a string that is a
   JSON object or array is parsed and walked like the statement itself, duplicate keys included (every value
   of a repeated key is read, whichever one a consumer keeps).

Values are never read through the look-alike table: a field's value is compared as written, a parameter's
as decoded, so a look-alike of the key's own jurisdiction (Cyrillic ``СН``) is not that jurisdiction. This module judges nothing else; :mod:`overt.keys.jurisdiction` turns claims into refusals.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any
from urllib import parse

from overt.attest.statement import Statement
from overt.errors import FormatError

MAX_DECODING_ROUNDS = 8
MAX_EMBEDDED_CHARS = 8 << 20  # JSON parsed out of the strings of one statement, at every stage and depth
MAX_EMBEDDED_DEPTH = 8  # JSON inside a string inside JSON inside a string ...
WORD = "jurisdiction"

# Look-alikes that confusables.txt maps elsewhere (to small capitals or to nothing) but that read as the
# Latin letter in common fonts.
EXTRA_LOOKALIKES: Mapping[str, str] = {"t": "\u0442\u03c4", "n": "\u043f\u03b7"}  # т τ, п η
# The capital I is drawn like l, and confusables.txt maps it (and Greek Ι, Cyrillic Ӏ) to l: for i, take l's.
_ALSO_LOOKS_LIKE: Mapping[str, str] = {"i": "Il"}

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt): invisible in every rendering. Most are
# format characters (Cf), dropped by category; these are the ones that are not, or are listed for clarity.
_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_DROPPED_CATEGORIES = frozenset({"Mn", "Mc", "Me", "Cf"})


def _ignorable(c: str) -> bool:
    if unicodedata.category(c) in _DROPPED_CATEGORIES:
        return True
    point = ord(c)
    return any(lo <= point <= hi for lo, hi in _IGNORABLE_RANGES)


@functools.lru_cache(maxsize=65536)
def _seen_char(c: str) -> str:
    return "".join(d for d in unicodedata.normalize("NFKD", c) if not _ignorable(d))


def visible(text: str) -> str:
    """Step 1: ``text`` as a reader sees it, compatibility-decomposed, without marks or invisible characters."""
    if text.isascii():
        return text
    return "".join(map(_seen_char, text))


def _lookalikes(letter: str) -> set[str]:
    """``letter``, its capital and their look-alikes, as :func:`visible` leaves them; letters and digits only,
    so no look-alike can also be a separator."""
    # Imported here: loading its table takes tens of milliseconds, which only a judgement should pay.
    from confusable_homoglyphs import confusables

    found = {letter, letter.upper()}
    for source in (letter, letter.upper(), *_ALSO_LOOKS_LIKE.get(letter, "")):
        found.add(source)
        for hit in confusables.is_confusable(source, greedy=True) or []:
            found.update(h["c"] for h in hit["homoglyphs"])
    found.update(EXTRA_LOOKALIKES.get(letter, ""))
    seen = {visible(c) for c in found}
    return {c for c in seen if len(c) == 1 and c.isalnum()}


@functools.cache
def word_pattern() -> str:
    """Step 2: a regular expression for the word, each letter a class of its look-alikes, with separators."""
    classes = ["[" + "".join(re.escape(c) for c in sorted(_lookalikes(letter))) + "]" for letter in WORD]
    return r"[\W_]*".join(classes)


@functools.cache
def _word() -> re.Pattern[str]:
    return re.compile(word_pattern(), re.IGNORECASE)


@functools.cache
def _claim() -> re.Pattern[str]:
    # A claim: the word, the rest of a parameter name (``jurisdictions``, ``jurisdiction[]``,
    # ``jurisdiction.code``), a separator (= : or a path slash, maybe quoted as in JSON), and the value up to
    # the next URL delimiter or quote.
    return re.compile(word_pattern() + r"[\w\[\].\-]*[\"'\s]*[=:/][\"'\s]*([^&#?/@\s\"']*)", re.IGNORECASE)


def decodings(text: str) -> Iterator[str]:
    """Step 3: ``text`` as seen, and each stage of decoding percent- and HTML-escapes, until nothing changes."""
    current = visible(text)
    yield current
    for _ in range(MAX_DECODING_ROUNDS):
        decoded = visible(html.unescape(parse.unquote(current)))
        if decoded == current:
            return
        current = decoded
        yield current
    raise FormatError(f"a string is escaped more than {MAX_DECODING_ROUNDS} times over")


def names_jurisdiction(name: str) -> bool:
    """Whether a field name says ``jurisdiction``, in any case, spelling, escaping or spacing."""
    return any(_word().search(stage) for stage in decodings(name))


def _claims_in(stage: str) -> list[str]:
    return [m.group(1) for m in _claim().finditer(stage)] if _word().search(stage) else []


class _Pairs(list[tuple[str, Any]]):
    """A JSON object found inside a string, as its list of (key, value) pairs: a repeated key keeps every
    value, so none can hide behind another."""


def _base64_text(value: str) -> str | None:
    if len(value) < 8:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _pointer(path: str, key: str | int) -> str:
    """RFC 6901 JSON Pointer of a child: one spelling for where a claim sits."""
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _shown(value: Any) -> str:
    return (value if isinstance(value, str) else json.dumps(value, sort_keys=True))[:64]


class _Walk:
    """Every (pointer, key, value) of a document and of the JSON documents inside its strings, depth-first,
    iteratively (depth cannot exhaust the stack). Claims inside a string are reported at that string."""

    def __init__(self, jurisdiction: str) -> None:
        self.jurisdiction = jurisdiction
        self.found: list[tuple[str, str]] = []
        self.embedded_chars = 0
        self.stack: list[tuple[str, str | None, Any, int]] = []

    def run(self, root: Any) -> list[tuple[str, str]]:
        self.stack.append(("", None, root, 0))
        while self.stack:
            where, key, value, depth = self.stack.pop()
            if key is not None:
                self._check_name(where, key, value)
            if isinstance(value, _Pairs):
                self._push([(where, k, v) for k, v in value], depth)
            elif isinstance(value, Mapping):
                self._push([(_pointer(where, k), str(k), v) for k, v in value.items()], depth)
            elif isinstance(value, list | tuple):
                self._push([(_pointer(where, i), None, v) for i, v in enumerate(value)], depth)
            elif isinstance(value, str):
                self._check_string(where, value, depth)
        return self.found

    def _push(self, children: list[tuple[str, str | None, Any]], depth: int) -> None:
        self.stack.extend((w, k, v, depth) for w, k, v in reversed(children))

    def _check_name(self, where: str, key: str, value: Any) -> None:
        if names_jurisdiction(key) and value != self.jurisdiction:
            self.found.append((where, _shown(value)))
        self.found.extend(
            (where, c[:64]) for s in decodings(key) for c in _claims_in(s) if c != self.jurisdiction
        )

    def _check_string(self, where: str, value: str, depth: int) -> None:
        texts = [value]
        if (decoded := _base64_text(value)) is not None:
            texts.append(decoded)
        for text in texts:
            for stage in decodings(text):
                self.found.extend((where, c[:64]) for c in _claims_in(stage) if c != self.jurisdiction)
                inner = self._embedded_json(stage, depth)
                if inner is not None:
                    self.stack.append((where, None, inner, depth + 1))

    def _embedded_json(self, stage: str, depth: int) -> Any | None:
        """The JSON object or array ``stage`` is, if it is one (step 4), within the limits."""
        if stage.lstrip()[:1] not in ("{", "["):
            return None
        self.embedded_chars += len(stage)
        if self.embedded_chars > MAX_EMBEDDED_CHARS:
            raise FormatError(
                f"the statement holds more than {MAX_EMBEDDED_CHARS} characters of JSON in strings"
            )
        try:
            inner = json.loads(stage, object_pairs_hook=_Pairs)
        except (ValueError, RecursionError):
            return None  # not JSON: read as text only
        if depth >= MAX_EMBEDDED_DEPTH:
            raise FormatError(f"the statement nests JSON inside strings more than {MAX_EMBEDDED_DEPTH} deep")
        return inner


def foreign_claims(statement: Statement, jurisdiction: str) -> list[tuple[str, str]]:
    """(pointer, claimed value) for every place the statement names a jurisdiction other than ``jurisdiction``.

    Walks subjects and predicate. A field named like ``jurisdiction`` must hold exactly ``jurisdiction`` (a
    list, an object or a number is no agreement); any string, and any field name, that carries a
    ``jurisdiction`` parameter must give exactly ``jurisdiction`` as its value.

    Raises:
        FormatError: the statement cannot be read (escaped or nested past the limits).
    """
    doc = {"subject": [s.to_dict() for s in statement.subject], "predicate": dict(statement.predicate)}
    return _Walk(jurisdiction).run(doc)
