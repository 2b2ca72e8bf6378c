"""The ``targeting`` and ``self-name`` checks: a rule aimed at particular hosts, users, paths or customers.

What counts, and why (measured on about 14,000 public vendor rules, where every flag is a false positive unless
the rule really is aimed at someone):

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

The rule is read through :class:`~overt.avdb.ruleview.RuleView`; :func:`overt.avdb.checks.check_rule` runs
this check with the others. Pure: no I/O, no compiling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from overt.avdb.findings import ADVISORY, Finding, finding
from overt.avdb.ruleview import CODE_MODULES, RuleView, condition_code, readings, requires

_KEYWORDS = frozenset({"and", "or", "not", "of", "them", "for", "all", "any", "none", "in", "at"})
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


def _self_named(view: RuleView, other: list[str], literals: Sequence[str]) -> str:
    """How ``other`` is the file's own name: a module field, or a program name the rule also matches."""
    if other and other[0] in CODE_MODULES:
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


def _externals(view: RuleView) -> tuple[list[str], list[str]]:
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


def check_targeting(view: RuleView) -> list[Finding]:
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
