"""How the per-rule checks read a rule: what its patterns and its condition match, from the source alone.

Every check reads the rule as :mod:`overt.avdb.yarasource` lexes it (patterns, the verbatim condition and its
tokens, meta, tags), never plyara's view. This module owns the readings the checks share:

* every text reading of a pattern (text as Latin-1 and UTF-8, hex runs also as UTF-16LE, a regex as text,
  a class of path separators as a backslash), and the one reading a person sees (:func:`text_readings`);
* the document format (PDF, OLE2, OOXML/zip, RTF, ODF) a pattern names by its magic in any spelling (text, hex
  or regex) or a condition names by ``uint32``/``uint32be``/``uint16``/``uint8`` comparisons in hex or
  decimal, ``vt.FileType`` or ``magic`` literals, or the ``filetype`` external compared with a format;
* the code a pattern or condition names: an executable gate or module, script, PDF action (with or without
  ``/``), template injection, embedded executable (MZ in hex or base64), exploit, JAR or APK marker;
* whether a condition *requires* an atom (every way it can be true goes through one), and
  :class:`RuleView`, one rule's parts computed once.

What the readings mean for a release is decided by :mod:`overt.avdb.checks` (``document-only``,
``collection``) and :mod:`overt.avdb.targeting` (``targeting``, ``self-name``). Pure: no I/O, no compiling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cached_property, lru_cache

from overt.avdb.rules import YaraRule
from overt.avdb.yarasource import HEX, TEXT, PatternSource, condition_tokens

# --- document formats -------------------------------------------------------------------------------------

# Binary magics, matched in hex patterns byte by byte (wildcards allowed) and in text and regex readings.
BINARY_MAGIC = (
    ("PDF", b"%PDF"),
    ("OLE2", b"\xd0\xcf\x11\xe0"),
    ("RTF", b"{\\rt"),
    ("zip", b"PK\x03\x04"),
    ("OOXML", b"[Content_Types].xml"),
)
_TEXT_MAGIC = re.compile(
    r"%PDF|\xd0\xcf\x11\xe0|\{\\rt|PK\x03\x04|\[Content_Types\]\.xml|_rels/\.rels|docProps/"
    r"|(?:word|xl|ppt)/(?:document|workbook|presentation|styles|settings|_rels|media|embeddings|theme"
    r"|worksheets|slides|webSettings|fontTable|sharedStrings|vbaProject)"
    r"|mimetypeapplication/vnd\.oasis|application/vnd\.oasis\.opendocument",
    re.I,
)
# Headers as a file starts, for uint8/16/32 comparisons at small offsets.
_HEADERS = (
    ("PDF", b"%PDF-1."),
    ("OLE2", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
    ("RTF", b"{\\rtf1"),
    ("zip", b"PK\x03\x04"),
)
_EXEC_HEADERS = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"dex\n",
)
_CONDITION_FORMAT = re.compile(
    r"application/(?:pdf|msword|rtf|vnd\.ms-(?:excel|powerpoint|word)|vnd\.openxmlformats|vnd\.oasis)"
    r"|PDF document|Composite Document File|Rich Text Format|Microsoft (?:Word|Excel|PowerPoint) 2007|"
    r"OpenDocument",
    re.I,
)
_VT_DOCUMENT = re.compile(r"^(?:PDF|DOCX?|XLSX?|PPTX?|RTF|ODT|ODS|ODP|OPENOFFICE|WORD|EXCEL)$")
_VT_CODE = re.compile(r"^(?:PE|ELF|MACH|DEX|APK|ANDROID|JAR|JAVA|SCRIPT|JAVASCRIPT|POWERSHELL|VBA|SHELL)")
CODE_MODULES = frozenset({"pe", "elf", "macho", "dotnet", "dex", "cuckoo", "androguard"})

# What makes a rule about code, not about a document's words. Case-insensitive, on every reading of a pattern
# (PDF name escapes like /J#61vaScript resolved) and on condition literals.
_CODE = re.compile(
    r"^MZ|\x00MZ|This program (?:cannot|must) be run|\x7fELF|PE\x00\x00|TVqQ|TVpQ|TVoA|4d5a90"
    r"|Attribute VB_|\bAuto_?(?:Open|Close|Exec|New)\b|Document_(?:Open|Close|New)|Workbook_(?:Open|Activate)"
    r"|CreateObject|GetObject\s*\(|\bShell\s*\(|WScript|Shell\.Application|ShellExecute|\bVBA|vbaProject"
    r"|\bChrW?\s*\(|StrReverse|\bEnviron\s*\(|Declare (?:PtrSafe )?(?:Function|Sub)|\bLib \"|CallByName"
    r"|ActiveXObject|\beval\s*\(|unescape\s*\(|fromCharCode|document\.write|<script|javascript:"
    r"|\bfunction\s*\(|exportDataObject|launchURL|getAnnots|util\.printf|Collab\.|\.execute\s*\("
    r"|powershell|\bIEX\b|Invoke-Expression|DownloadString|DownloadFile|Net\.WebClient|FromBase64String"
    r"|Start-Process|New-Object|-EncodedCommand|\s-e(?:nc?)?\s|-nop\b|-w(?:indowstyle)?\s+hidden"
    r"|Scripting\.FileSystemObject|cscript|mshta|cmd(?:\.exe)?\s*/[ck]|cmd\.exe|rundll32|regsvr32|certutil"
    r"|bitsadmin|XMLHTTP|ADODB\.Stream|URLDownloadToFile|urlmon|kernel32|VirtualAlloc|shellcode"
    r"|/JavaScript|/JS\b|/OpenAction|/AA\b|/Launch|/EmbeddedFile|/RichMedia|/SubmitForm|/ImportData|/GoTo[ER]"
    r"|/URI\b|/XFA\b|\bJavaScript|OpenAction|EmbeddedFile|RichMedia|\bhttps?://[a-z0-9-]+\.[a-z0-9.-]+"
    r"|attachedTemplate|TargetMode|oleObject|\bobj(?:data|update|emb|link|autlink|ocx|class)\b"
    r"|macrosheets?\b|\bExcel ?4\.0|\bXLM macro|intlMacro|\bEXEC\(|\bCALL\(|\bREGISTER\(|\bFORMULA\("
    r"|Equation\.\d|EQNEDT|Microsoft Equation|OLE2Link|StdOleLink|DDEAUTO|\bDDE\b|ms-msdt|mhtml:"
    r"|search-ms:|\bCVE-\d|\bexploit|heap ?spray|META-INF/|classes\.dex|AndroidManifest|\.class\b"
    r"|\.(?:exe|dll|scr|vbs|js|jse|hta|ps1|bat|cmd|lnk|jar)\b",
    re.I,
)
# Whole patterns that are a PDF action or a VBA/shell call though they read as a plain word.
_CODE_WORDS = frozenset({"js", "aa", "uri", "launch", "shell", "macro", "macros"})
_PDF_ESCAPE = re.compile(r"#([0-9A-Fa-f]{2})")


@lru_cache(maxsize=8192)
def _hex_runs(value: str) -> tuple[tuple[tuple[int, int], ...], ...]:
    """A hex pattern's fixed-width runs as (byte, mask) pairs; jumps and alternatives split runs."""
    body = re.sub(r"/\*.*?\*/|//[^\n]*", " ", value.strip()[1:-1], flags=re.S)
    runs: list[list[tuple[int, int]]] = [[]]
    for token in re.findall(r"\[[^\]]*\]|~?[0-9A-Fa-f?]{2}|[()|]", body):
        if token[0] in "[(|)":
            runs.append([])
        elif token.startswith("~"):
            runs[-1].append((0, 0))
        else:
            hi, lo = token
            runs[-1].append(
                (
                    int(hi.replace("?", "0"), 16) << 4 | int(lo.replace("?", "0"), 16),
                    (0 if hi == "?" else 0xF0) | (0 if lo == "?" else 0x0F),
                )
            )
    return tuple(tuple(r) for r in runs if r)


def _concrete(run: Sequence[tuple[int, int]]) -> list[bytes]:
    """The runs of fully known bytes inside one hex run."""
    out, current = [], bytearray()
    for value, mask in run:
        if mask == 0xFF:
            current.append(value)
        elif current:
            out.append(bytes(current))
            current = bytearray()
    if current:
        out.append(bytes(current))
    return out


# A regex class of path separators only (``[\\\/]``, ``[/\\]``): read as one backslash.
_SEPARATOR_CLASS = re.compile(r"(?:\\\\|\\/|/)+")


def _regex_literal(value: str) -> str:
    """A regex read as text: escapes resolved, a class of path separators as a backslash, other classes and
    wildcards as NUL, grouping dropped."""
    body = value[1 : value.rfind("/")]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2 : i + 4]):
                out.append(chr(int(body[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(" " if n == "s" else "\0" if n.isalnum() else n)
            i += 2
        elif c == "[":
            close = body.find("]", i + 2)
            members = body[i + 1 : close] if close > 0 else ""
            out.append("\\" if members and _SEPARATOR_CLASS.fullmatch(members) else "\0")
            i = len(body) if close < 0 else close + 1
        elif c == "{" and re.match(r"\{\d*,?\d*\}", body[i:]):
            i = body.find("}", i) + 1
        else:
            out.append({".": "\0", "|": "\0"}.get(c, "" if c in "()*+?^$" else c))
            i += 1
    return "".join(out)


regex_text = _regex_literal

_VARIANTS = 16  # the most alternatives a regex is read as; past that, it is read once, alternatives as NUL


class _TooMany(Exception):
    pass


def _class_end(body: str, i: int) -> int:
    """The index just past the character class opening at ``body[i]``."""
    j = i + 1 + (body[i + 1 : i + 2] == "^")
    j += body[j : j + 1] == "]"
    while j < len(body) and body[j] != "]":
        j += 2 if body[j] == "\\" else 1
    return min(j + 1, len(body))


def _alternation(body: str, i: int) -> tuple[list[str], int]:
    """The alternatives of ``body`` from ``i`` to the ``)`` closing the group (or the end), and where it ends."""
    done: list[str] = []
    current = [""]
    while i < len(body):
        c = body[i]
        if c == ")":
            return done + current, i + 1
        if c == "|":
            done += current
            current, i = [""], i + 1
            continue
        if c == "(":
            i += 1
            if body[i : i + 2] == "?:":
                i += 2
            inner, i = _alternation(body, i)
            if body[i : i + 1] in ("?", "*"):
                inner, i = [*inner, ""], i + 1 + (body[i + 1 : i + 2] == "?")
            piece = inner
        else:
            end = _class_end(body, i) if c == "[" else i + 2 if c == "\\" else i + 1
            piece, i = [body[i:end]], end
        current = [v + x for v in current for x in piece]
        if len(done) + len(current) > _VARIANTS:
            raise _TooMany
    return done + current, i


@lru_cache(maxsize=8192)
def regex_variants(value: str) -> tuple[str, ...]:
    """A regex read as the texts of its alternatives (``/\\\\(Users|home)\\\\(a|b)/`` as four texts), up to
    sixteen; a regex with more is read once, as :func:`regex_text` reads it."""
    end = value.rfind("/")
    try:
        bodies, _ = _alternation(value[1:end], 0)
    except _TooMany:
        return (_regex_literal(value),)
    return tuple(dict.fromkeys(_regex_literal("/" + b + value[end:]) for b in bodies if b)) or (
        _regex_literal(value),
    )


@lru_cache(maxsize=8192)
def readings(p: PatternSource) -> tuple[str, ...]:
    """Every text reading of a pattern: its bytes as Latin-1 and UTF-8 (UTF-16LE for hex), or a regex's text."""
    if p.kind == TEXT:
        raw = [p.text_bytes()]
    elif p.kind == HEX:
        raw = [b for run in _hex_runs(p.value) for b in _concrete(run)]
    else:
        return (_regex_literal(p.value),)
    out: list[str] = []
    for data in raw:
        out.append(data.decode("latin-1"))
        for codec in ("utf-8", "utf-16-le"):
            if codec == "utf-16-le" and (p.kind != HEX or len(data) % 2 or b"\x00" not in data):
                continue
            try:
                out.append(data.decode(codec))
            except UnicodeDecodeError:
                continue
    return tuple(out)


def _decoded(data: bytes, *, utf16: bool) -> str:
    if utf16 and len(data) % 2 == 0 and data[1::2].count(0) * 2 >= len(data) // 2:
        try:
            return data.decode("utf-16-le")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@lru_cache(maxsize=8192)
def text_readings(p: PatternSource) -> tuple[str, ...]:
    """A pattern as a person reads it, one text per run: UTF-16LE for hex that is mostly UTF-16, else UTF-8
    where it decodes, else Latin-1; a regex as the text of each alternative. (``C:\\Users\\Иванов``, not its
    UTF-8 bytes.)"""
    if p.kind == TEXT:
        return (_decoded(p.text_bytes(), utf16=False),)
    if p.kind == HEX:
        return tuple(_decoded(b, utf16=True) for run in _hex_runs(p.value) for b in _concrete(run))
    return regex_variants(p.value)


def _hex_magic(p: PatternSource) -> str:
    for run in _hex_runs(p.value):
        for fmt, magic in BINARY_MAGIC:
            need = max(3, len(magic) - len(magic) // 4)
            for j in range(len(run) - len(magic) + 1):
                window = run[j : j + len(magic)]
                if all(v & m == b & m for (v, m), b in zip(window, magic, strict=True)) and (
                    sum(m == 0xFF for _, m in window) >= need
                ):
                    return fmt
    return ""


@lru_cache(maxsize=8192)
def pattern_format(p: PatternSource) -> str:
    """The document format whose magic or structure keyword the pattern carries, or ''."""
    if p.kind == HEX and (fmt := _hex_magic(p)):
        return fmt
    for text in readings(p):
        if m := _TEXT_MAGIC.search(text):
            found = m.group().lower()
            return next((f for f, b in BINARY_MAGIC if b.decode("latin-1").lower() in found), "OOXML")
    return ""


def code_indicator(text: str) -> str:
    """The code, action or exploit indicator a text carries, or ''."""
    plain = _PDF_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if plain.strip().lstrip("/").lower() in _CODE_WORDS:
        return plain.strip()
    m = _CODE.search(plain)
    return m.group().strip() if m else ""


@lru_cache(maxsize=8192)
def pattern_code(p: PatternSource) -> str:
    """The code indicator a pattern carries (an MZ header in hex, or in any reading), or ''."""
    if p.kind == HEX and any(r[:2] == ((0x4D, 0xFF), (0x5A, 0xFF)) for r in _hex_runs(p.value)):
        return "MZ"
    return next((c for t in readings(p) if (c := code_indicator(t))), "")


# --- conditions -------------------------------------------------------------------------------------------

INT_READ = re.compile(r"^u?int(8|16|32)(be)?$")


def _number(token: str) -> int | None:
    try:
        return int(token, 0) if re.fullmatch(r"0x[0-9A-Fa-f]+|[0-9]+", token) else None
    except ValueError:
        return None


def int_reads(tokens: Sequence[str]) -> list[tuple[int, bytes]]:
    """(offset, bytes) of every ``uintN[be](offset) == value`` comparison, either way round."""
    out: list[tuple[int, bytes]] = []
    for i, tok in enumerate(tokens):
        m = INT_READ.match(tok)
        if not m or tokens[i + 1 : i + 2] != ["("] or tokens[i + 3 : i + 4] != [")"]:
            continue
        offset = _number(tokens[i + 2]) if i + 2 < len(tokens) else None
        if tokens[i + 4 : i + 5] == ["=="] and i + 5 < len(tokens):
            value = _number(tokens[i + 5])
        elif i >= 2 and tokens[i - 1] == "==":
            value = _number(tokens[i - 2])
        else:
            continue
        size = int(m.group(1)) // 8
        if offset is None or value is None or value >= 1 << (8 * size):
            continue
        out.append((offset, value.to_bytes(size, "big" if m.group(2) else "little")))
    return out


def _header_match(reads: list[tuple[int, bytes]], headers: Sequence[bytes]) -> int:
    """Index of the first header that two or more read bytes agree with, or -1."""
    singles = {off: b for off, b in reads if len(b) == 1}
    for n, header in enumerate(headers):
        if any(len(b) >= 2 and header[off : off + len(b)] == b for off, b in reads):
            return n
        if sum(header[off : off + 1] == b for off, b in singles.items()) >= 2:
            return n
    return -1


def condition_formats(tokens: Sequence[str]) -> list[str]:
    reads = int_reads(tokens)
    found = []
    for fmt, header in _HEADERS:
        if _header_match(reads, [header]) == 0:
            found.append(fmt)
    for i, tok in enumerate(tokens):
        if tok.startswith('"') and _CONDITION_FORMAT.search(tok):
            found.append(tok)
        if tok == "FileType" and i + 2 < len(tokens) and _VT_DOCUMENT.match(tokens[i + 2]):
            found.append(f"vt.FileType.{tokens[i + 2]}")
        if (kind := _filetype(tokens, i)) and _VT_DOCUMENT.match(kind.upper().lstrip(".")):
            found.append(kind.upper().lstrip("."))
    return found


_FILETYPE_EXTERNALS = frozenset(
    {"filetype", "file_type", "FileType", "filetype_ext", "mime_type", "mimetype"}
)
_FILETYPE_COMPARE = frozenset(
    {"==", "iequals", "contains", "icontains", "startswith", "istartswith", "matches"}
)


def _filetype(tokens: Sequence[str], i: int) -> str:
    """The format an external such as ``filetype`` is compared with (``filetype == "PDF"``), or ''."""
    if tokens[i] not in _FILETYPE_EXTERNALS or (i and tokens[i - 1] == ".") or i + 2 >= len(tokens):
        return ""
    if tokens[i + 1] not in _FILETYPE_COMPARE or tokens[i + 2][:1] not in ('"', "/"):
        return ""
    literal = tokens[i + 2]
    text = literal[1:-1] if literal.startswith('"') else _regex_literal(literal).replace("\0", "")
    return "PDF" if re.search(r"application/pdf", text, re.I) else text.strip("^$ ")


def condition_code(tokens: Sequence[str]) -> str:
    """The executable gate, code module or code literal a condition names, or ''."""
    if _header_match(int_reads(tokens), _EXEC_HEADERS) >= 0:
        return "executable magic"
    for i, tok in enumerate(tokens):
        if tok in CODE_MODULES and tokens[i + 1 : i + 2] == ["."] and (i == 0 or tokens[i - 1] != "."):
            return f"{tok}."
        if tok == "FileType" and i + 2 < len(tokens) and _VT_CODE.match(tokens[i + 2]):
            return f"vt.FileType.{tokens[i + 2]}"
        if (kind := _filetype(tokens, i)) and (
            _VT_CODE.match(kind.upper()) or kind.upper() in ("EXE", "DLL")
        ):
            return f"{tok} {tokens[i + 1]} {tokens[i + 2]}"
        if tok.startswith('"') and (c := code_indicator(tok[1:-1])):
            return c
    return ""


def _split(tokens: Sequence[str], word: str) -> list[list[str]]:
    """Split at ``word`` where no parenthesis or bracket is open."""
    parts: list[list[str]] = [[]]
    depth = 0
    for t in tokens:
        depth += t in ("(", "[")
        depth -= t in (")", "]")
        if depth == 0 and t == word:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _unwrap(tokens: Sequence[str]) -> list[str]:
    out = list(tokens)
    while len(out) >= 2 and out[0] == "(" and out[-1] == ")":
        depth = 0
        for n, t in enumerate(out):
            depth += t == "("
            depth -= t == ")"
            if depth == 0 and n < len(out) - 1:
                return out
        out = out[1:-1]
    return out


def requires(tokens: Sequence[str], atom: Callable[[list[str]], bool]) -> bool:
    """Whether every way the condition can be true goes through an atom for which ``atom`` holds."""
    body = _unwrap(tokens)
    alternatives = _split(body, "or")
    if len(alternatives) > 1:
        return all(requires(a, atom) for a in alternatives)
    conjuncts = _split(body, "and")
    if len(conjuncts) > 1:
        return any(requires(c, atom) for c in conjuncts)
    return bool(body) and body[0] != "not" and atom(body)


def _tautology(alternatives: Sequence[Sequence[str]]) -> bool:
    """Whether a disjunction holds whatever the file (``$x or not $x``)."""
    bodies = [_unwrap(a) for a in alternatives]
    return any(b[:1] == ["not"] and _unwrap(b[1:]) in bodies for b in bodies)


def admits(tokens: Sequence[str], atom: Callable[[list[str]], bool]) -> bool:
    """Whether some way the condition can be true goes through an atom for which ``atom`` holds. A tautology
    (``$x or not $x``) admits nothing: it holds with or without its atoms; ``not ...`` admits nothing either."""
    body = _unwrap(tokens)
    alternatives = _split(body, "or")
    if len(alternatives) > 1:
        return not _tautology(alternatives) and any(admits(a, atom) for a in alternatives)
    conjuncts = _split(body, "and")
    if len(conjuncts) > 1:
        return any(admits(c, atom) for c in conjuncts)
    return bool(body) and body[0] != "not" and atom(body)


_COMPARE_AT_ZERO: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _sum_at_zero(tokens: Sequence[str]) -> int | None:
    """The value of a sum of pattern counts and numbers (``#v + #s``, ``2 * #a - 1``) with every count zero,
    or None for anything else."""
    total, sign, term, expect_value = 0, 1, 1, True
    for t in tokens:
        value = 0 if t.startswith("#") and len(t) > 1 else _number(t)
        if expect_value:
            if value is None:
                return None
            term *= value
        elif t in ("+", "-"):
            total, sign, term = total + sign * term, 1 if t == "+" else -1, 1
        elif t != "*":
            return None
        expect_value = not expect_value
    return None if expect_value else total + sign * term


def holds_without_matches(atom: Sequence[str]) -> bool:
    """Whether an atom holds when the patterns it counts match nowhere (``#js >= 0``, ``#v + #s < 1000``,
    ``none of ($c*)``, ``0 of them``, ``for all i in (1..#a): (...)``): it does not need them."""
    if "of" in atom and atom[:1] in (["none"], ["0"]):
        return True
    if atom[:2] in (["for", "all"], ["for", "none"]) and any(t.startswith("#") for t in atom):
        return atom[1] == "none" or "in" in atom[:6]
    ops = [i for i, t in enumerate(atom) if t in _COMPARE_AT_ZERO]
    if len(ops) != 1 or not any(t.startswith("#") and len(t) > 1 for t in atom):
        return False
    left, right = _sum_at_zero(atom[: ops[0]]), _sum_at_zero(atom[ops[0] + 1 :])
    return left is not None and right is not None and _COMPARE_AT_ZERO[atom[ops[0]]](left, right)


def referenced(tokens: Sequence[str], names: Sequence[str]) -> tuple[list[str], bool]:
    """The patterns an atom refers to, and whether it needs all of them (True) or may do with one."""
    if "of" in tokens:
        at = tokens.index("of")
        need_all = at > 0 and tokens[at - 1] == "all"
        rest = tokens[at + 1 :]
        if rest[:1] == ["them"]:
            return list(names), need_all
        sets = [t for t in rest if t.startswith("$")]
        picked = [n for n in names for s in sets if n == s or (s.endswith("*") and n.startswith(s[:-1]))]
        return picked, need_all
    refs = [f"${t[1:]}" for t in tokens if t[:1] in "$#@!" and len(t) > 1 and not t.endswith("*")]
    return [n for n in names if n in refs], True


class RuleView:
    """The parts of one rule the checks read, computed once."""

    def __init__(self, rule: YaraRule) -> None:
        self.rule = rule
        self.source = rule.source
        self.tokens = condition_tokens(rule.source.condition)
        self.patterns = {p.name: p for p in rule.source.patterns}

    @cached_property
    def code(self) -> dict[str, str]:
        return {p.name: pattern_code(p) for p in self.source.patterns}

    def code_atom(self, atom: list[str]) -> bool:
        """Whether an atom holds only on code (a code pattern it needs, an executable gate, a code module)."""
        if condition_code(atom):
            return True
        picked, need_all = referenced(atom, list(self.patterns))
        if not picked or holds_without_matches(atom):
            return False
        flags = [bool(self.code[n]) for n in picked]
        return any(flags) if need_all else all(flags)

    def requires_code(self) -> bool:
        return requires(self.tokens, self.code_atom)

    def any_code(self) -> str:
        return condition_code(self.tokens) or next((c for c in self.code.values() if c), "")

    def admits_code(self, *, also: frozenset[str] = frozenset(), executables: bool = True) -> str:
        """The code indicator some way of the condition being true goes through, or '': a code pattern (or
        one of ``also``) an atom can match on (``$js``, ``any of them`` over code and words, ``#js > 2``), an
        executable gate (unless ``executables`` is false: yara-x then decides) or a code module or literal.
        A code pattern only mentioned (``#js >= 0``, ``not $js``, ``$mz or not $mz``) admits nothing."""
        found: list[str] = []

        def atom(tokens: list[str]) -> bool:
            read = tokens if executables else ["" if INT_READ.match(t) else t for t in tokens]
            if code := condition_code(read):
                found.append(code)
                return True
            picked, _ = referenced(tokens, list(self.patterns))
            if holds_without_matches(tokens):
                return False
            here = [self.code[n] or n for n in picked if self.code[n] or n in also]
            found.extend(here)
            return bool(here)

        return found[0] if admits(self.tokens, atom) and found else ""
