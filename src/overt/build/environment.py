"""The build environment as a named input: the Debian packages the sandbox sees, as one digested document.

The sandbox binds the host's ``/usr`` read-only, so the toolchain a recipe does not pin (python3, gcc, dpkg-dev)
is whatever the host has installed. Like Debian's ``.buildinfo``, the conveyor records that: the native
architecture and every installed package's name, version and architecture, read from the dpkg database
(``/var/lib/dpkg/status``). The sandbox binds that same database read-only (:mod:`overt.build.sandbox`), so
reading the file here gives the bytes a build sees inside, and it reads the same on a rebuilder's host as in
its sandbox; no ``dpkg-query`` subprocess is needed.

The document is canonical JSON (:func:`overt.jsonio.dump`: sorted keys, no whitespace; packages sorted by name
and architecture), and its sha256 is the digest of the provenance's ``environment:debian`` resolved
dependency. It is published beside the build as ``environment.json``. A rebuilder compares its own document
with the recorded one (:func:`compare_environments`), so a verdict can say "environment differs: gcc-12
12.2.0-14 vs 12.2.0-15" rather than report an unexplained mismatch.

A package counts when its files are on disk: every dpkg state except ``not-installed`` and ``config-files``.
The state itself is not recorded (``triggers-pending`` comes and goes without changing a file). A host
without a dpkg database records no environment, and its provenance names none (it never claims an empty one).

This module parses and compares; it does not decide whether a difference fails a rebuild (the rebuilder's
verdict does).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overt import jsonio
from overt.attest.statement import ResourceDescriptor
from overt.errors import FormatError, StorageError

DPKG_STATUS = Path("/var/lib/dpkg/status")
ENVIRONMENT_NAME = "environment:debian"
ENVIRONMENT_FILE = "environment.json"
ENVIRONMENT_TYPE = "https://overt.dev/environment/debian/v1"
MAX_STATUS_BYTES = 256 << 20
MAX_DOCUMENT_BYTES = 64 << 20
SHOWN_DIFFERENCES = 5

# Debian Policy 5.6.1 (Package), 5.6.12 (Version), 11.1 / dpkg-architecture (Architecture names).
_NAME = re.compile(rb"[a-z0-9][a-z0-9+.-]+")
_VERSION = re.compile(rb"(?:[0-9]+:)?[0-9A-Za-z.+~-]+(?:-[0-9A-Za-z.+~]+)?")
_ARCH = re.compile(rb"[a-z0-9][a-z0-9-]*")
# Policy 5.1: a field name is printable US-ASCII other than space and colon, not starting with # or -.
_FIELD = re.compile(rb"[!-9;-~][!-9;-~]*")
_WANT = frozenset({"unknown", "install", "hold", "deinstall", "purge"})
_FLAG = frozenset({"ok", "reinstreq"})
_STATES = frozenset(
    {"not-installed", "config-files", "half-installed", "unpacked", "half-configured", "triggers-awaited",
     "triggers-pending", "installed"}
)  # fmt: skip
_NO_FILES = frozenset({"not-installed", "config-files"})
_WANTED = (b"package", b"status", b"version", b"architecture")


def _valid(pattern: re.Pattern[bytes], value: str) -> bool:
    return value.isascii() and pattern.fullmatch(value.encode()) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """One installed package, as ``dpkg-query -W -f '${Package} ${Version} ${Architecture}'`` shows it."""

    name: str
    version: str
    architecture: str

    def __post_init__(self) -> None:
        if not _valid(_NAME, self.name):
            raise FormatError(f"{self.name!r} is not a Debian package name")
        if not _valid(_VERSION, self.version):
            raise FormatError(f"package {self.name}: {self.version!r} is not a Debian version")
        if not _valid(_ARCH, self.architecture):
            raise FormatError(f"package {self.name}: {self.architecture!r} is not a Debian architecture")

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.architecture)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "architecture": self.architecture}

    def text(self) -> str:
        return f"{self.name}:{self.architecture} {self.version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """What a build could see of the host: its native architecture and its installed packages, sorted."""

    architecture: str
    packages: tuple[Package, ...]
    _document: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _valid(_ARCH, self.architecture):
            raise FormatError(f"{self.architecture!r} is not a Debian architecture")
        keys = [p.key for p in self.packages]
        if keys != sorted(set(keys)):
            raise FormatError("environment packages must be sorted by name and architecture, each once")
        object.__setattr__(self, "_document", jsonio.dump(self.to_dict()))

    @classmethod
    def of(cls, *, architecture: str, packages: list[Package] | tuple[Package, ...]) -> Environment:
        """Sort ``packages``; a (name, architecture) given twice is a FormatError."""
        ordered = tuple(sorted(packages, key=lambda p: p.key))
        for a, b in itertools.pairwise(ordered):
            if a.key == b.key:
                raise FormatError(f"package {a.name}:{a.architecture} is listed twice")
        return cls(architecture=architecture, packages=ordered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": ENVIRONMENT_TYPE,
            "architecture": self.architecture,
            "packages": [p.to_dict() for p in self.packages],
        }

    def to_bytes(self) -> bytes:
        """The canonical document (computed once): its sha256 is the environment's digest."""
        return self._document

    @classmethod
    def from_bytes(cls, data: bytes) -> Environment:
        """Parse an ``environment.json``; only its canonical form is accepted, so its digest is unambiguous."""
        obj = jsonio.load_object(data, "environment document", max_size=MAX_DOCUMENT_BYTES)
        what = "environment document"
        if set(obj) != {"type", "architecture", "packages"}:
            raise FormatError(f"{what} must have exactly the fields type, architecture and packages")
        if obj["type"] != ENVIRONMENT_TYPE:
            raise FormatError(f"{what} has type {obj['type']!r}, not {ENVIRONMENT_TYPE}")
        packages = []
        for p in jsonio.opt_list(obj, "packages", what):
            if not isinstance(p, dict) or set(p) != {"name", "version", "architecture"}:
                raise FormatError(f"{what}: each package has exactly name, version and architecture")
            packages.append(
                Package(
                    name=jsonio.req_str(p, "name", what),
                    version=jsonio.req_str(p, "version", what),
                    architecture=jsonio.req_str(p, "architecture", what),
                )
            )
        env = cls.of(architecture=jsonio.req_str(obj, "architecture", what), packages=packages)
        if env.to_bytes() != data:
            raise FormatError(f"{what} is not in canonical form (sorted keys and packages, no whitespace)")
        return env

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def descriptor(self) -> ResourceDescriptor:
        """The provenance's resolved dependency naming this environment."""
        return ResourceDescriptor(
            name=ENVIRONMENT_NAME,
            uri=ENVIRONMENT_FILE,
            digest={"sha256": self.sha256},
            media_type="application/json",
            annotations={"architecture": self.architecture, "packages": len(self.packages)},
        )


# -- the dpkg status file ------------------------------------------------------------------------------------


def _paragraphs(data: bytes) -> list[tuple[int, dict[bytes, tuple[bytes, bool]]]]:
    """Each paragraph's first line number and fields (lower-cased name → first-line value, folded?) (Policy 5.1)."""
    out: list[tuple[int, dict[bytes, tuple[bytes, bool]]]] = []
    fields: dict[bytes, tuple[bytes, bool]] = {}
    start, last = 0, b""
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip(b" \t"):
            if fields:
                out.append((start, fields))
            fields, last = {}, b""
            continue
        if line[:1] in (b" ", b"\t"):
            if not last:
                raise FormatError(f"dpkg status line {n}: a continuation line outside any field")
            fields[last] = (fields[last][0], True)
            continue
        name, colon, value = line.partition(b":")
        if not colon or _FIELD.fullmatch(name) is None:
            raise FormatError(f"dpkg status line {n}: not a 'Field: value' line")
        last = name.lower()
        if last in fields:
            raise FormatError(f"dpkg status line {n}: field {name.decode()} given twice in one paragraph")
        if not fields:
            start = n
        fields[last] = (value.strip(b" \t"), False)
    if fields:
        out.append((start, fields))
    return out


def _field(fields: dict[bytes, tuple[bytes, bool]], name: bytes, line: int) -> str:
    if name not in fields:
        raise FormatError(f"dpkg status paragraph at line {line} has no {name.decode().title()} field")
    value, folded = fields[name]
    if folded or not value.isascii():
        raise FormatError(
            f"dpkg status paragraph at line {line}: {name.decode().title()} is not one ASCII line"
        )
    return value.decode("ascii")


def _package(fields: dict[bytes, tuple[bytes, bool]], line: int) -> Package | None:
    """The package a paragraph describes, or None when none of its files are on disk."""
    status = _field(fields, b"status", line).split()
    if len(status) != 3 or status[0] not in _WANT or status[1] not in _FLAG or status[2] not in _STATES:
        raise FormatError(f"dpkg status paragraph at line {line}: {' '.join(status)!r} is not a dpkg status")
    name = _field(fields, b"package", line)
    if status[2] in _NO_FILES:
        return None
    try:
        return Package(
            name=name,
            version=_field(fields, b"version", line),
            architecture=_field(fields, b"architecture", line),
        )
    except FormatError as e:
        raise FormatError(f"dpkg status paragraph at line {line}: {e}") from e


def parse_status(data: bytes) -> Environment:
    """The environment a dpkg status file describes; the native architecture is that of the ``dpkg`` package.

    Raises FormatError for anything dpkg would not have written: a line that is neither a field nor a
    continuation, a field twice in a paragraph, a paragraph without Package or Status, an unknown status, a
    name, version or architecture Debian Policy does not allow, a package listed twice.
    """
    packages = []
    for line, fields in _paragraphs(data):
        pkg = _package(fields, line)
        if pkg is not None:
            packages.append(pkg)
    native = [p.architecture for p in packages if p.name == "dpkg"]
    if len(native) != 1:
        raise FormatError("the dpkg status file has no (or more than one) installed dpkg package, "
                          "so it names no native architecture")  # fmt: skip
    return Environment.of(architecture=native[0], packages=packages)


_cache: dict[Path, tuple[tuple[int, int, int, int], Environment]] = {}


def current_environment(status: Path = DPKG_STATUS) -> Environment | None:
    """The environment of this host (and of its build sandbox), or None when it has no dpkg database.

    Parsed once per process and reused while the file's inode, size and mtime stay the same (dpkg replaces
    the file whenever it changes it), so a build pays for a ``stat``.
    """
    try:
        st = os.stat(status)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"cannot read the dpkg database {status}: {e}") from e
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _cache.get(status)
    if cached is not None and cached[0] == key:
        return cached[1]
    if st.st_size > MAX_STATUS_BYTES:
        raise FormatError(f"the dpkg database {status} is {st.st_size} bytes, more than {MAX_STATUS_BYTES}")
    try:
        data = status.read_bytes()
    except OSError as e:
        raise StorageError(f"cannot read the dpkg database {status}: {e}") from e
    try:
        env = parse_status(data)
    except FormatError as e:
        raise FormatError(f"{status}: {e}") from e
    _cache[status] = (key, env)
    return env


# -- comparison ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageChange:
    """A package both environments have, at another version or architecture."""

    recorded: Package
    own: Package

    @property
    def name(self) -> str:
        return self.recorded.name

    def text(self) -> str:
        r, o = self.recorded, self.own
        if r.architecture == o.architecture:
            return f"{r.name} {r.version} vs {o.version}"
        return f"{r.name} {r.version} ({r.architecture}) vs {o.version} ({o.architecture})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "recorded": self.recorded.to_dict(), "own": self.own.to_dict()}


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironmentDifference:
    """How a rebuilder's environment (``own``) differs from the one a provenance recorded."""

    recorded_sha256: str
    own_sha256: str
    architecture: tuple[str, str] | None  # (recorded, own) when the native architectures differ
    added: tuple[Package, ...]  # installed here, not in the recorded environment
    removed: tuple[Package, ...]  # in the recorded environment, not installed here
    changed: tuple[PackageChange, ...]

    @property
    def same(self) -> bool:
        return self.recorded_sha256 == self.own_sha256

    def text(self) -> str:
        """One line a verdict can carry: "environment differs: gcc-12 12.2.0-14 vs 12.2.0-15; ..."."""
        if self.same:
            return "environment identical"
        parts = (
            [f"architecture {self.architecture[0]} vs {self.architecture[1]}"] if self.architecture else []
        )
        parts += [c.text() for c in self.changed]
        parts += [f"{p.text()} recorded, not installed here" for p in self.removed]
        parts += [f"{p.text()} installed here, not recorded" for p in self.added]
        shown = parts[:SHOWN_DIFFERENCES]
        if len(parts) > len(shown):
            shown.append(f"and {len(parts) - len(shown)} more")
        return "environment differs: " + "; ".join(shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "recorded_sha256": self.recorded_sha256,
            "own_sha256": self.own_sha256,
            "architecture": list(self.architecture) if self.architecture else None,
            "added": [p.to_dict() for p in self.added],
            "removed": [p.to_dict() for p in self.removed],
            "changed": [c.to_dict() for c in self.changed],
        }


def _by_name(env: Environment) -> dict[str, dict[str, Package]]:
    out: dict[str, dict[str, Package]] = {}
    for p in env.packages:
        out.setdefault(p.name, {})[p.architecture] = p
    return out


def compare_environments(*, recorded: Environment, own: Environment) -> EnvironmentDifference:
    """What differs between the ``recorded`` environment and this rebuilder's ``own``.

    Packages are matched by name and architecture; a name left with one unmatched package on each side
    changed architecture (``python3:amd64`` → ``python3:arm64``), any other leftover is added or removed.
    """
    rec, mine = _by_name(recorded), _by_name(own)
    added: list[Package] = []
    removed: list[Package] = []
    changed: list[PackageChange] = []
    for name in sorted(rec.keys() | mine.keys()):
        r, o = rec.get(name, {}), mine.get(name, {})
        for arch in sorted(r.keys() & o.keys()):
            if r[arch].version != o[arch].version:
                changed.append(PackageChange(recorded=r[arch], own=o[arch]))
        r_left = [r[a] for a in sorted(r.keys() - o.keys())]
        o_left = [o[a] for a in sorted(o.keys() - r.keys())]
        if len(r_left) == 1 and len(o_left) == 1:
            changed.append(PackageChange(recorded=r_left[0], own=o_left[0]))
        else:
            removed += r_left
            added += o_left
    native = (recorded.architecture, own.architecture)
    return EnvironmentDifference(
        recorded_sha256=recorded.sha256,
        own_sha256=own.sha256,
        architecture=native if native[0] != native[1] else None,
        added=tuple(added),
        removed=tuple(removed),
        changed=tuple(changed),
    )
