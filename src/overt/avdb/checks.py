"""Per-rule document-hunting checks that read what a rule matches: ``document-only``, ``targeting``,
``self-name`` and ``collection``.

Every check reads the rule as :mod:`overt.avdb.yarasource` lexes it (patterns, the verbatim condition and its
tokens, meta, tags), never plyara's view. Markings inside patterns are :mod:`overt.avdb.patterns`'s job; running
rules over documents is :mod:`overt.avdb.canary_check`'s. Pure: no I/O, no compiling.

What counts, and why (measured on about 14,000 public vendor rules, where every flag is a false positive unless
the rule really matches nearly every document):

* ``document-only`` (blocking): the rule names a document format (PDF, OLE2, OOXML/zip, RTF, ODF) by its magic
  in any spelling (a text, hex or regex pattern, ``uint32``/``uint32be``/``uint16``/``uint8`` comparisons in hex
  or decimal, ``vt.FileType``/``magic`` literals), and nothing it matches is code: no PE/ELF/Mach-O/dex gate or
  module, no script (VBA, JScript, PowerShell, WScript), no PDF action (with or without ``/``), no OOXML template
  injection, no embedded executable (MZ in hex or base64), no exploit marker, no JAR/APK marker; and its other
  patterns are natural language, or there are none (a format-and-size rule matches every such document).
  Only what the rule *matches* counts: meta and names can say anything.
* ``targeting`` (blocking): a named user's home (``\\Users\\<name>\\``, ``\\Documents and Settings\\<name>``,
  ``/home/<name>/``, ``/Users/<name>/``) or a named host's share (``\\\\HOST\\share``) in a pattern or a
  condition literal; ``lnk`` fields that identify a machine, volume or target path; the ``filename``,
  ``filepath``, ``extension``, ``owner``, ``hostname``, ``username``, ``customer`` externals. Real malware rules
  are full of such paths that are not about the scanned host: build paths compiled into a binary (a ``.pdb``,
  ``obj\\Release``, ``Visual Studio``, source files), templates (``%s``, ``*``, ``%USERNAME%``) and default
  accounts (Public, Default, All Users, Shared). Those are exempt, and so is every path and ``lnk`` field of a
  rule whose condition *requires* an executable or script code (a top-level ``and`` with an MZ/ELF/Mach-O gate,
  a ``pe.``/``elf.``/``macho.`` field, or a code pattern): such a rule matches a program an author built, not a
  user's documents. ``filetype`` is not targeting (it names a format, not a host).
* ``self-name`` (advisory): every ``filename``/``filepath`` comparison is against what the file says about
  itself (``pe.version_info[...]``, another module field, or a program name that is also a pattern of the
  rule): the "renamed tool or driver" rules vendors ship.
* ``collection`` (blocking): meta keys that ask for matches to be kept or sent (``upload_on_match``,
  ``collect``, ``exfil``, ``action = "upload"``...) unless set false, such tags, a ``Collect_``/``Upload_``...
  rule name, and a description that says the *rule* sends matches ("uploads matching files", "collect documents
  containing ..."), not what malware does ("a stealer that uploads browser data").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cached_property, lru_cache

from overt.avdb.findings import ADVISORY, Finding, finding
from overt.avdb.rules import YaraRule
from overt.avdb.yarasource import HEX, TEXT, PatternSource, condition_tokens

# --- document formats -------------------------------------------------------------------------------------

# Binary magics, matched in hex patterns byte by byte (wildcards allowed) and in text and regex readings.
_BINARY_MAGIC = (
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
_CODE_MODULES = frozenset({"pe", "elf", "macho", "dotnet", "dex", "cuckoo", "androguard"})

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
    r"|Equation\.\d|EQNEDT|Microsoft Equation|OLE2Link|StdOleLink|DDEAUTO|\bDDE\b|ms-msdt|mhtml:"
    r"|search-ms:|\bCVE-\d|\bexploit|heap ?spray|META-INF/|classes\.dex|AndroidManifest|\.class\b"
    r"|\.(?:exe|dll|scr|vbs|js|jse|hta|ps1|bat|cmd|lnk|jar)\b",
    re.I,
)
# Whole patterns that are a PDF action or a VBA/shell call though they read as a plain word.
_CODE_WORDS = frozenset({"js", "aa", "uri", "launch", "shell", "macro", "macros"})
_PDF_ESCAPE = re.compile(r"#([0-9A-Fa-f]{2})")
_CODE_PUNCTUATION = re.compile(r"[(){};=<>$\\|]|^/|<<|>>")
# Keywords every PDF carries: a pattern of them says "this is a PDF", like the magic.
_PDF_STRUCTURE = re.compile(
    r"(?:%%EOF|trailer|startxref|xref|endobj|(?:\d+ \d+ )?obj|endstream|stream)\s*", re.I
)


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


def _regex_literal(value: str) -> str:
    """A regex read as text: escapes resolved, classes and wildcards as NUL, grouping dropped."""
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
            out.append("\0")
            i = len(body) if close < 0 else close + 1
        elif c == "{" and re.match(r"\{\d*,?\d*\}", body[i:]):
            i = body.find("}", i) + 1
        else:
            out.append({".": "\0", "|": "\0"}.get(c, "" if c in "()*+?^$" else c))
            i += 1
    return "".join(out)


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


def _hex_magic(p: PatternSource) -> str:
    for run in _hex_runs(p.value):
        for fmt, magic in _BINARY_MAGIC:
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
            return next((f for f, b in _BINARY_MAGIC if b.decode("latin-1").lower() in found), "OOXML")
    return ""


def code_indicator(text: str) -> str:
    """The code, action or exploit indicator a text carries, or ''."""
    plain = _PDF_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if plain.strip().lstrip("/").lower() in _CODE_WORDS:
        return plain.strip()
    m = _CODE.search(plain)
    return m.group().strip() if m else ""


@lru_cache(maxsize=8192)
def _pattern_code(p: PatternSource) -> str:
    if p.kind == HEX and any(r[:2] == ((0x4D, 0xFF), (0x5A, 0xFF)) for r in _hex_runs(p.value)):
        return "MZ"
    return next((c for t in readings(p) if (c := code_indicator(t))), "")


def _natural(p: PatternSource) -> bool:
    """Words a document says, not a program's strings or a file structure."""
    text = " ".join(t.replace("\0", " ") for t in readings(p)[:1]).strip()
    letters = sum(ch.isalpha() for ch in text)
    return len(text) >= 3 and letters >= 0.6 * len(text) and not _CODE_PUNCTUATION.search(text)


# --- conditions -------------------------------------------------------------------------------------------

_INT_READ = re.compile(r"^u?int(8|16|32)(be)?$")
_KEYWORDS = frozenset({"and", "or", "not", "of", "them", "for", "all", "any", "none", "in", "at"})


def _number(token: str) -> int | None:
    try:
        return int(token, 0) if re.fullmatch(r"0x[0-9A-Fa-f]+|[0-9]+", token) else None
    except ValueError:
        return None


def int_reads(tokens: Sequence[str]) -> list[tuple[int, bytes]]:
    """(offset, bytes) of every ``uintN[be](offset) == value`` comparison, either way round."""
    out: list[tuple[int, bytes]] = []
    for i, tok in enumerate(tokens):
        m = _INT_READ.match(tok)
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
    return found


def condition_code(tokens: Sequence[str]) -> str:
    """The executable gate, code module or code literal a condition names, or ''."""
    if _header_match(int_reads(tokens), _EXEC_HEADERS) >= 0:
        return "executable magic"
    for i, tok in enumerate(tokens):
        if tok in _CODE_MODULES and tokens[i + 1 : i + 2] == ["."] and (i == 0 or tokens[i - 1] != "."):
            return f"{tok}."
        if tok == "FileType" and i + 2 < len(tokens) and _VT_CODE.match(tokens[i + 2]):
            return f"vt.FileType.{tokens[i + 2]}"
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


def _referenced(tokens: Sequence[str], names: Sequence[str]) -> tuple[list[str], bool]:
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


class _RuleView:
    """The parts of one rule the checks read, computed once."""

    def __init__(self, rule: YaraRule) -> None:
        self.rule = rule
        self.source = rule.source
        self.tokens = condition_tokens(rule.source.condition)
        self.patterns = {p.name: p for p in rule.source.patterns}

    @cached_property
    def code(self) -> dict[str, str]:
        return {p.name: _pattern_code(p) for p in self.source.patterns}

    def code_atom(self, atom: list[str]) -> bool:
        if condition_code(atom):
            return True
        picked, need_all = _referenced(atom, list(self.patterns))
        if not picked:
            return False
        flags = [bool(self.code[n]) for n in picked]
        return any(flags) if need_all else all(flags)

    def requires_code(self) -> bool:
        return requires(self.tokens, self.code_atom)

    def any_code(self) -> str:
        return condition_code(self.tokens) or next((c for c in self.code.values() if c), "")


# --- document-only ----------------------------------------------------------------------------------------


def _gate_atom(view: _RuleView, gates: set[str], atom: list[str]) -> bool:
    """A test of format or size only: magic reads, filesize, plain references to format patterns."""
    for n, t in enumerate(atom):
        if t[:1] in "#@!" or t == "not" or (t == "in" and atom[n + 1 : n + 3] != ["(", "0"]):
            return False
        if t[:1] == "$" and not all(name in gates for name in _referenced([t], list(view.patterns))[0]):
            return False
        if re.fullmatch(r"[A-Za-z_]\w*", t) and not (
            _INT_READ.match(t)
            or t in ("filesize", "KB", "MB", "at", "in", "of", "any", "all", "them", "true")
        ):
            return False
    return True


def _format_alone(view: _RuleView, gates: set[str]) -> bool:
    """Whether the condition tests only format and size (a rule that hunts documents)."""
    return _gate_atom(view, gates, [t for t in view.tokens if t not in ("(", ")", "and", "or")])


def check_document_only(view: _RuleView) -> list[Finding]:
    if "private" in view.source.modifiers:  # a private rule reports no match of its own
        return []
    formats = condition_formats(view.tokens)
    formats += [fmt for p in view.source.patterns if (fmt := pattern_format(p))]
    if not formats or view.any_code():
        return []
    gates = {
        p.name
        for p in view.source.patterns
        if pattern_format(p) or any(_PDF_STRUCTURE.fullmatch(t.strip()) for t in readings(p)[:1])
    }
    others = [p for p in view.source.patterns if p.name not in gates]
    if not all(_natural(p) for p in others):
        return []
    shown = "/".join(sorted(set(formats)))
    if not others:
        if not _format_alone(view, gates):
            return []
        message = f"matches {shown} documents on format (and size) alone, with no other strings and no code"
        return [finding(view.rule, "document-only", message, f"{shown}: format alone")]
    words = sorted({readings(p)[0].replace("\0", " ").strip() for p in others})
    message = (
        f"matches only {shown} documents, with natural-language strings and no code or exploit indicator"
    )
    return [finding(view.rule, "document-only", message, f"{shown}: " + "|".join(words)[:200])]


# --- targeting and self-name ------------------------------------------------------------------------------

TARGETING_EXTERNALS = ("filename", "filepath", "extension", "owner", "hostname", "username", "customer")
_SELF_NAME_EXTERNALS = ("filename", "filepath")
_COMPARE = frozenset(
    {"==", "!=", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "iequals"}
    | {"matches"}
)
_WINDOWS_HOME = re.compile(
    r"(?:^|[A-Za-z]:|%\w+%|[\s\"'=(])[\\/]+(?:Users|Documents and Settings)[\\/]+([^\\/\0\"<>|:\r\n]+)(?=[\\/]|$)",
    re.I,
)
_UNIX_HOME = re.compile(r"(?:^|[\s\"'=:;(])(?:/home|/Users)/([^/\0\s\"']+)(?=/|$)")
_UNC = re.compile(r"(?:^|[^\\])\\\\([A-Za-z0-9][A-Za-z0-9_.-]{1,62})\\([A-Za-z0-9_$.\- ]{1,80})")
_GENERIC_ACCOUNTS = frozenset(
    {"public", "default", "default user", "defaultuser0", "all users", "shared", "administrator", "admin"}
    | {"user", "username", "guest", "localservice", "networkservice", "localhost", "127.0.0.1"}
)
# Hosts that stand for "some host" in usage texts, and WMI's \\\\root\\ namespace.
_PLACEHOLDER_HOSTS = frozenset(
    {
        "root",
        "ip",
        "host",
        "hostname",
        "server",
        "servername",
        "computer",
        "computername",
        "machine",
        "target",
    }
    | {"remote", "remotehost", "domain", "share", "ipaddress", "ip_address", "localhost", "127.0.0.1"}
)
_PLACEHOLDER = re.compile(r"[%*?$<>{}\0]")
_BUILD_PATH = re.compile(
    r"\.pdb\b|[\\/](?:obj|bin|Debug|Release|x64|x86|Win32)[\\/]|Visual Studio|[\\/]source[\\/]repos"
    r"|/go/(?:src|pkg)/|/\.cargo/|/rustc/|/\.rustup/|/site-packages/"
    r"|\.(?:c|cc|cpp|cxx|h|hpp|cs|vb|go|rs|py|java|pas|dpr|vbp|sln|csproj|vcxproj|swift|m)\b",
    re.I,
)
_LNK_QUIET = frozenset(
    {"is_lnk", "cmd_line_args", "link_flags", "file_attributes_flags", "file_attributes", "show_command"}
    | {"hotkey", "hotkey_flags", "hotkey_modifier_flags", "has_overlay", "overlay_offset", "overlay_size"}
    | {"is_malformed", "header_size", "icon_index", "link_clsid", "has_hotkey"}
)
_DOCUMENT_NAME = re.compile(
    r"\.(?:docx?|xlsx?|pptx?|pdf|rtf|odt|ods|odp|txt|csv|eml|msg|zip|jpe?g|png)$", re.I
)


def user_paths(text: str) -> list[str]:
    """The named users' homes and named hosts' shares in one text, build paths and templates left out."""
    if _BUILD_PATH.search(text):
        return []
    out = []
    for m in (*_WINDOWS_HOME.finditer(text), *_UNIX_HOME.finditer(text)):
        name = m.group(1).strip()
        if name and not _PLACEHOLDER.search(name) and name.lower() not in _GENERIC_ACCOUNTS:
            out.append(m.group().strip(" \"'=(:;"))
    for m in _UNC.finditer(text):
        host = m.group(1)
        if host.lower() not in _PLACEHOLDER_HOSTS and not _PLACEHOLDER.search(m.group(2)):
            out.append(m.group().lstrip(m.group()[0] if m.group()[0] != "\\" else ""))
    return out


def _chain_forward(tokens: Sequence[str], i: int) -> list[str]:
    if i >= len(tokens):
        return []
    if tokens[i][:1] in ('"', "/"):
        return [tokens[i]]
    j, depth = i, 0
    while j < len(tokens):
        t = tokens[j]
        if depth == 0 and not (re.fullmatch(r"[A-Za-z_]\w*", t) or t in (".", "[", "(")):
            break
        if depth == 0 and t in _KEYWORDS:
            break
        depth += t in ("[", "(")
        depth -= t in ("]", ")")
        j += 1
        if depth == 0 and j < len(tokens) and tokens[j] not in (".", "[", "(") and tokens[j - 1] != ".":
            break
    return list(tokens[i:j])


def _chain_back(tokens: Sequence[str], i: int) -> list[str]:
    if i < 0:
        return []
    if tokens[i][:1] in ('"', "/"):
        return [tokens[i]]
    j, depth = i, 0
    while j >= 0:
        t = tokens[j]
        if depth == 0 and (t in _KEYWORDS or not (re.fullmatch(r"[A-Za-z_]\w*", t) or t in (".", "]", ")"))):
            break
        depth += t in ("]", ")")
        depth -= t in ("[", "(")
        j -= 1
    return list(tokens[j + 1 : i + 1])


def _compared_with(tokens: Sequence[str], i: int) -> list[str]:
    if i + 1 < len(tokens) and tokens[i + 1] in _COMPARE:
        return _chain_forward(tokens, i + 2)
    if i >= 1 and tokens[i - 1] in _COMPARE:
        return _chain_back(tokens, i - 2)
    return []


def _self_named(view: _RuleView, other: list[str], literals: Sequence[str]) -> str:
    """How ``other`` is the file's own name: a module field, or a program name the rule also matches."""
    if other and other[0] in _CODE_MODULES:
        return "".join(other)
    if len(other) != 1 or other[0][:1] not in ('"', "/") or _DOCUMENT_NAME.search(other[0][1:-1]):
        return ""
    name = re.split(r"[\\/]", other[0][1:-1].strip("^$"))[-1].lower()
    stem = name.rsplit(".", 1)[0].replace("\\", "")
    if len(stem) < 3 or not requires(view.tokens, lambda a: bool(condition_code(a))):
        return ""
    texts = [t.lower() for p in view.source.patterns for t in readings(p)] + [
        lit.lower() for lit in literals if lit != other[0]
    ]
    return other[0] if any(stem in t for t in texts) else ""


def _externals(view: _RuleView) -> tuple[list[str], list[str]]:
    """(targeting uses, self-name uses) of the externals in the condition."""
    targeting, self_name = [], []
    literals = [t for t in view.tokens if t.startswith('"')]
    for i, tok in enumerate(view.tokens):
        if tok not in TARGETING_EXTERNALS or (i and view.tokens[i - 1] == "."):
            continue
        other = _compared_with(view.tokens, i)
        how = _self_named(view, other, literals) if tok in _SELF_NAME_EXTERNALS else ""
        if how:
            self_name.append(f"{tok}~{how}")
        else:
            targeting.append(tok)
    return sorted(set(targeting)), sorted(set(self_name))


def _lnk_fields(tokens: Sequence[str]) -> list[str]:
    out = []
    for i, tok in enumerate(tokens):
        if tok == "lnk" and tokens[i + 1 : i + 2] == ["."] and i + 2 < len(tokens):
            field = tokens[i + 2]
            if field not in _LNK_QUIET and not field.isupper():
                sub = tokens[i + 4] if tokens[i + 3 : i + 4] == ["."] and i + 4 < len(tokens) else ""
                out.append(f"lnk.{field}.{sub}" if sub else f"lnk.{field}")
    return sorted(set(out))


def check_targeting(view: _RuleView) -> list[Finding]:
    found: list[Finding] = []
    used, self_name = _externals(view)
    for name in used:
        message = f"the condition uses {name}: it targets specific hosts, users, paths or customers"
        found.append(finding(view.rule, "targeting", message, name))
    if self_name:
        message = "the condition compares the file's name with the name it gives itself (a renamed program)"
        found.append(finding(view.rule, "self-name", message, "|".join(self_name), severity=ADVISORY))
    fields = _lnk_fields(view.tokens)
    paths = [(p.name, path) for p in view.source.patterns for t in readings(p)[:1] for path in user_paths(t)]
    paths += [("condition", path) for t in view.tokens if t.startswith('"') for path in user_paths(t[1:-1])]
    if (fields or paths) and view.requires_code():
        return found
    for field in fields:
        message = f"the condition reads {field}: it targets one machine, volume, user or folder"
        found.append(finding(view.rule, "targeting", message, field))
    for where, path in dict.fromkeys(paths):
        message = f"{where} names a user's home or a host's share ({path}): it targets one user or host"
        found.append(finding(view.rule, "targeting", message, f"{where}:{path}"))
    return found


# --- collection -------------------------------------------------------------------------------------------

_COLLECT_WORDS = frozenset(
    {"upload", "uploads", "collect", "collection", "exfil", "exfiltrate", "exfiltration", "harvest"}
    | {"submit", "grab", "siphon", "retrieve", "gather", "capture", "send"}
)
_ACTION_KEYS = frozenset({"action", "on_match", "onmatch", "mode", "purpose", "intent", "task", "response"})
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


def check_collection(view: _RuleView) -> list[Finding]:
    reasons = []
    if _COLLECT_NAME.match(view.source.name):
        reasons.append(f"name {view.source.name}")
    for tag in view.source.tags:
        if tag.lower() in _COLLECT_TAGS:
            reasons.append(f"tag {tag}")
    for key, value in view.source.meta:
        words = set(re.split(r"[_\-.\s]+", key.lower()))
        shown = str(value).lower()
        if shown.strip() in _FALSE:
            continue
        if words & _COLLECT_WORDS or (
            key.lower() in _ACTION_KEYS and set(re.findall(r"[a-z]+", shown)) & _COLLECT_WORDS
        ):
            reasons.append(f"meta {key} = {value}")
        elif key.lower() == "description" and (sentence := _description_collects(str(value))):
            reasons.append(f"description: {sentence}")
    return [
        finding(view.rule, "collection", f"implies silent collection or upload: {r}", r)
        for r in dict.fromkeys(reasons)
    ]


def check_rule(rule: YaraRule) -> list[Finding]:
    """``document-only``, ``targeting``, ``self-name`` and ``collection`` findings on one rule."""
    view = _RuleView(rule)
    return [*check_document_only(view), *check_targeting(view), *check_collection(view)]
