"""Per-rule document-hunting checks that read what a rule matches: ``document-only`` and ``collection``, and
:func:`check_rule`, which runs them with ``targeting`` and ``self-name`` (:mod:`overt.avdb.targeting`).

The checks read a rule through :class:`~overt.avdb.ruleview.RuleView` (its patterns' readings, the formats
and code they name). Markings inside patterns are :mod:`overt.avdb.patterns`'s job; running rules over
documents is :mod:`overt.avdb.canary_check`'s. Pure: no I/O, no compiling.

What counts, and why (measured on about 14,000 public vendor rules, where every flag is a false positive unless
the rule really matches nearly every document):

* ``document-only`` (blocking): the rule names a document format (PDF, OLE2, OOXML/zip, RTF, ODF) by its magic
  in any spelling (a text, hex or regex pattern, ``uint32``/``uint32be``/``uint16``/``uint8`` comparisons in hex
  or decimal, ``vt.FileType``/``magic`` literals), and nothing it matches is code: no PE/ELF/Mach-O/dex gate or
  module, no script (VBA, JScript, PowerShell, WScript, XLM macro sheets), no PDF action (with or without
  ``/``), no link (a URL in text or regex: phishing), no OOXML template injection, no embedded executable (MZ in
  hex or base64), no exploit marker, no JAR/APK marker; and its other patterns are natural language (not a path
  or package part name such as ``xl/macrosheets/``), or there are none (a format-and-size rule matches every
  such document). ``filetype == "PDF"`` (the external compared with a document format) names a format too.
  A code indicator clears the rule only where the condition can match on it (``$js``, ``any of them`` over
  code and words, a PE alternative), not where it is only mentioned (``#js >= 0``, ``not $js``, ``$mz or not
  $mz``, ``#v + #s < 1000``); the tree's ``global`` rules are part of every rule's condition (a global PDF gate
  makes a rule of words document-only); words are natural in any script (UTF-8 read as text), and a PDF
  ``/Title (...)`` or OOXML ``<dc:creator>...`` with words inside is a document's metadata.
  Only what the rule *matches* counts: meta and names can say anything.
* ``collection`` (blocking): meta keys in any spelling (``upload_on_match``, ``uploadOnMatch``,
  ``sample_submission``, ``collect``, ``exfil``) unless set false, action keys whose value is a verb of sending
  (``action = "upload"``, ``on_hit = "retrieve_file"``), such tags, a ``Collect_``/``Upload_``... rule name,
  and a description that says the *rule* sends matches ("uploads matching files", "collect documents
  containing ...", and the same in German, French, Spanish and Russian: "bei einem Treffer wird die Datei
  hochgeladen"), not what malware does ("a stealer that uploads browser data", "ein Stealer, der ...").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from overt.avdb.findings import Finding, finding
from overt.avdb.rules import YaraRule
from overt.avdb.ruleview import (
    INT_READ,
    RuleView,
    condition_formats,
    pattern_format,
    readings,
    referenced,
    text_readings,
)
from overt.avdb.targeting import check_targeting
from overt.avdb.yarasource import PatternSource

# --- document-only ----------------------------------------------------------------------------------------

# What a pattern of natural language may not contain.
_CODE_PUNCTUATION = re.compile(r"[(){};=<>$\\|]|^/|<<|>>")
# Keywords every PDF carries: a pattern of them says "this is a PDF", like the magic.
PDF_STRUCTURE = re.compile(
    r"(?:%%EOF|trailer|startxref|xref|endobj|(?:\d+ \d+ )?obj|endstream|stream)\s*", re.I
)


# A path or part name with no space (``xl/macrosheets/``, ``word/media/image1.png``): a file's structure.
_PATH_LIKE = re.compile(r"^\S*[\\/]\S*$|^\S+\.(?:xml|rels|bin|dat|png|jpe?g|gif|emf|wmf)$", re.I)
# A link: a URL (in text or as a regex) or a PDF link action. Phishing, not document hunting.
_LINK = re.compile(r"\bh(?:tt|xx)ps?\??:(?:\\?/){2}|\bwww\.[\w-]+\.|/URI\b", re.I)


# Document metadata with words inside: a PDF's ``/Title (...)``, an OOXML ``<dc:creator>...</dc:creator>``.
_METADATA = re.compile(
    r"^(?:<<\s*)?/(?:Title|Subject|Author|Keywords)\s*[(<]\s*(?P<pdf>[^()<>]*?)\s*[)>]?\s*(?:>>)?$"
    r"|^<(?P<tag>(?:dc|cp|dcterms):(?:creator|title|subject|description|keywords|lastModifiedBy))>"
    r"(?P<xml>[^<>]*?)(?:</(?P=tag)>)?$",
    re.I,
)


def _words(p: PatternSource) -> str:
    """A pattern as the words a person reads (UTF-8 where it decodes, any script), metadata keys dropped."""
    text = " ".join(t.replace("\0", " ") for t in text_readings(p)[:1]).strip()
    m = _METADATA.match(text)
    return (m.group("pdf") if m.group("pdf") is not None else m.group("xml")).strip() if m else text


def is_natural(p: PatternSource) -> bool:
    """Words a document says (in any script, or as a document's title, subject, author or keywords), not a
    program's strings, a file structure or a path."""
    text = _words(p)
    letters = sum(ch.isalpha() for ch in text)
    return (
        len(text) >= 3
        and letters >= 0.6 * len(text)
        and not _CODE_PUNCTUATION.search(text)
        and not _PATH_LIKE.search(text)
    )


def _link(p: PatternSource) -> str:
    """The URL or link action a pattern matches, or ''."""
    m = next((m for t in (p.value, *readings(p)) if (m := _LINK.search(t))), None)
    return m.group() if m else ""


def _gate_atom(view: RuleView, gates: set[str], atom: list[str]) -> bool:
    """A test of format or size only: magic reads, filesize, plain references to format patterns."""
    for n, t in enumerate(atom):
        if t[:1] in "#@!" or t == "not" or (t == "in" and atom[n + 1 : n + 3] != ["(", "0"]):
            return False
        if t[:1] == "$" and not all(name in gates for name in referenced([t], list(view.patterns))[0]):
            return False
        if re.fullmatch(r"[A-Za-z_]\w*", t) and not (
            INT_READ.match(t) or t in ("filesize", "KB", "MB", "at", "in", "of", "any", "all", "them", "true")
        ):
            return False
    return True


def _format_alone(view: RuleView, gates: set[str]) -> bool:
    """Whether the condition tests only format and size (a rule that hunts documents)."""
    return _gate_atom(view, gates, [t for t in view.tokens if t not in ("(", ")", "and", "or")])


def _formats(view: RuleView) -> list[str]:
    return [
        *condition_formats(view.tokens),
        *(fmt for p in view.source.patterns if (fmt := pattern_format(p))),
    ]


def _gates(view: RuleView) -> set[str]:
    return {
        p.name
        for p in view.source.patterns
        if pattern_format(p) or any(PDF_STRUCTURE.fullmatch(t.strip()) for t in readings(p)[:1])
    }


def _clears(view: RuleView) -> str:
    """The code, exploit or link indicator the condition can match on, or '' (one only mentioned, as in
    ``#js >= 0``, ``not $js`` or ``$mz or not $mz``, clears nothing)."""
    links = frozenset(p.name for p in view.source.patterns if _link(p))
    return view.admits_code(also=links)


def _others(view: RuleView, gates: set[str]) -> list[PatternSource]:
    """The patterns that are neither format nor a code indicator the condition only mentions."""
    return [p for p in view.source.patterns if p.name not in gates and not view.code[p.name] and not _link(p)]


def global_rules(rules: Sequence[YaraRule]) -> tuple[YaraRule, ...]:
    """The ``global`` rules of a tree: their conditions are part of every rule's (pass to :func:`check_rule`)."""
    return tuple(r for r in rules if "global" in r.source.modifiers)


def check_document_only(view: RuleView, globals: Sequence[RuleView] = ()) -> list[Finding]:
    """``document-only`` on one rule; ``globals``: the tree's global rules, whose conditions every match of the
    rule also meets (a global PDF magic gates every rule of the tree)."""
    if "private" in view.source.modifiers:  # a private rule reports no match of its own
        return []
    scope = [
        view,
        *(g for g in globals if (g.source.name, g.rule.file) != (view.source.name, view.rule.file)),
    ]
    formats = [fmt for v in scope for fmt in _formats(v)]
    if not formats or any(_clears(v) for v in scope):
        return []
    gates = {v: _gates(v) for v in scope}
    others = [p for v in scope for p in _others(v, gates[v])]
    if not all(is_natural(p) for p in others):
        return []
    shown = "/".join(sorted(set(formats)))
    if not others:
        if not all(_format_alone(v, gates[v]) for v in scope):
            return []
        message = f"matches {shown} documents on format (and size) alone, with no other strings and no code"
        return [finding(view.rule, "document-only", message, f"{shown}: format alone")]
    words = sorted({_words(p) for p in others})
    message = (
        f"matches only {shown} documents, with natural-language strings and no code or exploit indicator"
    )
    return [finding(view.rule, "document-only", message, f"{shown}: " + "|".join(words)[:200])]


# --- collection -------------------------------------------------------------------------------------------

_COLLECT_WORDS = frozenset(
    {"upload", "uploads", "collect", "collection", "exfil", "exfiltrate", "exfiltration", "harvest"}
    | {"submit", "submission", "submissions", "grab", "siphon", "retrieve", "retrieval", "gather", "capture"}
    | {"send"}
)
# Verbs a meta value gives as what to do on a match (``on_hit = "retrieve_file"``, ``action = "upload"``).
_COLLECT_VERBS = frozenset(
    {"upload", "uploads", "collect", "exfil", "exfiltrate", "harvest", "submit", "grab", "siphon", "retrieve"}
    | {"gather", "capture", "send", "forward", "transmit"}
)
# Words of a meta key that asks what to do on a match (``action``, ``on_hit``, ``onMatch``, ``response``).
_ACTION_WORDS = frozenset(
    {
        "action",
        "actions",
        "hit",
        "hits",
        "match",
        "matched",
        "matches",
        "onmatch",
        "mode",
        "purpose",
        "intent",
    }
    | {"task", "response", "policy", "disposition", "handling", "behavior", "behaviour", "trigger", "then"}
)
_COLLECT_TAGS = frozenset(
    {"collect", "collection", "exfil", "exfiltrate", "exfiltration", "upload", "harvest", "grab", "siphon"}
    | {"gather", "retrieve", "autoupload", "auto_upload", "upload_on_match"}
)
_COLLECT_NAME = re.compile(r"^(?:collect|upload|exfil|harvest|grab|gather|siphon|retrieve)[_-]", re.I)
_FALSE = frozenset({"false", "no", "0", "none", "off", "never", ""})
_VERB = re.compile(
    r"\b(?:collect|upload|exfiltrat|exfil|harvest|retriev|send|submit|cop(?:y|ies)|grab|gather|fetch|forward"
    r"|transmit|ship|sav(?:e|es|ing)|stor(?:e|es|ing)|keep)\w*",
    re.I,
)
_OBJECT = re.compile(
    r"\bmatch(?:ing|ed|es)?\b|\bhits?\b|\bflagged\b|\b(?:every|each|all|any|these|such|the|those)\s+(?:\w+\s+)?"
    r"(?:files?|documents?|samples?)\b|\b(?:files?|documents?)\s+(?:containing|with|that|which)\b",
    re.I,
)
_MALWARE_SUBJECT = re.compile(
    r"\b(?:that|which|who|whose|it|malware|trojan|stealer|backdoor|rat|implant|tool|attackers?|actors?|can"
    r"|capable|able|designed|used|payload|module|script|variant|family)\b",
    re.I,
)


def _description_collects(text: str) -> str:
    for sentence in re.split(r"(?<=[.;!?])\s+|\n", text):
        for m in _VERB.finditer(sentence):
            before = " ".join(re.findall(r"\w+", sentence[: m.start()])[-6:])
            rule_subject = re.search(r"\b(?:this|the) (?:rule|signature|scan)\b|\bon match\b", before, re.I)
            if _MALWARE_SUBJECT.search(before) and not rule_subject:
                continue
            if _OBJECT.search(sentence[m.end() : m.end() + 80]) or rule_subject:
                return sentence.strip()[:160]
    return ""


# The same sentence in German, French, Spanish and Russian: "on a hit" or "this rule", a verb of sending or
# keeping, the file as its object, and no malware as its subject ("ein Stealer, der Dateien hochlädt").
_FOREIGN_TRIGGER = re.compile(
    r"\bbei (?:einem |jedem )?(?:Treffer|Fund|Übereinstimmung|Match)|\bwenn (?:die |diese )?Regel|\bdiese Regel"
    r"|\b(?:passende|übereinstimmende|gefundene|getroffene|erkannte)n? Dateien"
    r"|\ben cas de (?:correspondance|détection|match|concordance)|\blors d'une (?:détection|correspondance)"
    r"|\bcette règle|\bsi la règle|\bfichiers? (?:correspondants?|détectés?|trouvés?)"
    r"|\ben caso de (?:coincidencia|detección)|\bal (?:coincidir|detectar)|\bcuando (?:la regla )?coincid"
    r"|\besta regla|\bsi (?:la regla )?coincide|\barchivos? (?:coincidentes?|detectados?|encontrados?)"
    r"|при (?:срабатывании|совпадении|обнаружении)|(?:это|данное|этим|данным) правил|если правило"
    r"|(?:совпавш|найденн|обнаруженн)\w* файл",
    re.I,
)
_FOREIGN_VERB = re.compile(
    r"hochgeladen|hochladen|lädt\b.*\bhoch|übertragen|übermittelt|gesendet|versendet|geschickt|gesichert"
    r"|gesammelt|eingesammelt|kopiert|envoy|téléversé|transmis|transmet|collect|récupér|copi[eé]|exfiltr"
    r"|\bsub(?:e|en|ido|ida|ir)\b|\benv(?:ía|ia|ían|iado|iada|iar)\b|recopil|transmit|recolect|\bcopia"
    r"|загруж|выгруж|отправл|пересыл|собира|собран|копиру|переда[её]т|передан|сохраня",
    re.I,
)
_FOREIGN_OBJECT = re.compile(r"Datei|Dokument|fichier|document|archivo|fichero|documento|файл|документ", re.I)
_FOREIGN_MALWARE = re.compile(
    r"Schadsoftware|Schadprogramm|Malware|Trojaner|Stealer|Backdoor|Hintertür|\bRAT\b|Angreifer|Implantat"
    r"|,\s*(?:der|die|das|welche[rs]?)\b|logiciel malveillant|maliciel|cheval de Troie|voleur|porte dérobée"
    r"|attaquant|\bqui\b|troyano|ladrón|puerta trasera|atacante|programa malicioso|\bque\b"
    r"|вредонос|троян|стилер|бэкдор|злоумышленник|котор",
    re.I,
)


def _foreign_collects(text: str) -> str:
    """A German, French, Spanish or Russian sentence that says the rule sends or keeps the matched file."""
    for sentence in re.split(r"(?<=[.;!?])\s+|\n", text):
        if (
            _FOREIGN_TRIGGER.search(sentence)
            and _FOREIGN_VERB.search(sentence)
            and _FOREIGN_OBJECT.search(sentence)
            and not _FOREIGN_MALWARE.search(sentence)
        ):
            return sentence.strip()[:160]
    return ""


def _key_words(key: str) -> set[str]:
    """A meta key's words, in any spelling: ``upload_on_match``, ``uploadOnMatch``, ``Upload-On-Match``."""
    return set(re.split(r"[_\-.\s]+", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower())) - {""}


_DESCRIPTION_KEYS = frozenset({"description", "desc", "beschreibung", "описание", "descripción"})


def _meta_collects(key: str, value: object) -> str:
    """Why one meta entry asks for matches to be kept or sent, or ''."""
    if str(value).lower().strip() in _FALSE:
        return ""
    words = _key_words(key)
    values = {w for part in _key_words(str(value)) for w in re.findall(r"[a-z]+", part)}
    if words & _COLLECT_WORDS or (words & _ACTION_WORDS and values & _COLLECT_VERBS):
        return f"meta {key} = {value}"
    text = str(value)
    if key.lower() in _DESCRIPTION_KEYS and (
        sentence := _description_collects(text) or _foreign_collects(text)
    ):
        return f"description: {sentence}"
    return ""


# MITRE ATT&CK tactic names as tags, beside technique tags (``T1005``) or ``mitre_*`` meta: they say what the
# malware does (its tactics), not what the rule does with a match.
_MITRE_TACTICS = frozenset({"Collection", "Exfiltration"})
_MITRE_TECHNIQUE = re.compile(r"^T[AS]?\d{4}(?:[._]\d{3})?$")


def _mitre_tagged(view: RuleView) -> bool:
    return any(_MITRE_TECHNIQUE.match(t) for t in view.source.tags) or any(
        re.match(r"mitre|att(?:&|and)?ck", key, re.I) for key, _ in view.source.meta
    )


def check_collection(view: RuleView) -> list[Finding]:
    reasons = []
    if _COLLECT_NAME.match(view.source.name):
        reasons.append(f"name {view.source.name}")
    mitre = _mitre_tagged(view)
    for tag in view.source.tags:
        if tag.lower() in _COLLECT_TAGS and not (mitre and tag in _MITRE_TACTICS):
            reasons.append(f"tag {tag}")
    for key, value in view.source.meta:
        if reason := _meta_collects(key, value):
            reasons.append(reason)
    return [
        finding(view.rule, "collection", f"implies silent collection or upload: {r}", r)
        for r in dict.fromkeys(reasons)
    ]


def check_rule(rule: YaraRule, globals: Sequence[YaraRule] = ()) -> list[Finding]:
    """``document-only``, ``targeting``, ``self-name`` and ``collection`` findings on one rule; ``globals``: the
    tree's global rules (:func:`global_rules`), whose conditions are part of this rule's."""
    view = RuleView(rule)
    scope = [RuleView(g) for g in globals if g is not rule]
    return [*check_document_only(view, scope), *check_targeting(view), *check_collection(view)]
