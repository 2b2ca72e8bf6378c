"""The ``targeting`` and ``self-name`` checks: a rule aimed at particular hosts, users, paths or customers.

What counts, and why (measured on about 14,000 public vendor rules, where every flag is a false positive unless
the rule really is aimed at someone):

* ``targeting`` (blocking): a named user's home (``\\Users\\<name>\\``, ``\\Documents and Settings\\<name>``,
  ``/home/<name>/``, ``/Users/<name>/``), the folder where any user keeps documents (``Documents``, ``Desktop``,
  ``Downloads``, ``OneDrive`` under a home of anyone, ``%USERPROFILE%``, ``~``, ``%OneDrive%``), a named host's
  share (``\\\\HOST\\share$``) or a machine name Windows generates (``DESKTOP-7K2L9QA``, ``WIN-`` and eleven)
  in a pattern or a condition literal. Patterns are read as a person reads them: text as UTF-8, hex as UTF-16LE
  where it is, a regex with ``[\\/]`` as a separator; a path or machine name split over two patterns the
  condition needs both of (``"\\Users\\"`` and ``"\\Documents\\Finance\\"``, ``"DESKTOP-"`` and
  ``"7K2L9QA"``) is read joined. Also ``lnk`` fields that identify a machine, volume or target path, and the
  ``filename``, ``filepath``, ``extension``, ``owner``, ``hostname``, ``username``, ``customer`` externals. Real
  malware rules are full of such paths that are not about the scanned host: build paths compiled into a binary
  (a ``.pdb``, ``obj\\Release``, ``Visual Studio``, source files), templates of a home (``%s``, ``*``,
  ``%USERNAME%``), default accounts (Public, Default, All Users, Shared) and drop paths (``%APPDATA%``,
  ``%TEMP%``, the rest of a profile). Those are exempt, and so is every path, machine name and ``lnk`` field of a
  rule whose condition *requires* an executable or script code (a top-level ``and`` with an MZ/ELF/Mach-O gate,
  a ``pe.``/``elf.``/``macho.`` field, or a code pattern): such a rule matches a program an author built (with
  its anti-sandbox host list), not a user's documents. ``filetype`` is not targeting (it names a format).
* ``self-name`` (advisory): every ``filename``/``filepath`` comparison is against what the file says about
  itself (``pe.version_info[...]``, another module field), or, in a rule that requires an executable, against a
  program name that is also a pattern of the rule (``filename matches /psexec(64)?\\.exe/i`` with ``"PsExec"``)
  or an executable's name (``"svch0st.exe"``): the "renamed tool or driver" rules vendors ship. A document
  name or extension, or a user path, stays ``targeting``.

The rule is read through :class:`~overt.avdb.ruleview.RuleView`; :func:`overt.avdb.checks.check_rule` runs
this check with the others. Pure: no I/O, no compiling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from overt.avdb.findings import ADVISORY, Finding, finding
from overt.avdb.ruleview import (
    CODE_MODULES,
    RuleView,
    readings,
    referenced,
    regex_text,
    requires,
    text_readings,
)

_KEYWORDS = frozenset({"and", "or", "not", "of", "them", "for", "all", "any", "none", "in", "at"})
TARGETING_EXTERNALS = ("filename", "filepath", "extension", "owner", "hostname", "username", "customer")
_SELF_NAME_EXTERNALS = ("filename", "filepath")
_COMPARE = frozenset(
    {"==", "!=", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "iequals"}
    | {"matches"}
)
_WINDOWS_HOME = re.compile(
    r"(?:^|[A-Za-z\0]:|%\w+%|[\s\"'=(\0])[\\/]+(?:Users|Documents and Settings)[\\/]+"
    r"([^\\/\0\"<>|:\r\n]+)(?=[\\/]|$)",
    re.I,
)
_UNIX_HOME = re.compile(r"(?:^|[\s\"'=:;(\0])(?:/home|/Users)/([^/\0\s\"']+)(?=/|$)")
_UNC = re.compile(r"(?:^|[^\\])\\\\([A-Za-z0-9][A-Za-z0-9_.-]{1,62})\\([A-Za-z0-9_$.\- ]{1,80})")
# Where a user keeps documents (Documents, Desktop, Downloads, OneDrive) under any user's home, a template
# or an environment variable: a rule that reads such a path hunts users' documents. %APPDATA%, %TEMP% and
# the rest of a profile are where malware drops files, and stay quiet.
_DOCUMENTS = re.compile(
    r"(?:(?:^|[A-Za-z\0]:|[\s\"'=(\0])[\\/]+(?:Users|Documents and Settings)[\\/]+(?P<user>[^\\/\"<>|:\r\n]+)"
    r"|%(?:USERPROFILE|HOMEPATH|HOMEDRIVE%%HOMEPATH)%|(?:^|[\s\"'=(\0])(?:~|\$HOME|\$\{HOME\}"
    r"|/home/(?P<home>[^/\s\"']+)|/Users/(?P<mac>[^/\s\"']+)))"
    r"[\\/]+(?:Documents|My Documents|Desktop|Downloads|OneDrive[^\\/\0]*)(?=[\\/]|$)"
    r"|%OneDrive\w*%(?=[\\/]|$)",
    re.I,
)
# A OneDrive for Business folder, named after its organisation (``\\OneDrive - Contoso Ministry\\``): where
# that organisation's users keep their documents.
_ONEDRIVE_TENANT = re.compile(
    r"[\\/]OneDrive - ([^\\/\0\"<>|:*?\r\n]*[^\\/\0\"<>|:*?\r\n\s])(?=[\\/]|$)", re.I
)
# The names Windows generates for a machine at setup: DESKTOP-/LAPTOP- and seven, WIN- and eleven characters.
_MACHINE_NAME = re.compile(
    r"(?<![\w-])(?:(?:DESKTOP|LAPTOP)-(?=[A-Z]*\d)[A-Z0-9]{7}|WIN-(?=[A-Z]*\d)[A-Z0-9]{11})(?![\w-])", re.I
)
_MACHINE_PREFIX = re.compile(r"(?:DESKTOP|LAPTOP|WIN)-", re.I)
_HOME_PREFIX = re.compile(r".*[\\/](?:Users|Documents and Settings|home)[\\/]+", re.I | re.S)
_DOCUMENT_FOLDER = re.compile(r"[\\/]*(?:Documents|My Documents|Desktop|Downloads|OneDrive)(?:[\\/]|$)", re.I)
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
_EXECUTABLE_NAME = re.compile(r"\.(?:exe|dll|sys|scr|com|cpl|ocx|drv|efi|so|dylib|elf)$", re.I)
_DOCUMENT_NAME = re.compile(
    r"\.(?:docx?|xlsx?|pptx?|pdf|rtf|odt|ods|odp|txt|csv|eml|msg|zip|jpe?g|png)$", re.I
)


HOME, SHARE, DOCUMENTS, MACHINE = "home", "share", "documents", "machine"


def _named(name: str) -> bool:
    return bool(name) and not _PLACEHOLDER.search(name) and name.lower() not in _GENERIC_ACCOUNTS


def user_paths(text: str) -> list[tuple[str, str]]:
    """(kind, path) of the named users' homes, named hosts' shares, users' document folders and generated
    machine names in one text; build paths and templates of a home left out."""
    if _BUILD_PATH.search(text):
        return []
    out = []
    for m in (*_WINDOWS_HOME.finditer(text), *_UNIX_HOME.finditer(text)):
        if _named(m.group(1).strip()):
            out.append((HOME, m.group().strip(" \"'=(:;\0")))
    for m in _DOCUMENTS.finditer(text):
        user = next((u for u in m.group("user", "home", "mac") if u is not None), None)
        if user is None or not (_named(user.strip()) or user.lower().strip() in _GENERIC_ACCOUNTS):
            out.append((DOCUMENTS, m.group().strip(" \"'=(:;\0").replace("\0", "…")))
    for m in _ONEDRIVE_TENANT.finditer(text):
        if not _PLACEHOLDER.search(m.group(1)):
            out.append((DOCUMENTS, m.group().strip(" \"'=(:;\0")))
    for m in _UNC.finditer(text):
        host = m.group(1)
        if host.lower() not in _PLACEHOLDER_HOSTS and not _PLACEHOLDER.search(m.group(2).rstrip("$")):
            out.append((SHARE, m.group().lstrip(m.group()[0] if m.group()[0] != "\\" else "")))
    out += [(MACHINE, m.group()) for m in _MACHINE_NAME.finditer(text)]
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


def _literal_text(token: str) -> str:
    """A condition's string or regex literal as the text it names."""
    return token[1:-1] if token.startswith('"') else regex_text(token).replace("\0", "")


def _code_not_name(view: RuleView) -> Callable[[list[str]], bool]:
    """An atom that names code, other than the file-name comparison itself (``filename == "x.exe"``)."""
    return lambda atom: not set(atom) & set(_SELF_NAME_EXTERNALS) and view.code_atom(atom)


def _self_named(view: RuleView, other: list[str], literals: Sequence[str]) -> str:
    """How ``other`` is the file's own name: a module field, or, in a rule that requires an executable, a
    program name the rule also matches or an executable's name (a renamed tool or driver)."""
    if other and other[0] in CODE_MODULES:
        return "".join(other)
    if len(other) != 1 or other[0][:1] not in ('"', "/"):
        return ""
    text = _literal_text(other[0])
    if _DOCUMENT_NAME.search(text) or user_paths(text) or not requires(view.tokens, _code_not_name(view)):
        return ""
    name = re.split(r"[\\/]", text.strip("^$"))[-1].lower()
    stem = name.rsplit(".", 1)[0]
    stems = {stem, m.group()} if (m := re.match(r"[^\W\d_]{4,}", stem)) else {stem}
    texts = [t.lower() for p in view.source.patterns for t in readings(p)] + [
        lit.lower() for lit in literals if lit != other[0]
    ]
    if any(len(s) >= 3 and s in t for s in stems for t in texts) or _EXECUTABLE_NAME.search(name):
        return other[0]
    return ""


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


_SAYS = {
    HOME: "names a user's home ({}): it targets one user",
    SHARE: "names a host's share ({}): it targets one host",
    DOCUMENTS: "names the folder where a user keeps documents ({}): it hunts users' documents",
    MACHINE: "names a machine by the name Windows gave it ({}): it targets one host",
}


def _required(view: RuleView, name: str) -> bool:
    """Whether every way the condition can be true needs pattern ``name``."""

    def atom(tokens: list[str]) -> bool:
        picked, need_all = referenced(tokens, list(view.patterns))
        return name in picked and (need_all or picked == [name])

    return requires(view.tokens, atom)


_ADJACENT = (
    re.compile(r"\$(?P<b>\w+) at @(?P<a>\w+) \[ [^\]]+ \] \+ !(?P=a) \[ [^\]]+ \]"),
    re.compile(r"@(?P<b>\w+) \[ [^\]]+ \] == @(?P<a>\w+) \[ [^\]]+ \] \+ !(?P=a) \[ [^\]]+ \]"),
    re.compile(r"@(?P<a>\w+) \[ [^\]]+ \] \+ !(?P=a) \[ [^\]]+ \] == @(?P<b>\w+) \[ [^\]]+ \]"),
)


def _adjacent(view: RuleView) -> list[tuple[str, str]]:
    """(first, second) patterns the condition places end to end (``$b at @a[1] + !a[1]``, ``@b[j] == @a[i] +
    !a[i]`` in a loop): one text split in two."""
    joined = " ".join(view.tokens)
    pairs = [(f"${m['a']}", f"${m['b']}") for rx in _ADJACENT for m in rx.finditer(joined)]
    return [(a, b) for a, b in dict.fromkeys(pairs) if a in view.patterns and b in view.patterns and a != b]


def _joined_paths(view: RuleView) -> list[tuple[str, str, str]]:
    """Paths and machine names split over two patterns the condition needs both of (``"\\Users\\"`` and
    ``"\\Documents\\Finance\\"``; ``"DESKTOP-"`` and ``"7K2L9QA"``), or places end to end (``"C:\\Users\\"``
    then ``"jdoe\\Documents\\"``), read as one text."""
    out = [
        (f"{a}+{b}", kind, path)
        for a, b in _adjacent(view)
        for first in text_readings(view.patterns[a])[:1]
        for second in text_readings(view.patterns[b])[:1]
        for kind, path in user_paths(first + second)
    ]
    texts = {p.name: t for p in view.source.patterns for t in text_readings(p)[:1] if _required(view, p.name)}
    for a, first in texts.items():
        for b, second in texts.items():
            if a == b:
                continue
            if _HOME_PREFIX.fullmatch(first) and _DOCUMENT_FOLDER.match(second):
                joined = first.rstrip("\\/") + "\\\0\\" + second.lstrip("\\/")
            elif _MACHINE_PREFIX.fullmatch(first):
                joined = first + second
            else:
                continue
            out += [(f"{a}+{b}", kind, path) for kind, path in user_paths(joined)]
    return out


def _paths(view: RuleView) -> list[tuple[str, str, str]]:
    """(where, kind, path) of every user path or machine name in the patterns and condition literals."""
    found = [
        (p.name, kind, path)
        for p in view.source.patterns
        for t in text_readings(p)
        for kind, path in user_paths(t)
    ]
    found += [
        ("condition", kind, path)
        for t in view.tokens
        if t.startswith('"')
        for kind, path in user_paths(t[1:-1])
    ]
    found = list(dict.fromkeys(found + _joined_paths(view)))
    return [  # C:/Users/jdoe is also read as /Users/jdoe: keep the longer
        (w, k, path)
        for w, k, path in found
        if not any(w2 == w and p2 != path and p2.endswith(path) for w2, _, p2 in found)
    ]


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
    paths = _paths(view)
    if (fields or paths) and view.requires_code():
        return found
    for field in fields:
        message = f"the condition reads {field}: it targets one machine, volume, user or folder"
        found.append(finding(view.rule, "targeting", message, field))
    for where, kind, path in paths:
        message = f"{where} " + _SAYS[kind].format(path)
        found.append(finding(view.rule, "targeting", message, f"{where}:{path}"))
    return found
