"""A lexer of YARA source: a file split into its rules, each rule into modifiers, tags, meta, patterns and
condition, with exact character offsets, so every check reads the same view of a rule that yara-x compiles.

It understands what the YARA grammar puts between the tokens the checks need (comments anywhere, text strings
with escapes, regular expressions with flags, hex strings with jumps, alternatives and comments, modifiers with
arguments) and nothing more: whether the rule is valid is yara-x's verdict, not the lexer's. Any UTF-8 text
lexes, whatever plyara makes of it; CRLF line endings stay in each rule's text. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from overt.errors import FormatError

TEXT = "text"
HEX = "hex"
REGEX = "regex"
RULE_MODIFIERS = ("global", "private")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATTERN_ID = re.compile(r"\$[A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:0x[0-9A-Fa-f]+|0o[0-7]+|[0-9]+(?:\.[0-9]+)?)")
_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"'  # text
    r"|/(?:[^/\\\n]|\\.)*/[a-z]*"  # regex
    r"|0x[0-9A-Fa-f]+|[0-9]+(?:KB|MB)?"
    r"|[$#@!][A-Za-z0-9_]*\*?"
    r"|[A-Za-z_][A-Za-z0-9_]*"
    r"|==|!=|<=|>=|<<|>>|\.\.|\S"
)
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", '"': b'"', "\\": b"\\"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PatternSource:
    name: str  # "$a"; anonymous patterns are "$#1", "$#2"... (their source keeps "$")
    kind: str  # TEXT, HEX or REGEX
    value: str  # verbatim, with its delimiters: '"a\\x41"', '{ 41 ?? 42 }', '/ab+/i'
    modifiers: str  # verbatim modifier source after the value, or ""
    names: tuple[str, ...]  # the modifiers' names: ("wide", "xor", ...)
    source: str  # verbatim declaration: '$a = "abc" wide'

    def text_bytes(self) -> bytes:
        """A text pattern's bytes with its escapes resolved (empty for other kinds)."""
        return unescape(self.value[1:-1]) if self.kind == TEXT else b""

    def modifier_names(self) -> tuple[str, ...]:
        return self.names


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSource:
    name: str
    modifiers: tuple[str, ...]
    tags: tuple[str, ...]
    meta: tuple[tuple[str, str | int | float | bool], ...]
    patterns: tuple[PatternSource, ...]
    condition: str  # verbatim, comments kept, surrounding whitespace stripped
    text: str  # the rule's exact source, from its first modifier (or 'rule') to its closing brace
    start: int
    end: int
    line: int
    keyword_at: int  # offset of the 'rule' keyword in text
    condition_span: tuple[int, int]  # offsets of condition in text
    # each section's name, and offsets in text of its keyword, just past its ':' and of its first token
    sections: tuple[tuple[str, int, int, int], ...] = ()

    def meta_dict(self) -> dict[str, str | int | float | bool]:
        """Meta fields by key; the first of a repeated key wins."""
        out: dict[str, str | int | float | bool] = {}
        for k, v in self.meta:
            out.setdefault(k, v)
        return out


def unescape(body: str) -> bytes:
    """The bytes of a YARA text string's body (escapes \\\\ \\" \\n \\t \\r \\xNN)."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2 : i + 4]):
                out.append(int(body[i + 2 : i + 4], 16))
                i += 4
                continue
            out.extend(_ESCAPES.get(n, ("\\" + n).encode()))
            i += 2
            continue
        out.extend(c.encode())
        i += 1
    return bytes(out)


class _Lexer:
    def __init__(self, text: str, where: str) -> None:
        self.t = text
        self.i = 1 if text.startswith("\ufeff") else 0
        self.where = where

    def fail(self, what: str, at: int | None = None) -> FormatError:
        line = self.t.count("\n", 0, self.i if at is None else at) + 1
        return FormatError(f"{self.where}line {line}: {what}")

    def skip(self) -> None:
        """Whitespace and comments."""
        t = self.t
        while self.i < len(t):
            c = t[self.i]
            if c.isspace():
                self.i += 1
            elif t.startswith("//", self.i):
                nl = t.find("\n", self.i)
                self.i = len(t) if nl < 0 else nl + 1
            elif t.startswith("/*", self.i):
                close = t.find("*/", self.i + 2)
                if close < 0:
                    raise self.fail("unterminated comment")
                self.i = close + 2
            else:
                return

    def at_end(self) -> bool:
        self.skip()
        return self.i >= len(self.t)

    def peek(self) -> str:
        self.skip()
        return self.t[self.i : self.i + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r}")
        self.i += 1

    def word(self, what: str = "an identifier") -> str:
        self.skip()
        m = _IDENT.match(self.t, self.i)
        if not m:
            raise self.fail(f"expected {what}")
        self.i = m.end()
        return m.group()

    def peek_word(self) -> str:
        self.skip()
        m = _IDENT.match(self.t, self.i)
        return m.group() if m else ""

    def quoted(self) -> str:
        """A text string literal, verbatim with its quotes."""
        start = self.i
        i = start + 1
        t = self.t
        while i < len(t) and t[i] != '"':
            if t[i] == "\n":
                raise self.fail("unterminated text string", start)
            i += 2 if t[i] == "\\" else 1
        if i >= len(t):
            raise self.fail("unterminated text string", start)
        self.i = i + 1
        return t[start : self.i]

    def regex(self) -> str:
        start = self.i
        i = start + 1
        t = self.t
        while i < len(t) and t[i] != "/":
            if t[i] == "\n":
                raise self.fail("unterminated regular expression", start)
            i += 2 if t[i] == "\\" else 1
        if i >= len(t):
            raise self.fail("unterminated regular expression", start)
        i += 1
        while i < len(t) and t[i].isalpha():
            i += 1
        self.i = i
        return t[start:i]

    def hex(self) -> str:
        start = self.i
        close = self.t.find("}", start)
        # A comment inside a hex string may hold a '}': skip comments while looking for the end.
        i = start + 1
        while True:
            if close < 0:
                raise self.fail("unterminated hex string", start)
            comment = min(
                (p for p in (self.t.find("//", i, close), self.t.find("/*", i, close)) if p >= 0), default=-1
            )
            if comment < 0:
                break
            end = (
                self.t.find("\n", comment) if self.t.startswith("//", comment) else self.t.find("*/", comment)
            )
            if end < 0:
                raise self.fail("unterminated hex string", start)
            i = end + 1
            close = self.t.find("}", i)
        self.i = close + 1
        return self.t[start : self.i]

    def balanced_args(self) -> None:
        """A modifier's '(...)' arguments, which may hold a text string."""
        depth = 0
        while self.i < len(self.t):
            c = self.t[self.i]
            if c == '"':
                self.quoted()
                continue
            self.i += 1
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return
        raise self.fail("unterminated modifier arguments")


def _section_ahead(lx: _Lexer) -> str:
    """The section keyword at the cursor ('meta', 'strings', 'condition') if one follows with ':'."""
    save = lx.i
    name = lx.peek_word()
    if name in ("meta", "strings", "condition"):
        lx.i += len(name)
        if lx.peek() == ":":
            lx.i = save
            return name
    lx.i = save
    return ""


def _meta(lx: _Lexer) -> list[tuple[str, str | int | float | bool]]:
    out: list[tuple[str, str | int | float | bool]] = []
    while lx.peek() not in ("}", "") and not _section_ahead(lx):
        key = lx.word("a meta key")
        lx.expect("=")
        lx.skip()
        c = lx.t[lx.i : lx.i + 1]
        value: str | int | float | bool
        if c == '"':
            value = unescape(lx.quoted()[1:-1]).decode("utf-8", "replace")
        elif (m := _NUMBER.match(lx.t, lx.i)) is not None:
            lx.i = m.end()
            text = m.group()
            value = float(text) if "." in text else int(text, 0)
        else:
            word = lx.word("a meta value")
            if word not in ("true", "false"):
                raise lx.fail(f"meta {key}: {word!r} is not a text, number or boolean")
            value = word == "true"
        out.append((key, value))
    return out


def _pattern(lx: _Lexer, anonymous: int) -> PatternSource:
    start = lx.i
    m = _PATTERN_ID.match(lx.t, lx.i)
    if not m:
        raise lx.fail("expected a pattern identifier ($name)")
    lx.i = m.end()
    name = m.group() if m.group() != "$" else f"$#{anonymous}"
    lx.expect("=")
    lx.skip()
    value_at = lx.i
    c = lx.t[lx.i : lx.i + 1]
    if c == '"':
        kind, value = TEXT, lx.quoted()
    elif c == "{":
        kind, value = HEX, lx.hex()
    elif c == "/":
        kind, value = REGEX, lx.regex()
    else:
        raise lx.fail(f"pattern {name}: expected a text, hex or regex value", value_at)
    mods_at, names = lx.i, []
    while True:
        save = lx.i
        word = lx.peek_word()
        if not word or (word in ("meta", "strings", "condition") and _section_ahead(lx)):
            lx.i = save
            break
        lx.i += len(word)
        names.append(word)
        if lx.t.startswith("(", lx.i):
            lx.balanced_args()
    mods_end = lx.i
    return PatternSource(
        name=name,
        kind=kind,
        value=value,
        modifiers=lx.t[mods_at:mods_end].strip(),
        names=tuple(names),
        source=lx.t[start:mods_end].rstrip(),
    )


def _condition(lx: _Lexer) -> tuple[int, int]:
    """The condition's span up to (not including) the rule's closing brace."""
    lx.skip()
    start = lx.i
    t = lx.t
    while lx.i < len(t):
        c = t[lx.i]
        if c == '"':
            lx.quoted()
        elif t.startswith("//", lx.i) or t.startswith("/*", lx.i):
            lx.skip()
        elif c == "/":
            lx.regex()
        elif c == "}":
            end = lx.i
            while end > start and t[end - 1].isspace():
                end -= 1
            return start, end
        else:
            lx.i += 1
    raise lx.fail("the rule has no closing brace", start)


def _rule(lx: _Lexer, start: int, modifiers: list[str], line: int) -> RuleSource:
    keyword_at = lx.i - len("rule")
    name = lx.word("a rule name")
    tags: list[str] = []
    if lx.peek() == ":":
        lx.i += 1
        while lx.peek() != "{":
            tags.append(lx.word("a tag or '{'"))
    lx.expect("{")
    meta: list[tuple[str, str | int | float | bool]] = []
    patterns: list[PatternSource] = []
    span: tuple[int, int] | None = None
    sections: list[tuple[str, int, int, int]] = []
    while span is None:
        section = _section_ahead(lx)
        if not section:
            raise lx.fail(f"rule {name}: expected meta:, strings: or condition:")
        lx.skip()
        keyword = lx.i
        lx.word()
        lx.expect(":")
        colon = lx.i
        lx.skip()
        sections.append((section, keyword - start, colon - start, lx.i - start))
        if section == "meta":
            meta += _meta(lx)
        elif section == "strings":
            while lx.peek() == "$":
                patterns.append(_pattern(lx, len(patterns) + 1))
        else:
            span = _condition(lx)
    lx.expect("}")
    text = lx.t[start : lx.i]
    return RuleSource(
        name=name,
        modifiers=tuple(modifiers),
        tags=tuple(tags),
        meta=tuple(meta),
        patterns=tuple(patterns),
        condition=lx.t[span[0] : span[1]],
        text=text,
        start=start,
        end=lx.i,
        line=line,
        keyword_at=keyword_at - start,
        condition_span=(span[0] - start, span[1] - start),
        sections=tuple(sections),
    )


def split_rules(text: str, *, where: str = "") -> tuple[tuple[str, ...], tuple[str, ...], list[RuleSource]]:
    """(imports, includes, rules) of one YARA source file; FormatError naming the line where it cannot lex."""
    lx = _Lexer(text, f"{where}: " if where else "")
    imports: list[str] = []
    includes: list[str] = []
    rules: list[RuleSource] = []
    counted, line = 0, 1  # lines are counted once, from one rule to the next
    while not lx.at_end():
        start = lx.i
        word = lx.word("'rule', 'import' or 'include'")
        if word in ("import", "include"):
            if lx.peek() != '"':
                raise lx.fail(f"expected a quoted name after {word}")
            (imports if word == "import" else includes).append(unescape(lx.quoted()[1:-1]).decode())
            continue
        modifiers = []
        while word in RULE_MODIFIERS:
            modifiers.append(word)
            word = lx.word("'rule'")
        if word != "rule":
            raise lx.fail(f"expected 'rule', found {word!r}", start)
        line += lx.t.count("\n", counted, start)
        counted = start
        rules.append(_rule(lx, start, modifiers, line))
    return tuple(imports), tuple(includes), rules


def condition_tokens(condition: str) -> list[str]:
    """The condition's tokens, comments dropped: identifiers, numbers, pattern refs, strings, operators."""
    return _TOKEN.findall(strip_comments(condition))


def strip_comments(text: str) -> str:
    out, i = [], 0
    lx = _Lexer(text, "")
    while i < len(text):
        c = text[i]
        if c == '"' or (c == "/" and not text.startswith(("//", "/*"), i)):
            lx.i = i
            try:
                lx.quoted() if c == '"' else lx.regex()
            except FormatError:
                lx.i = len(text)
            out.append(text[i : lx.i])
            i = lx.i
        elif text.startswith(("//", "/*"), i):
            lx.i = i
            try:
                lx.skip()
            except FormatError:
                lx.i = len(text)
            out.append(" ")
            i = lx.i
        else:
            out.append(c)
            i += 1
    return "".join(out)


def rule_text(rule: RuleSource, *, condition: str | None = None, drop: tuple[str, ...] = ()) -> str:
    """The rule's source with another condition and/or without the given rule modifiers."""
    text = rule.text
    if condition is not None:
        a, b = rule.condition_span
        text = text[:a] + condition + text[b:]
    if drop:
        kept = [m for m in rule.modifiers if m not in drop]
        text = " ".join([*kept, text[rule.keyword_at :]])
    return text
