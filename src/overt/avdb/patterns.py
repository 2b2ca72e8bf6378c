"""The marking checks on rule patterns: does a pattern match a classification marking, in any disguise?

Two layers, both honouring word boundaries (a marking inside ``GetSecretKey`` or ``geheimen`` is no marking):

* **yara-x decodes.** Each rule's patterns become one *probe* rule (the declarations verbatim, ``private``
  dropped, an ``xor`` range widened to include key 0, condition ``any of them``); the probes are compiled in
  batches and scanned once over the marking corpus (:mod:`overt.avdb.markings`). Whatever a pattern's modifiers
  and syntax (nocase, wide, xor, base64, regex classes, hex jumps, wildcards, alternatives, comments), yara-x
  decides what it matches, and a match offset maps back to a marking, a spelling and an encoding.

  * ``sensitive-marking``: one pattern's match covers a whole form of a marking, and the pattern does not also
    cover that form's decoy (the same shape with other letters), which a generic ``/[A-Z]{6}/`` would.
  * ``split-marking``: matches of two or more patterns of one rule lie side by side (gaps of at most
    :data:`GAP` bytes) and together cover a form that none of them covers alone: a marking split over strings
    that the condition joins.

* **Literal layer**, for a pattern that holds a marking plus other text, which can match no isolated form:
  the bytes of text strings, the concrete runs of hex strings and the literal runs of regexes, base64 or hex
  written out inside a text, and runs XOR-ed with one key (found through the XOR-invariant sequence of
  neighbouring-byte differences, not by trying 255 keys).

A probe that yara-x cannot compile (the rule itself does not compile, which the source checks report) gets the
literal layer only; :func:`probe` says which rules those were. Pure apart from compiling and scanning.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import yara_x

from overt.avdb.findings import Finding, finding
from overt.avdb.markings import NONE, Corpus, Form, Markings, Span, encode
from overt.avdb.rules import YaraRule
from overt.avdb.yarasource import HEX, REGEX, TEXT, PatternSource, condition_tokens, strip_comments, unescape

SENSITIVE = "sensitive-marking"
SPLIT = "split-marking"
BATCH = 500
GAP = 4  # bytes between two pieces of a split marking: a separator, in any encoding
MAX_MATCHES = 2000
SCAN_TIMEOUT = 20  # seconds per batch; a batch that times out is bisected down to the slow rule
_XOR = re.compile(r"\bxor\s*\(\s*([^)\-\s]+)\s*(?:-\s*([^)\s]+)\s*)?\)")
_PRIVATE = re.compile(r"\bprivate\b")
_B64_TEXT = re.compile(rb"[A-Za-z0-9+/_\-]{12,}={0,2}")
_HEX_TEXT = re.compile(rb"(?:[0-9A-Fa-f]{2}){5,}")
_HEX_TOKEN = re.compile(r"\[[^\]]*\]|[0-9A-Fa-f?~]{2}|[()|]|\S")
_CODECS = {"ASCII": "latin-1", "UTF-16LE": "utf-16-le", "UTF-16BE": "utf-16-be"}
_WIDTH = {"UTF-16LE": 2, "UTF-16BE": 2, "UTF-8": 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """One pattern (or group of patterns) of one rule that matches one marking."""

    rule: YaraRule
    patterns: tuple[str, ...]
    check: str
    form: Form
    how: str  # the encoding or disguise: "UTF-16LE", "base64 of UTF-8 at offset 1", "hex XOR-ed with 0x45"

    def to_finding(self) -> Finding:
        names = "+".join(self.patterns)
        shown = self.form.spelling.replace("\n", "\\n")
        if self.check == SPLIT:
            what = f"patterns {', '.join(self.patterns)} together match the marking"
        elif self.patterns == (CONDITION,):
            what = "the condition compares the file with the marking"
        else:
            what = f"pattern {names} matches the marking"
        message = f"{what} {self.form.marking.text!r} (as {shown!r}, {self.how})"
        return finding(self.rule, self.check, message, f"{names}:{self.form.marking.text}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    hits: tuple[Hit, ...]
    unprobed: tuple[
        str, ...
    ]  # ids of rules whose probe yara-x refused (their patterns got the literal layer)


def check_patterns(rules: Sequence[YaraRule], markings: Markings) -> list[Finding]:
    """``sensitive-marking`` and ``split-marking`` findings on the rules' patterns, one per pattern and marking."""
    result = probe(rules, markings)
    nd = needles(markings)
    literal = [
        h for r in rules for h in (*literal_hits(r, nd), *split_literal_hits(r, nd), *condition_hits(r, nd))
    ]
    unique: dict[str, Finding] = {}
    excluded = {r.id: only_excluded(r) for r in rules}
    for h in (*result.hits, *literal):
        if h.patterns != (CONDITION,) and set(h.patterns) <= excluded[h.rule.id]:
            continue  # the rule matches only files WITHOUT the marking: no hunt
        f = h.to_finding()
        unique.setdefault(f.id, f)
    return list(unique.values())


def only_excluded(rule: YaraRule) -> set[str]:
    """Patterns the condition names only as ``not $x``: files holding them are excluded, never sought."""
    tokens = condition_tokens(rule.source.condition)
    if any(t == "them" or t.endswith("*") for t in tokens):
        return set()
    negated: set[str] = set()
    sought: set[str] = set()
    for i, t in enumerate(tokens):
        if t[:1] in "$#@!" and len(t) > 1:
            name = "$" + t[1:]
            nots = 0
            while nots < i and tokens[i - 1 - nots] == "not":
                nots += 1
            (negated if nots % 2 == 1 and t[0] == "$" else sought).add(name)
    return negated - sought


# --- yara-x layer ------------------------------------------------------------------------------------------


def probe_pattern(p: PatternSource, k: int) -> str:
    """The declaration as ``$p<k>``, without ``private``, with any ``xor`` range reaching down to key 0."""
    mods = _PRIVATE.sub(" ", p.modifiers) if "private" in p.names else p.modifiers
    if "xor" in p.names:
        mods = _XOR.sub(lambda m: f"xor(0-{m.group(2) or m.group(1)})", mods)
    return f"$p{k} = {p.value} {mods}\n"


def probe_rule(index: int, rule: YaraRule) -> str | None:
    patterns = rule.source.patterns
    if not patterns:
        return None
    body = "".join(probe_pattern(p, k) for k, p in enumerate(patterns))
    return f"rule p{index} {{\nstrings:\n{body}condition:\nany of them\n}}\n"


def probe(rules: Sequence[YaraRule], markings: Markings) -> ProbeResult:
    """Compile every rule's probe (batches, bisected on failure), scan the corpus, map matches to markings."""
    corpus = markings.corpus()
    probes = [(i, src) for i, r in enumerate(rules) if (src := probe_rule(i, r)) is not None]
    matches: dict[int, dict[int, list[tuple[int, int]]]] = {}
    failed: list[int] = []
    for start in range(0, len(probes), BATCH):
        _scan_batch(probes[start : start + BATCH], corpus.data, matches, failed)
    hits: list[Hit] = []
    for i, by_pattern in matches.items():
        hits += _rule_hits(rules[i], by_pattern, corpus)
    return ProbeResult(hits=tuple(hits), unprobed=tuple(rules[i].id for i in sorted(failed)))


def _scan_batch(
    batch: list[tuple[int, str]],
    data: bytes,
    matches: dict[int, dict[int, list[tuple[int, int]]]],
    failed: list[int],
) -> None:
    try:
        compiler = yara_x.Compiler()
        compiler.add_source("".join(src for _, src in batch))
        scanner = yara_x.Scanner(compiler.build())
        scanner.max_matches_per_pattern(MAX_MATCHES)
        scanner.set_timeout(SCAN_TIMEOUT)
        results = scanner.scan(data)
    except (yara_x.CompileError, yara_x.TimeoutError, yara_x.ScanError):
        if len(batch) == 1:
            failed.append(batch[0][0])
            return
        half = len(batch) // 2
        _scan_batch(batch[:half], data, matches, failed)
        _scan_batch(batch[half:], data, matches, failed)
        return
    for r in results.matching_rules:
        found = matches.setdefault(int(r.identifier[1:]), {})
        for p in r.patterns:
            if p.matches and len(p.matches) < MAX_MATCHES:  # at the cap: it matches everything, like a decoy
                found[int(p.identifier[2:])] = [(m.offset, m.offset + m.length) for m in p.matches]


def _covered(corpus: Corpus, a: int, b: int) -> Iterator[Span]:
    """Spans that the match [a, b) covers whole without reaching beyond the text around them."""
    i = bisect.bisect_left(corpus.starts, a)
    if i < len(corpus.spans):
        s = corpus.spans[i]
        if s.end <= b and s.outer[0] <= a and b <= s.outer[1]:
            yield s


def _touched(corpus: Corpus, a: int, b: int) -> Iterator[tuple[int, Span]]:
    """Spans (index, span) that the match [a, b) overlaps."""
    i = max(bisect.bisect_right(corpus.starts, a) - 1, 0)
    while i < len(corpus.spans) and corpus.spans[i].start < b:
        if corpus.spans[i].end > a:
            yield i, corpus.spans[i]
        i += 1


def _rule_hits(rule: YaraRule, by_pattern: dict[int, list[tuple[int, int]]], corpus: Corpus) -> list[Hit]:
    names = [p.name for p in rule.source.patterns]
    hits: list[Hit] = []
    whole: dict[int, set[int]] = {}  # pattern -> keys of real forms it covers whole
    pieces: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # span index -> (start, end, pattern)
    generic: dict[int, set[int]] = defaultdict(set)  # pattern -> keys whose decoy it touches
    for k, spans in by_pattern.items():
        real: dict[int, Span] = {}
        decoys: set[int] = set()
        for a, b in spans:
            for s in _covered(corpus, a, b):
                if s.decoy:
                    decoys.add(s.key)
                else:
                    real.setdefault(s.key, s)
            for i, s in _touched(corpus, a, b):
                if s.decoy:
                    generic[k].add(s.key)
                else:
                    pieces[i].append((max(a, s.start), min(b, s.end), k))
        whole[k] = {key for key in real if key not in decoys}
        best: dict[str, tuple[Span, str]] = {}
        for key, s in real.items():
            if key not in decoys:
                best.setdefault(s.form.marking.text, (s, s.label))
        for s in () if best else _truncated(corpus, spans, generic[k]):  # only when it matches no whole form
            best.setdefault(s.form.marking.text, (s, f"{s.label}, most of it"))
        hits += [
            Hit(rule=rule, patterns=(names[k],), check=SENSITIVE, form=s.form, how=how)
            for s, how in best.values()
        ]
    hits += _split_hits(rule, names, corpus, pieces, whole, generic)
    return hits


TRUNCATED_SHARE = 0.6  # a match of this much of a marking form, inside it, hunts the marking (``"P SECRE"``)
TRUNCATED_MIN = 6  # bytes


def _truncated(corpus: Corpus, spans: list[tuple[int, int]], generic: set[int]) -> Iterator[Span]:
    """Real forms a pattern matches most of from within (a truncated marking), never touching their decoys."""
    for a, b in spans:
        for _, s in _touched(corpus, a, b):
            inside = min(b, s.end) - max(a, s.start)
            if (
                not s.decoy
                and s.key not in generic
                and s.outer[0] <= a
                and b <= s.outer[1]
                and inside >= max(TRUNCATED_MIN, TRUNCATED_SHARE * (s.end - s.start))
                and not _one_word(corpus.data[max(a, s.start) : min(b, s.end)], s.form)
            ):
                yield s


def _one_word(data: bytes, form: Form) -> bool:
    """Whether ``data`` lies inside one word of a marking of several words (``secret`` or ``restrict`` of EU
    RESTRICTED, TRÈS SECRET): an ordinary word, not a piece of the marking. A piece of a marking of one word
    (``ONFIDENTIA``) still counts."""
    spellings = form.marking.spellings()
    words = {w for spelling in spellings for w in re.split(r"[\W_]+", spelling) if w} - set(spellings)
    low = data.lower()
    for w in words:
        for variant in (w, w.lower()):
            encoded = encode(variant, form.encoding)
            if encoded is not None and low in encoded.lower():
                return True
    return False


def _split_hits(
    rule: YaraRule,
    names: list[str],
    corpus: Corpus,
    pieces: dict[int, list[tuple[int, int, int]]],
    whole: dict[int, set[int]],
    generic: dict[int, set[int]],
) -> list[Hit]:
    best: dict[str, Hit] = {}
    for i, parts in pieces.items():
        s = corpus.spans[i]
        usable = sorted(p for p in parts if s.key not in generic[p[2]] and s.key not in whole[p[2]])
        if s.form.marking.text in best or len({k for _, _, k in usable}) < 2:
            continue
        reach, used = s.start, set[int]()
        for a, b, k in usable:
            if a - reach > (GAP if used else 0):
                break
            if b > reach:
                reach = b
                used.add(k)
        if reach >= s.end and len(used) >= 2:
            group = tuple(names[k] for k in sorted(used))
            best[s.form.marking.text] = Hit(rule=rule, patterns=group, check=SPLIT, form=s.form, how=s.label)
    return list(best.values())


# --- literal layer -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LiteralRun:
    """Bytes a pattern holds literally, how it was read, and whether its edges count as word boundaries."""

    data: bytes
    nocase: bool
    how: str
    min_len: int = 1  # shortest form worth reporting (random hex holds a 3-byte form by chance)
    open_left: bool = True  # the edge is the pattern's edge, a jump or a separator class
    open_right: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Needles:
    plain: dict[bytes, tuple[Form, ...]]  # first two bytes -> forms
    folded: dict[bytes, tuple[tuple[bytes, Form], ...]]  # ASCII-lowered
    xor: dict[bytes, tuple[tuple[bytes, Form], ...]]  # first four neighbour differences -> forms
    heads: frozenset[bytes]  # every proper prefix (2 bytes or more) of every form, as written and lowered


_NEEDLES: dict[Markings, Needles] = {}
XOR_MIN = 6


def needles(markings: Markings) -> Needles:
    if markings not in _NEEDLES:
        plain: dict[bytes, list[Form]] = defaultdict(list)
        folded: dict[bytes, list[tuple[bytes, Form]]] = defaultdict(list)
        xor: dict[bytes, list[tuple[bytes, Form]]] = defaultdict(list)
        heads: set[bytes] = set()
        for f in markings.forms():
            heads.update(d[:k] for d in (f.data, f.data.lower()) for k in range(2, len(d)))
            plain[f.data[:2]].append(f)
            low = f.data.lower()
            folded[low[:2]].append((low, f))
            if len(f.data) >= XOR_MIN:
                d = differences(f.data)
                xor[d[:4]].append((d, f))
        _NEEDLES[markings] = Needles(
            plain={k: tuple(v) for k, v in plain.items()},
            folded={k: tuple(dict(v).items()) for k, v in folded.items()},
            xor={k: tuple(v) for k, v in xor.items()},
            heads=frozenset(heads),
        )
    return _NEEDLES[markings]


def differences(data: bytes) -> bytes:
    """Each byte XOR its successor: the same for ``data`` and for ``data`` XOR-ed with any one key."""
    n = len(data) - 1
    if n <= 0:
        return b""
    return (int.from_bytes(data[:-1], "big") ^ int.from_bytes(data[1:], "big")).to_bytes(n, "big")


def literal_hits(rule: YaraRule, nd: Needles) -> list[Hit]:
    hits: list[Hit] = []
    for p in rule.source.patterns:
        best: dict[str, Hit] = {}
        for c in candidates(p):
            for form, how in search(c, nd):
                if (
                    form.marking.ordinary
                    and len(form.spelling.split()) == 1
                    and 2 * len(form.data) < len(c.data)
                ):
                    continue  # an ordinary word inside prose ("YOUR SECRET KEY:"), not a banner
                best.setdefault(
                    form.marking.text, Hit(rule=rule, patterns=(p.name,), check=SENSITIVE, form=form, how=how)
                )
        hits += best.values()
    return hits


SPLIT_PATTERNS = 64  # rules with more literal patterns than this get the yara-x split layer only
EDGE = 96  # bytes of each piece's end looked at: longer than any marking form


def split_literal_hits(rule: YaraRule, nd: Needles) -> list[Hit]:
    """Markings that two literal patterns make only when one follows the other (``"TOP SE"`` + ``"CRET//"``):
    the pair's joined edges hold a form that neither piece holds alone. The yara-x layer finds split markings
    whose pieces lie inside the marking; this finds them when a piece carries more text than the marking."""
    pieces = [
        (p.name, c)
        for p in rule.source.patterns
        for c in candidates(p)
        if c.how in ("text", "hex") and len(c.data) >= 2
    ][: SPLIT_PATTERNS + 1]
    if not 2 <= len(pieces) <= SPLIT_PATTERNS:
        return []
    alone = {id(c): {f.marking.text for f, _ in search(c, nd)} for _, c in pieces}
    best: dict[str, Hit] = {}
    for a_name, a in pieces:
        if not _ends_a_marking_start(a, nd):
            continue
        for b_name, b in pieces:
            if a_name == b_name:
                continue
            joined = LiteralRun(
                data=a.data[-EDGE:] + b.data[:EDGE], nocase=a.nocase and b.nocase, how="split", min_len=4
            )
            for form, _how in search(joined, nd):
                text = form.marking.text
                if text not in alone[id(a)] | alone[id(b)] and text not in best:
                    best[text] = Hit(
                        rule=rule,
                        patterns=(a_name, b_name),
                        check=SPLIT,
                        form=form,
                        how=f"{a_name} then {b_name} joined, {form.encoding}",
                    )
    return list(best.values())


CONDITION = "condition"
_READ = re.compile(r"\b(u?int)(8|16|32)(be)?\s*\(")
_CONSTANT = re.compile(r"\s*==\s*(0x[0-9A-Fa-f]+|[0-9]+)\b")
_CONSTANT_FIRST = re.compile(r"(0x[0-9A-Fa-f]+|[0-9]+)\s*==\s*$")
_CONDITION_TEXT = re.compile(r'(i?)(?:contains|equals|startswith|endswith|matches)?\s*"((?:[^"\\\n]|\\.)*)"')


def condition_hits(rule: YaraRule, nd: Needles) -> list[Hit]:
    """Markings the condition itself spells: integers compared with the file's bytes (``uint32be(i) ==
    0x544F5020 and uint32be(i + 4) == 0x53454352``, read in order) and texts it compares (``contains``)."""
    condition = strip_comments(rule.source.condition)
    runs = [
        LiteralRun(data=_read_bytes(condition), nocase=False, how="integers the condition reads", min_len=4)
    ]
    for m in _CONDITION_TEXT.finditer(condition):
        runs.append(
            LiteralRun(data=unescape(m.group(2)), nocase=bool(m.group(1)), how="a text of the condition")
        )
    best: dict[str, Hit] = {}
    for run in runs:
        for form, how in search(run, nd):
            best.setdefault(
                form.marking.text, Hit(rule=rule, patterns=(CONDITION,), check=SENSITIVE, form=form, how=how)
            )
    return list(best.values())


def _read_bytes(condition: str) -> bytes:
    """The constants compared with ``uintN[be](...)`` reads, as the bytes they stand for, in order."""
    out = bytearray()
    for m in _READ.finditer(condition):
        depth, i = 1, m.end()
        while i < len(condition) and depth:
            depth += {"(": 1, ")": -1}.get(condition[i], 0)
            i += 1
        after = _CONSTANT.match(condition, i)
        before = _CONSTANT_FIRST.search(condition, 0, m.start())
        constant = after.group(1) if after else before.group(1) if before else None
        if constant is None:
            continue
        width = int(m.group(2)) // 8
        value = int(constant, 0)
        if value < 1 << (8 * width):
            out += value.to_bytes(width, "big" if m.group(3) or width == 1 else "little")
    return bytes(out)


def _ends_a_marking_start(c: LiteralRun, nd: Needles) -> bool:
    """Whether the piece ends with the start of some form: only then can a following piece complete one."""
    data = c.data[-EDGE:]
    return any(d[-k:] in nd.heads for d in {data, data.lower()} for k in range(2, len(d) + 1))


def search(c: LiteralRun, nd: Needles) -> Iterator[tuple[Form, str]]:
    """Forms found in the candidate between word boundaries, longest first at each place; and XOR-ed forms."""
    found: list[tuple[int, int, Form, str]] = []
    hay = c.data.lower() if c.nocase else c.data
    for i in range(len(hay) - 1):
        key = hay[i : i + 2]
        options = nd.folded.get(key, ()) if c.nocase else ((f.data, f) for f in nd.plain.get(key, ()))
        for data, f in options:
            j = i + len(data)
            if len(data) >= c.min_len and hay.startswith(data, i) and _bounded(c, c.data, i, j, f):
                if c.nocase and f.spelling.isalpha() and not _as_documents_write(c.data[i:j], nd):
                    continue  # "secret" in lower case is an English word; SECRET or Secret is the marking
                found.append((i, j, f, f"{c.how}, {f.encoding}"))
    found += _xor_found(c, nd)
    for i, j, f, how in found:
        if not any(a <= i and j <= b and (b - a) > (j - i) for a, b, _, _ in found):
            yield f, how


def _as_documents_write(data: bytes, nd: Needles) -> bool:
    return any(f.data == data for f in nd.plain.get(data[:2], ()))


def _xor_found(c: LiteralRun, nd: Needles) -> list[tuple[int, int, Form, str]]:
    if len(c.data) < XOR_MIN:
        return []
    d = differences(c.data)
    out = []
    for i in range(len(d) - 3):
        for df, f in nd.xor.get(d[i : i + 4], ()):
            if not d.startswith(df, i):
                continue
            j = i + len(f.data)
            key = c.data[i] ^ f.data[0]
            if key == 0 or (key == 0x20 and c.data[i:j].swapcase() == f.data):
                continue  # the plain text, or only its case (the plain search's business)
            decoded = bytes(b ^ key for b in c.data)
            if _bounded(c, decoded, i, j, f):
                out.append((i, j, f, f"{c.how} XOR-ed with key 0x{key:02x}, {f.encoding}"))
    return out


def _bounded(c: LiteralRun, data: bytes, i: int, j: int, form: Form) -> bool:
    """Whether data[i:j] (the form) stands between word boundaries, as the marking's boundary rule wants."""
    if form.marking.boundary == NONE:
        return True
    before = _neighbour(data, i, form.encoding, before=True)
    after = _neighbour(data, j, form.encoding, before=False)
    left = c.open_left if before is None else not _wordlike(before)
    right = c.open_right if after is None else not _wordlike(after)
    return left and right


def _wordlike(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _neighbour(data: bytes, at: int, encoding: str, *, before: bool) -> str | None:
    """The character just before (or at) ``at`` in the form's encoding; None at the edge of the data."""
    width = {"UTF-16LE": 2, "UTF-16BE": 2}.get(encoding, 1)
    chunk = data[at - width : at] if before else data[at : at + width]
    if len(chunk) < width or (before and at < width):
        return None
    if encoding in ("ASCII", "UTF-8"):
        if chunk[0] < 0x80:
            return chunk.decode("ascii")
        text = (data[max(at - 4, 0) : at] if before else data[at : at + 4]).decode("utf-8", "ignore")
        return (text[-1:] if before else text[:1]) or "x"  # undecodable: treat as a letter
    if encoding in ("UTF-16LE", "UTF-16BE"):
        return chunk.decode(encoding.lower().replace("utf-16", "utf-16-"), "replace")
    if chunk[0] < 0x80:
        return chunk.decode("ascii")
    if encoding in ("CP1251", "CP1252", "KOI8-R", "KOI8-U"):
        return chunk.decode(encoding.lower(), "replace")
    return "x"  # a lead or trail byte of a multi-byte CJK encoding: part of a word


# --- what a pattern holds literally ------------------------------------------------------------------------


def candidates(p: PatternSource) -> Iterator[LiteralRun]:
    nocase = "nocase" in p.names
    if p.kind == TEXT:
        data = p.text_bytes()
        yield LiteralRun(data=data, nocase=nocase, how="text")
        yield from _embedded(data, "text")
    elif p.kind == HEX:
        for run, left, right in hex_runs(p.value):
            yield LiteralRun(data=run, nocase=False, how="hex", min_len=4, open_left=left, open_right=right)
            yield from _embedded(run, "hex")
    elif p.kind == REGEX:
        body, _, flags = p.value[1:].rpartition("/")
        for run, left, right in regex_runs(body):
            yield LiteralRun(
                data=run, nocase=nocase or "i" in flags, how="regex", open_left=left, open_right=right
            )


def _embedded(data: bytes, where: str) -> Iterator[LiteralRun]:
    """Base64 or hex written out inside a text (or a hex run of text): their decoded bytes."""
    for m in _B64_TEXT.finditer(data):
        text = m.group().rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
        for shift in range(4):
            chunk = text[shift:]
            chunk = chunk[: len(chunk) - len(chunk) % 4] if len(chunk) % 4 != 1 else chunk[:-1]
            try:
                decoded = base64.b64decode(chunk + b"=" * (-len(chunk) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            yield LiteralRun(
                data=decoded, nocase=False, how=f"base64 written in a {where} pattern", min_len=4
            )
    for m in _HEX_TEXT.finditer(data):
        yield LiteralRun(
            data=bytes.fromhex(m.group().decode()),
            nocase=False,
            how=f"hex written in a {where} pattern",
            min_len=4,
        )


def hex_runs(value: str) -> Iterator[tuple[bytes, bool, bool]]:
    """Concrete byte runs of a hex pattern; jumps, wildcards and alternatives end a run (edges stay open)."""
    body = strip_comments(value.strip()[1:-1])
    run = bytearray()
    for token in _HEX_TOKEN.findall(body):
        if re.fullmatch(r"[0-9A-Fa-f]{2}", token):
            run.append(int(token, 16))
        else:
            if run:
                yield bytes(run), True, True
            run = bytearray()
    if run:
        yield bytes(run), True, True


_REGEX_ESCAPE = re.compile(
    r"\\x([0-9A-Fa-f]{2})|\\(.)|(\[[^\]]*\]|\.)|([()|^$])|([?*+]|\{\d*,?\d*\})|(.)", re.S
)
_SPACES = {"s", "x20"}
_OPEN_CLASSES = ("\\s", " ", "\\W", "\\b", ".")


def regex_runs(body: str) -> Iterator[tuple[bytes, bool, bool]]:
    """Literal runs of a regex; a run's edge is a boundary at the regex's ends and at a separator (``\\s``)."""
    runs: list[tuple[str, bool, bool]] = []
    run, left = "", True
    for m in _REGEX_ESCAPE.finditer(body):
        hexbyte, escaped, klass, group, quant, char = m.groups()
        if quant is not None:  # the previous character is optional or repeated: it ends the run
            if run and not run.endswith(" "):
                run = run[:-1]
            runs.append((run, left, False))
            run, left = "", False
            continue
        if hexbyte is not None or char is not None:
            run += chr(int(hexbyte, 16)) if hexbyte else char
        elif escaped is not None and escaped == "s":
            run += " "
        elif escaped is not None and not escaped.isalnum():
            run += escaped
        else:
            token = m.group()
            boundary = (
                group in ("^", "$") or token in _OPEN_CLASSES or (klass or "").strip("[]") in (" ", "\\s")
            )
            runs.append((run, left, boundary))
            run, left = "", boundary
    runs.append((run, left, True))
    for text, lo, hi in runs:
        if len(text.strip()) >= 2:
            yield text.encode("utf-8", "surrogatepass"), lo, hi
