"""Canaries per rule: each new or changed rule, on its own, over the canary corpus (:mod:`overt.avdb.canary`).

A rule tree could switch canaries off for every rule at once, so nothing of the tree but the rule itself (and
what it names) takes part:

* no ``global`` rule of the tree is compiled with it (a ``global rule { condition: filesize > 4KB }`` anywhere
  would otherwise gate every rule), and the rule loses its own ``global`` and ``private`` modifiers;
* its ``filesize`` bounds are lifted: a comparison whose two sides hold only ``filesize``, numbers (``4KB``,
  ``0x1000``) and arithmetic becomes ``true`` (``false`` under an odd number of ``not``), in either order;
  ``filesize`` inside other expressions (``uint32(filesize - 4)``) stays. If the lifted rule does not compile,
  the rule as written runs instead;
* the rules it names in its condition (directly or through other rules; the definition in its own file first)
  come with it, lifted the same way and without ``global`` or ``private``, with every involved file's imports;
* two rules of one name never share a namespace: a second rule of the same name in another file hides neither
  (compiling the tree as one fails and, before, ran no canary at all).

Many rules share one namespace when their names do not clash, so a 10,000-rule tree compiles in a few calls;
a namespace that does not compile falls back to one per rule, and a rule that does not compile alone is
skipped here (the ``compile`` check reports it). Hash signatures are checked against the canaries' digests.

A hit on a marked canary or on any ordinary document blocks; a hit on an ordinary file that is no document (an
executable, an image, a config, a script) is advisory: the rule is broad, which is the vendor's false-positive
problem, not a document hunt.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import yara_x

from overt.avdb.canary import Canary, corpus
from overt.avdb.findings import ADVISORY, BLOCKING, Finding, finding
from overt.avdb.rules import RuleSet, YaraRule, new_compiler
from overt.avdb.yarasource import rule_text

CHECK = "canary-hit"
# A hit on one of these ordinary files says a rule is broad, not that it hunts documents: advisory.
NOT_DOCUMENTS = frozenset({"pe", "elf", "png", "json", "sh"})
CHUNK = 400  # rules per shared namespace
_LEX = re.compile(
    r"(?P<skip>\s+|//[^\n]*|/\*.*?\*/)"
    r'|(?P<str>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<num>0x[0-9A-Fa-f]+|0o[0-7]+|\d+(?:\.\d+)?(?:KB|MB)?)"
    r"|(?P<id>[$#@!][A-Za-z0-9_]*\*?|[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|<<|>>|\.\.|\S)",
    re.S,
)
_REGEX = re.compile(r"/(?:[^/\\\n]|\\.)*/[a-zA-Z]*")
_COMPARE = frozenset({"<", "<=", ">", ">=", "==", "!="})
_ARITH = frozenset({"+", "-", "*", "\\", "%", "&", "|", "^", "<<", ">>", "~"})
_BEFORE = frozenset({"(", "and", "or", "not", ",", ":"})
_AFTER = frozenset({")", "and", "or", ","})
_CONSTANT_WORDS = frozenset({"true", "false", "and", "or", "not", "filesize"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


def _tokens(condition: str) -> list[_Token]:
    """The condition's significant tokens with their offsets (comments and whitespace dropped)."""
    out: list[_Token] = []
    i = 0
    while i < len(condition):
        if out and out[-1].text == "matches" and condition[i] == "/":
            m = _REGEX.match(condition, i)
            if m:
                out.append(_Token("regex", m.group(), i, m.end()))
                i = m.end()
                continue
        m = _LEX.match(condition, i)
        if m is None:  # an unterminated string: the rest is one token
            out.append(_Token("str", condition[i:], i, len(condition)))
            break
        if m.lastgroup != "skip":
            out.append(_Token(str(m.lastgroup), m.group(), i, m.end()))
        i = m.end()
    return out


def _matching(tokens: Sequence[_Token], at: int, step: int) -> int:
    """The index of the parenthesis matching the one at ``at`` (step 1: forwards, -1: backwards), or -1."""
    opening, closing = ("(", ")") if step == 1 else (")", "(")
    depth = 0
    i = at
    while 0 <= i < len(tokens):
        if tokens[i].text == opening:
            depth += 1
        elif tokens[i].text == closing:
            depth -= 1
            if depth == 0:
                return i
        i += step
    return -1


def _operand(tokens: Sequence[_Token], at: int, step: int) -> int:
    """How far an operand of only filesize, numbers and arithmetic reaches from ``at``; the last index it
    covers (``at - step`` when there is none)."""
    i, last = at, at - step
    opening = "(" if step == 1 else ")"
    while 0 <= i < len(tokens):
        t = tokens[i]
        if t.text == opening:
            j = _matching(tokens, i, step)
            lo, hi = sorted((i, j))
            if j < 0 or not all(_arith(x) or x.text in ("(", ")") for x in tokens[lo + 1 : hi]):
                return last
            i = last = j
        elif _arith(t):
            last = i
        else:
            return last
        i += step
    return last


def _arith(t: _Token) -> bool:
    return t.kind in ("num", GATE) or t.text == "filesize" or (t.kind == "op" and t.text in _ARITH)


GATE = "gate"  # a value that says nothing of what the file holds: the clock, or a statistic of a fixed range


def _merge_gates(tokens: Sequence[_Token]) -> list[_Token]:
    """``time.now()`` and ``math.entropy(0, filesize)`` (any math statistic over a range of numbers and
    filesize) as one token each, so that a comparison of them with a number is lifted like a filesize bound:
    a rule gated on the date or on the whole file's entropy must still meet the canaries."""
    out: list[_Token] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.text in ("time", "math") and i + 3 < len(tokens) and tokens[i + 1].text == ".":
            close = _matching(tokens, i + 3, 1) if tokens[i + 3].text == "(" else -1
            args = tokens[i + 4 : close] if close > 0 else ()
            known = (t.text == "time" and tokens[i + 2].text == "now") or (
                t.text == "math" and tokens[i + 2].text in _MATH_STATS
            )
            if known and close > 0 and all(_arith(a) or a.text in ("(", ")", ",") for a in args):
                out.append(_Token(GATE, "filesize", t.start, tokens[close].end))
                i = close + 1
                continue
        out.append(t)
        i += 1
    return out


_MATH_STATS = frozenset(
    {"entropy", "mean", "deviation", "serial_correlation", "monte_carlo_pi", "count", "percentage", "mode"}
)


def _negated(tokens: Sequence[_Token], lo: int, hi: int) -> bool:
    """Whether tokens[lo..hi] sit under an odd number of ``not``."""
    flips = 0
    for j in range(lo):
        if tokens[j].text != "not":
            continue
        k = j + 1
        if k < len(tokens) and tokens[k].text == "(":
            end = _matching(tokens, k, 1)
        else:  # up to the next and/or/','/unmatched ')' at this depth
            depth, end = 0, len(tokens) - 1
            for n in range(k, len(tokens)):
                text = tokens[n].text
                depth += (text == "(") - (text == ")")
                if depth < 0 or (depth == 0 and text in ("and", "or", ",")):
                    end = n - 1
                    break
        if end >= hi:
            flips += 1
    return flips % 2 == 1


def lift_filesize(condition: str, tokens: Sequence[_Token] | None = None) -> str:
    """``condition`` with every bound of filesize by a number replaced by ``true`` (``false`` if negated), and
    likewise every comparison of the clock or of a whole-range statistic (:func:`_merge_gates`).

    ``tokens``: the condition's :func:`_tokens`, if the caller has them already.
    """
    tokens = _merge_gates(_tokens(condition) if tokens is None else tokens)
    spans: list[tuple[int, int, str]] = []
    for k, t in enumerate(tokens):
        if t.kind != "op" or t.text not in _COMPARE or (spans and spans[-1][1] > t.start):
            continue
        lo, hi = _operand(tokens, k - 1, -1), _operand(tokens, k + 1, 1)
        if lo > k - 1 or hi < k + 1:
            continue
        if lo > 0 and tokens[lo - 1].text not in _BEFORE:
            continue
        if hi + 1 < len(tokens) and tokens[hi + 1].text not in _AFTER:
            continue
        if not any(x.text == "filesize" for x in tokens[lo : hi + 1]):
            continue
        spans.append((tokens[lo].start, tokens[hi].end, "false" if _negated(tokens, lo, hi) else "true"))
    for start, end, value in reversed(spans):
        condition = condition[:start] + value + condition[end:]
    return condition


_NUM = r"(0x[0-9A-Fa-f]+|\d+(?:KB|MB)?)"
_READ_AT = r"\bu?int(?:8|16|32)(?:be)?\s*\(\s*" + _NUM + r"\s*\)"
FAR = 64 << 10  # an offset this far into a file: only big files have it (the canaries stop at 5 MB)
MANY = 100  # this many occurrences of a pattern: only big files have them


def _number(text: str) -> int:
    if text.endswith(("KB", "MB")):
        return int(text[:-2]) << (10 if text.endswith("KB") else 20)
    return int(text, 0)


def lift_positions(condition: str) -> str:
    """``condition`` without its gates on where in a big file something lies, which canaries (at most 5 MB,
    their markings near the top) cannot meet: ``defined uint8(8000000)``, a read at a far constant offset
    compared with anything, ``$a at 6000000`` and ``$a in (6000000..filesize)`` (then just ``$a``), ``@a[i] >
    5500000``, and ``#a > 2000`` (then ``$a``)."""
    rewrites = (
        (r"\bdefined\s+" + _READ_AT, lambda m: "true"),
        (
            _READ_AT + r"\s*(?:==|!=|<=|>=|<|>)\s*" + _NUM,
            lambda m: "true" if _number(m.group(1)) >= FAR else m.group(0),
        ),
        (r"(\$\w*)\s+at\s+" + _NUM, lambda m: m.group(1) if _number(m.group(2)) >= FAR else m.group(0)),
        (
            r"(\$\w*)\s+in\s*\(\s*" + _NUM + r"\s*\.\.[^)]*\)",
            lambda m: m.group(1) if _number(m.group(2)) >= FAR else m.group(0),
        ),
        (
            r"@\w*(?:\[[^\]]*\])?\s*(?:>|>=)\s*" + _NUM,
            lambda m: "true" if _number(m.group(1)) >= FAR else m.group(0),
        ),
        (
            r"#(\w*)\s*(?:>|>=)\s*" + _NUM,
            lambda m: f"${m.group(1)}" if _number(m.group(2)) >= MANY else m.group(0),
        ),
    )
    for pattern, to in rewrites:
        condition = re.sub(pattern, to, condition)
    return condition


# --- which rules compile together -----------------------------------------------------------------------


@dataclass(slots=True)
class RuleIndex:
    by_name: dict[str, list[YaraRule]]
    lifted: dict[str, str] = field(default_factory=dict)  # rule id -> its lifted text
    plain: dict[str, str] = field(default_factory=dict)  # rule id -> its text, modifiers dropped
    deps: dict[str, list[YaraRule]] = field(default_factory=dict)  # rule id -> needed()
    lexed: dict[str, list[_Token]] = field(default_factory=dict)  # rule id -> its condition's tokens

    @classmethod
    def of(cls, rules: Sequence[YaraRule]) -> RuleIndex:
        by_name: dict[str, list[YaraRule]] = {}
        for r in rules:
            by_name.setdefault(r.name, []).append(r)
        return cls(by_name=by_name)

    def text(self, rule: YaraRule, *, lift: bool) -> str:
        cache = self.lifted if lift else self.plain
        if rule.id not in cache:
            condition = (
                lift_positions(lift_filesize(rule.source.condition, self.tokens(rule))) if lift else None
            )
            cache[rule.id] = rule_text(rule.source, condition=condition, drop=("global", "private"))
        return cache[rule.id]

    def tokens(self, rule: YaraRule) -> list[_Token]:
        if rule.id not in self.lexed:
            self.lexed[rule.id] = _tokens(rule.source.condition)
        return self.lexed[rule.id]

    def is_lifted(self, rule: YaraRule) -> bool:
        """Whether lifting changed ``rule`` or a rule it names."""
        return any(self.text(r, lift=True) != self.text(r, lift=False) for r in self.needed(rule))

    def resolve(self, name: str, near: YaraRule) -> list[YaraRule]:
        found = self.by_name.get(name, [])
        return [next((r for r in found if r.file == near.file), found[0])] if found else []

    def needed(self, rule: YaraRule) -> list[YaraRule]:
        """``rule`` after every rule it names, transitively, each before its first use."""
        if rule.id in self.deps:
            return self.deps[rule.id]
        done: dict[str, YaraRule] = {}
        stack: list[tuple[YaraRule, list[YaraRule]]] = [(rule, self.named(rule))]
        on_stack = {rule.id}
        while stack:
            r, todo = stack[-1]
            if todo:
                dep = todo.pop()
                if dep.id not in done and dep.id not in on_stack:
                    stack.append((dep, self.named(dep)))
                    on_stack.add(dep.id)
                continue
            stack.pop()
            on_stack.discard(r.id)
            done.setdefault(r.id, r)
        self.deps[rule.id] = list(done.values())
        return self.deps[rule.id]

    def named(self, rule: YaraRule) -> list[YaraRule]:
        """The rules ``rule``'s condition names (not module fields, which follow a '.')."""
        tokens = self.tokens(rule)
        out: dict[str, YaraRule] = {}
        for k, t in enumerate(tokens):
            if t.kind == "id" and t.text[0] not in "$#@!" and (k == 0 or tokens[k - 1].text != "."):
                out.update((r.id, r) for r in self.resolve(t.text, rule) if r.id != rule.id)
        return list(reversed(out.values()))


@dataclass(slots=True)
class _Unit:
    """Rules compiled in one namespace: names unique, each rule's named rules included."""

    rules: dict[str, YaraRule] = field(default_factory=dict)  # name -> rule
    targets: list[YaraRule] = field(default_factory=list)

    def fits(self, needed: Sequence[YaraRule]) -> bool:
        return len(self.rules) < CHUNK and all(self.rules.get(r.name, r).id == r.id for r in needed)

    def add(self, target: YaraRule, needed: Sequence[YaraRule]) -> None:
        for r in needed:
            self.rules.setdefault(r.name, r)
        self.targets.append(target)

    def source(self, index: RuleIndex, *, lift: bool) -> str:
        imports = dict.fromkeys(i for r in self.rules.values() for i in r.imports)
        head = "".join(f'import "{i}"\n' for i in imports)
        return head + "\n".join(index.text(r, lift=lift) for r in self.rules.values()) + "\n"


def group_units(targets: Sequence[YaraRule], index: RuleIndex) -> list[_Unit]:
    units: list[_Unit] = []
    for target in targets:
        needed = index.needed(target)
        unit = next((u for u in units[-4:] if u.fits(needed)), None)
        if unit is None:
            unit = _Unit()
            units.append(unit)
        unit.add(target, needed)
    return units


# --- compiling and scanning -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Compiled:
    rules: yara_x.Rules
    targets: dict[tuple[str, str], tuple[YaraRule, bool]]  # (namespace, name) -> (rule, bounds lifted)


def _add(compiler: yara_x.Compiler, namespace: str, source: str) -> bool:
    compiler.new_namespace(namespace)
    try:
        compiler.add_source(source)
    except yara_x.CompileError:
        return False
    return True


def compile_units(units: Sequence[_Unit], index: RuleIndex) -> list[_Compiled]:
    """The units compiled together; if the whole will not build, each unit on its own."""
    compiled = _compile_together(units, index)
    if compiled is not None:
        return [compiled]
    alone = (_compile_together([u], index) for u in units)
    return [c for c in alone if c is not None]


def _compile_together(units: Sequence[_Unit], index: RuleIndex) -> _Compiled | None:
    compiler = new_compiler()
    targets: dict[tuple[str, str], tuple[YaraRule, bool]] = {}
    for n, unit in enumerate(units):
        if _add(compiler, f"u{n}", unit.source(index, lift=True)):
            targets.update(((f"u{n}", t.name), (t, index.is_lifted(t))) for t in unit.targets)
            continue
        for m, t in enumerate(unit.targets):  # one namespace per rule; as written if lifting broke it
            alone = _Unit()
            alone.add(t, index.needed(t))
            for lift in (True, False):
                namespace = f"u{n}r{m}{'l' if lift else 'p'}"
                if _add(compiler, namespace, alone.source(index, lift=lift)):
                    targets[(namespace, t.name)] = (t, lift and index.is_lifted(t))
                    break
    try:
        return _Compiled(rules=compiler.build(), targets=targets)
    except yara_x.CompileError:
        return None


def _yara_hits(
    rules: Sequence[YaraRule], targets: Sequence[YaraRule], canaries: Sequence[Canary]
) -> list[Finding]:
    if not targets:
        return []
    index = RuleIndex.of(rules)
    found = []
    for compiled in compile_units(group_units(targets, index), index):
        scanner = yara_x.Scanner(compiled.rules)
        scanner.fast_scan(True)
        for canary in canaries:
            for m in scanner.scan(canary.data).matching_rules:
                hit = compiled.targets.get((m.namespace, m.identifier))
                if hit is not None:
                    rule, lifted = hit
                    how = (
                        "compiled alone, its bounds on size, position, the clock or whole-file statistics lifted"
                        if lifted
                        else "compiled alone"
                    )
                    found.append(
                        finding(
                            rule,
                            CHECK,
                            f"{how}, it matches {canary.describe()}",
                            canary.name,
                            severity=ADVISORY if canary.format in NOT_DOCUMENTS else BLOCKING,
                        )
                    )
    return found


def _hash_hits(rules: RuleSet, changed: set[str], canaries: Sequence[Canary]) -> list[Finding]:
    wanted = {(h.hash, h.size): h for h in rules.hashes if h.id in changed}
    if not wanted:
        return []
    found = []
    for canary in canaries:
        for algorithm in (hashlib.md5, hashlib.sha1, hashlib.sha256):
            sig = wanted.get((algorithm(canary.data).hexdigest(), len(canary.data)))
            if sig is not None:
                found.append(
                    finding(sig, CHECK, f"the hash signature matches {canary.describe()}", canary.name)
                )
    return found


def check_canaries(
    rules: RuleSet, changed: set[str], *, markings: Sequence[str] | None = None
) -> tuple[list[Finding], int]:
    """Canary hits of the rules and hash signatures whose ids are in ``changed``, and how many canaries ran.

    ``markings``: the marking list the marked canaries carry (default: the packaged list).
    """
    canaries = corpus(markings)
    return _yara_hits(rules.yara, targets(rules.yara, changed), canaries) + _hash_hits(
        rules, changed, canaries
    ), len(canaries)


def targets(rules: Sequence[YaraRule], changed: set[str]) -> list[YaraRule]:
    """The rules to run alone: each changed public rule, and each public rule that names a changed private one
    (directly or through other rules). A private rule reports no match of its own, so it runs inside the
    public rules that use it. A rule whose lifted condition reads nothing of the file (a ``global`` size gate,
    ``condition: true``) is a constant, not a detection: it is skipped."""
    index = RuleIndex.of(rules)
    out = []
    for r in rules:
        if "private" in r.source.modifiers or _constant(
            index.tokens(r), index.text(r, lift=True) != index.text(r, lift=False)
        ):
            continue
        if r.id in changed or any(d.id in changed for d in index.needed(r)):
            out.append(r)
    return out


def _constant(tokens: Sequence[_Token], lifted: bool) -> bool:
    """Whether the condition reads nothing of the file but its size (which lifting makes constant)."""
    words = {t.text for t in tokens if t.kind == "id"}
    return bool(tokens) and words <= _CONSTANT_WORDS and (lifted or "filesize" not in words)
