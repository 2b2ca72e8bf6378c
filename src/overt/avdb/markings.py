"""Classification markings as data, and the marking corpus the rule auditor scans rule patterns against.

Owns reading a marking list (the packaged ``markings.toml``, or a user's own list: the same TOML schema, or a
plain text file with one marking per line) and turning it into every form a document carries a marking in:

* each spelling (the marking and its variants) as written, in upper case and, where documents write it so, in
  Title Case;
* its words joined by a space, nothing, a hyphen, an underscore, two spaces or a line break;
* in each encoding documents of its language use (UTF-8, UTF-16LE/BE, and CP1251, KOI8, CP1252, GB18030, Big5,
  Shift_JIS, EUC-JP or CP949 by language);
* base64 of each of those at offsets 0, 1 and 2, as MIME mail carries it (the span is the part of the base64
  text that the marking alone decides, which is what a base64 pattern can match).

Every form is followed by a *decoy*: the same form with its letters rotated (ROT13 for Latin, the same shift
inside Cyrillic, the next code point for CJK), so a generic pattern (``/[A-Z]{6}/``) that matches a marking
only because of its shape can be told from one that hunts the marking: it matches the decoy too.

What a rule pattern matches in the corpus is :mod:`overt.avdb.patterns`; this module does no matching.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import stat
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from overt.errors import FormatError, UsageError
from overt.files import read_regular_file

WORD = "word"
USER = "user"  # the class of a plain-text list's markings
NONE = "none"
BOUNDARIES = (WORD, NONE)
MAX_FILE = 1 << 20
MAX_MARKINGS = 10_000
MAX_TEXT = 200
_KEYS = {"text", "language", "class", "variants", "boundary", "title", "ordinary"}
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")
# Word gaps inside a spelling (space, hyphen, " - "); slashes and dots are part of a marking ("TS//SCI").
_GAP = re.compile(r"(?<=\w)(?:\s+-\s+|\s+|-)(?=\w)")
SEPARATORS = ((" ", "space"), ("", "no separator"), ("-", "hyphen"), ("_", "underscore"),
              ("  ", "double space"), ("\n", "line break"))  # fmt: skip
_BASE64_SEPARATORS = ("as written", "space", "no separator", "hyphen", "underscore")
# Text a document has around a marking; in the corpus it sits between forms, in the form's own encoding.
CONTEXT = " \n "
_UNICODE = ("UTF-8", "UTF-16LE", "UTF-16BE")
ENCODINGS = {
    "en": _UNICODE,
    "de": (*_UNICODE, "CP1252"),
    "fr": (*_UNICODE, "CP1252"),
    "es": (*_UNICODE, "CP1252"),
    "ru": (*_UNICODE, "CP1251", "KOI8-R", "CP866", "ISO-8859-5"),
    "uk": (*_UNICODE, "CP1251", "KOI8-U", "CP866", "ISO-8859-5"),
    "zh": (*_UNICODE, "GB18030", "Big5"),
    "ja": (*_UNICODE, "Shift_JIS", "EUC-JP"),
    "ko": (*_UNICODE, "CP949"),
}
# A language not listed (a user's list): every encoding that can write the text.
_ANY = (*_UNICODE, "CP1252", "CP1251", "KOI8-R", "GB18030", "Big5", "Shift_JIS", "CP949")
_CODEC = {"UTF-16LE": "utf-16-le", "UTF-16BE": "utf-16-be"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Marking:
    """One marking: its canonical text (named in findings), language, class and other spellings."""

    text: str
    language: str
    klass: str  # "class" in the file
    variants: tuple[str, ...] = ()
    boundary: str = WORD
    title: bool | None = None  # None: Title Case for spellings of more than one word
    # an ordinary word of its language too (SECRET, CONFIDENTIAL): inside longer text ("YOUR SECRET KEY:") it
    # is prose, so the literal layer counts it only where it is most of the pattern
    ordinary: bool = False

    def __post_init__(self) -> None:
        for s in (self.text, *self.variants):
            _check_text(s, self.text)
        if self.boundary not in BOUNDARIES:
            raise FormatError(
                f"marking {self.text!r}: boundary must be 'word' or 'none', not {self.boundary!r}"
            )

    def spellings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.text, *self.variants)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Form:
    """One spelling of a marking in one encoding: the needle the literal checks search pattern bytes for."""

    marking: Marking
    spelling: str  # the text, with its case and separator
    encoding: str  # "UTF-8", "UTF-16LE", ...
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """Where one form of a marking sits in the corpus blob; ``decoy`` spans hold its rotated twin."""

    start: int
    end: int
    form: Form
    label: str  # the encoding as a document carries it: "UTF-16LE", "base64 of UTF-8 at offset 1"
    key: int  # the same for a form and its decoy
    outer: tuple[
        int, int
    ]  # the form's entry with the text around it: a match reaching beyond is not about it
    decoy: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Corpus:
    """Every form of every marking in one blob, with the spans that map an offset back to a marking."""

    data: bytes
    spans: tuple[Span, ...]  # sorted by start, disjoint
    starts: tuple[int, ...]  # each span's start, for bisect


@dataclass(frozen=True, slots=True, kw_only=True)
class Markings:
    """A marking list: the packaged one, or a customer's own (their codenames never leave their machine)."""

    entries: tuple[Marking, ...]
    origin: str  # "packaged markings.toml" or the user's file path

    def __post_init__(self) -> None:
        if not self.entries:
            raise FormatError(f"{self.origin}: the marking list is empty")

    def forms(self) -> tuple[Form, ...]:
        """Every spelling in every case, separator and encoding (no base64): the literal checks' needles."""
        return _forms(self)

    def corpus(self) -> Corpus:
        """The marking corpus (built once per list and kept)."""
        return _corpus(self)


def _check_text(s: object, owner: object) -> None:
    if not isinstance(s, str) or not s.strip():
        raise FormatError(f"marking {owner!r}: every spelling must be a non-empty text")
    if len(s) > MAX_TEXT:
        raise FormatError(f"marking {s[:40]!r}...: longer than {MAX_TEXT} characters")
    if len(s.strip()) < 2:
        raise FormatError(f"marking {s!r}: shorter than 2 characters, it would match almost anything")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in s):
        raise FormatError(f"marking {s!r}: holds a control character")


# --- loading -----------------------------------------------------------------------------------------------


def load_markings(path: Path | None = None) -> Markings:
    """The packaged markings (``path`` None), or a user's list: TOML in the packaged schema, or plain text.

    A plain text list holds one marking per line; blank lines and lines starting with ``#`` are skipped.
    Raises FormatError with the file and the problem on anything else.
    """
    if path is None:
        data = resources.files("overt.avdb").joinpath("markings.toml").read_bytes()
        return parse_markings(data, origin="packaged markings.toml", toml=True)
    data = _read_list(path)
    return parse_markings(data, origin=str(path), toml=None if path.suffix != ".toml" else True)


def combined(first: Markings, *more: Markings) -> Markings:
    """One list of several (the packaged list and a customer's own); the first spelling of a text wins."""
    entries: dict[str, Marking] = {}
    for m in (first, *more):
        for e in m.entries:
            entries.setdefault(e.text, e)
    return Markings(entries=tuple(entries.values()), origin=" + ".join(m.origin for m in (first, *more)))


def _read_list(path: Path) -> bytes:
    """A regular file, or a pipe handed over as ``/dev/fd/N`` (``--markings <(pass show codenames)``, so the list
    need not be on disk); a named FIFO or a device would block or never end, so it is refused."""
    try:
        piped = str(path).startswith(("/dev/fd/", "/proc/self/fd/", "/dev/stdin")) and stat.S_ISFIFO(
            os.stat(path).st_mode
        )
        if piped:
            with path.open("rb") as f:
                return f.read(MAX_FILE + 1)
    except OSError as e:
        raise FormatError(f"{path}: cannot read the marking list: {e.strerror or e}") from e
    try:
        return read_regular_file(path, limit=MAX_FILE + 1)
    except UsageError as e:
        raise FormatError(f"cannot read the marking list: {e}") from e


def parse_markings(data: bytes, *, origin: str, toml: bool | None = None) -> Markings:
    """A marking list from bytes; ``toml`` None decides by content (a ``[[marking]]`` table means TOML)."""
    if len(data) > MAX_FILE:
        raise FormatError(f"{origin}: a marking list may hold at most {MAX_FILE} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"{origin}: not UTF-8 (byte {e.start})") from e
    if toml is None:
        toml = re.search(r"(?m)^\s*\[\[\s*marking\s*\]\]", text) is not None
    entries = _from_toml(text, origin) if toml else _from_lines(text, origin)
    if len(entries) > MAX_MARKINGS:
        raise FormatError(f"{origin}: more than {MAX_MARKINGS} markings")
    return Markings(entries=tuple(entries), origin=origin)


def _from_lines(text: str, origin: str) -> list[Marking]:
    out: dict[str, Marking] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.setdefault(line, _user_marking(line))
        except FormatError as e:
            raise FormatError(f"{origin}:{n}: {e}") from e
    return list(out.values())


def _user_marking(text: str) -> Marking:
    cjk = any(_is_cjk(c) for c in text)
    return Marking(text=text, language="und", klass=USER, boundary=NONE if cjk else WORD)


def _from_toml(text: str, origin: str) -> list[Marking]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FormatError(f"{origin}: not valid TOML: {e}") from e
    if set(doc) != {"marking"} or not isinstance(doc["marking"], list):
        raise FormatError(f"{origin}: expected only [[marking]] tables, found {sorted(doc)[:5]}")
    out: list[Marking] = []
    for n, entry in enumerate(doc["marking"], 1):
        try:
            out.append(_toml_marking(entry))
        except FormatError as e:
            raise FormatError(f"{origin}: marking {n}: {e}") from e
    return out


def _toml_marking(entry: Any) -> Marking:
    if not isinstance(entry, dict):
        raise FormatError("not a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise FormatError(f"unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
    for key in ("text", "language", "class"):
        if not isinstance(entry.get(key), str):
            raise FormatError(f"'{key}' must be a text")
    if not _LANGUAGE.fullmatch(entry["language"]):
        raise FormatError(f"language {entry['language']!r} is not a language code such as 'en' or 'ru'")
    if not entry["class"].strip() or len(entry["class"]) > 40:
        raise FormatError("'class' must be a short non-empty text")
    variants = entry.get("variants", [])
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        raise FormatError("'variants' must be a list of texts")
    boundary, title = entry.get("boundary", WORD), entry.get("title")
    if not isinstance(boundary, str):
        raise FormatError("'boundary' must be 'word' or 'none'")
    if title is not None and not isinstance(title, bool):
        raise FormatError("'title' must be true or false")
    ordinary = entry.get("ordinary", False)
    if not isinstance(ordinary, bool):
        raise FormatError("'ordinary' must be true or false")
    return Marking(
        text=entry["text"],
        language=entry["language"],
        klass=entry["class"],
        variants=tuple(variants),
        boundary=boundary,
        title=title,
        ordinary=ordinary,
    )


# --- forms -------------------------------------------------------------------------------------------------


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or o >= 0x20000


def title_case(s: str) -> str:
    """``TOP SECRET`` as documents title it: ``Top Secret``; short tokens (``VS``, ``TS//SCI``) stay as they are."""
    return re.sub(r"\w+", lambda m: m.group() if len(m.group()) <= 2 else m.group().capitalize(), s)


def cased(marking: Marking, spelling: str) -> tuple[str, ...]:
    words = len(_GAP.split(spelling))
    title = marking.title if marking.title is not None else words > 1
    out = [spelling, spelling.upper()]
    if title or marking.klass == USER:
        out.append(title_case(spelling))
    if words > 1:  # "top secret", "совершенно секретно": a phrase in lower case is still the marking
        out.append(spelling.lower())
    if marking.klass == USER:  # a codename is written however its authors like
        out.append(spelling.lower())
    return tuple(dict.fromkeys(out))


def separated(spelling: str) -> Iterator[tuple[str, str]]:
    """The spelling with its word gaps as each separator, and the separator's name; then as typography writes
    it: letter-spaced (``S E C R E T``), in full-width Latin (``ＳＥＣＲＥＴ``, as CJK documents set it) and
    with its accents decomposed (``FU\u0308R``)."""
    seen = {spelling}
    yield spelling, "as written"
    for sep, name in SEPARATORS:
        s = _GAP.sub(sep, spelling)
        if s not in seen:
            seen.add(s)
            yield s, name
    for s, name in _typeset(spelling):
        if s not in seen:
            seen.add(s)
            yield s, name


LETTER_SPACED_MAX = 24  # characters: a letter-spaced banner is short


def _typeset(spelling: str) -> Iterator[tuple[str, str]]:
    letters = [c for c in spelling if not c.isspace()]
    if 2 < len(letters) <= LETTER_SPACED_MAX and all(c.isalpha() for c in letters):
        yield " ".join(letters), "letter-spaced"
    if spelling.isascii():
        wide = "".join(
            "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in spelling
        )
        yield wide, "full-width"
    decomposed = unicodedata.normalize("NFD", spelling)
    if decomposed != spelling:
        yield decomposed, "decomposed accents"


def encode(text: str, encoding: str) -> bytes | None:
    try:
        return text.encode(_CODEC.get(encoding, encoding.lower()))
    except UnicodeEncodeError:
        return None


def _encodings(marking: Marking, text: str) -> Iterator[tuple[str, bytes]]:
    seen: set[bytes] = set()
    for enc in ENCODINGS.get(marking.language.split("-")[0], _ANY):
        data = encode(text, enc)
        if data is not None and data not in seen:
            seen.add(data)
            yield ("ASCII" if enc == "UTF-8" and text.isascii() else enc), data


@functools.lru_cache(maxsize=8)
def _forms(markings: Markings) -> tuple[Form, ...]:
    return tuple(f for f, _ in _forms_with_separator(markings))


def _forms_with_separator(markings: Markings) -> Iterator[tuple[Form, str]]:
    seen: set[tuple[str, bytes]] = set()
    for m in markings.entries:
        for spelling in m.spellings():
            for case in cased(m, spelling):
                for text, sep in separated(case):
                    for enc, data in _encodings(m, text):
                        if (m.text, data) not in seen:
                            seen.add((m.text, data))
                            yield Form(marking=m, spelling=text, encoding=enc, data=data), sep


# --- decoys and the corpus ---------------------------------------------------------------------------------


def _rotate(c: str) -> str:
    o = ord(c)
    for lo, n, shift in (
        (0x41, 26, 13),
        (0x61, 26, 13),
        (0x410, 32, 16),
        (0x430, 32, 16),
        (0xFF21, 26, 13),  # full-width Latin
        (0xFF41, 26, 13),
    ):
        if lo <= o < lo + n:
            return chr(lo + (o - lo + shift) % n)
    if 0x4E00 <= o < 0x9FA5 or 0xAC00 <= o < 0xD7A3:
        return chr(o + 1)
    return c


def decoy_text(text: str) -> str:
    """The text with its letters rotated: same shape, same encodings, no marking."""
    return "".join(_rotate(c) for c in text)


def _base64_core(prefix: int, n: int) -> tuple[int, int]:
    """Characters of base64(prefix bytes + n marking bytes + more) that the marking bytes alone decide."""
    return -(-8 * prefix // 6), (8 * (prefix + n)) // 6


def _mail_and_web(text: str) -> Iterator[tuple[str, bytes]]:
    """A non-ASCII spelling as mail and web pages carry it: quoted-printable UTF-8 (``=D0=A1``) and HTML
    numeric character references, decimal (``&#1057;``) and hexadecimal (``&#x421;``)."""
    yield (
        "quoted-printable of UTF-8",
        "".join(f"={b:02X}" if b >= 0x80 or b == 0x3D else chr(b) for b in text.encode()).encode(),
    )
    yield "HTML entities (decimal)", "".join(f"&#{ord(c)};" if ord(c) > 127 else c for c in text).encode()
    yield (
        "HTML entities (hexadecimal)",
        "".join(f"&#x{ord(c):X};" if ord(c) > 127 else c for c in text).encode(),
    )


@functools.lru_cache(maxsize=8)
def _corpus(markings: Markings) -> Corpus:
    blob = bytearray()
    spans: list[Span] = []

    keys: dict[tuple[int, str], int] = {}

    def put(data: bytes, context: bytes, span: tuple[int, int], form: Form, label: str, decoy: bool) -> None:
        outer = len(blob)
        blob.extend(context)
        key = keys.setdefault((id(form), label), len(keys))
        at = len(blob)
        blob.extend(data)
        blob.extend(context)
        spans.append(Span(start=at + span[0], end=at + span[1], form=form, label=label, key=key,
                          outer=(outer, len(blob)), decoy=decoy))  # fmt: skip

    for form, sep in _forms_with_separator(markings):
        twin = encode(decoy_text(form.spelling), form.encoding if form.encoding != "ASCII" else "UTF-8")
        context = encode(CONTEXT, form.encoding if form.encoding != "ASCII" else "UTF-8") or b""
        for data, decoy in ((form.data, False), (twin, True)):
            if data is not None:
                put(data, context, (0, len(data)), form, form.encoding, decoy)
        if sep not in _BASE64_SEPARATORS:
            continue
        for prefix in (0, 1, 2):
            for data, decoy in ((form.data, False), (twin, True)):
                if data is None:
                    continue
                raw = b"\n" * prefix + data + (b"\n\n" if prefix else b"")
                b64 = base64.b64encode(raw)
                lo, hi = _base64_core(prefix, len(data))
                label = f"base64 of {form.encoding} at offset {prefix}"
                put(b64, b"\n", (lo, hi), form, label, decoy)
                if form.encoding in ("ASCII", "UTF-8"):
                    put(b64.decode().encode("utf-16-le"), b"\n\x00", (2 * lo, 2 * hi), form,
                        f"base64 of {form.encoding} in UTF-16LE at offset {prefix}", decoy)  # fmt: skip
        if form.encoding == "UTF-8" and not form.spelling.isascii():
            for text, decoy in ((form.spelling, False), (decoy_text(form.spelling), True)):
                for label, written in _mail_and_web(text):
                    put(written, b"\n", (0, len(written)), form, label, decoy)
    return Corpus(data=bytes(blob), spans=tuple(spans), starts=tuple(s.start for s in spans))
