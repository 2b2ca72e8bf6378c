"""Canonical source snapshots: one deterministic tar for a file tree, and the in-toto ``dirHash`` of its files.

The tar is POSIX pax, uncompressed, entries sorted by path (bytewise), owner and group 0 with empty names,
mode 0755 for directories and executables and 0644 for other files, integer mtimes, no atime/ctime, no device
files. Symlinks are kept only when they stay inside the tree. The same tree always gives the same bytes, so
the snapshot's SHA-256 identifies the source.

mtime is kept as given: a published tarball's mtimes are part of what was published (a wheel built from an
sdist stores them), while a working directory's mtimes are noise and the reader replaces them with one fixed
value. ``dirHash`` (in-toto DigestSet) covers names and contents only.

Pure: works on :class:`SnapshotFile` lists; reading directories and tarballs is :mod:`overt.source.escrow`.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from overt.errors import FormatError

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
MAX_FILES = 200_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotFile:
    path: str  # relative, '/'-separated, normalised, no '..'
    kind: str
    executable: bool = False
    mtime: int = 0
    data: bytes = b""
    target: str = ""  # symlinks only

    def __post_init__(self) -> None:
        check_member_path(self.path)
        if self.kind not in (FILE, DIR, SYMLINK):
            raise ValueError(f"unknown snapshot entry kind {self.kind!r}")
        if self.mtime < 0:
            raise FormatError(f"{self.path}: negative mtime")
        if self.kind == SYMLINK:
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(self.path), self.target))
            if posixpath.isabs(self.target) or resolved == ".." or resolved.startswith("../"):
                raise FormatError(f"symlink {self.path} -> {self.target} points outside the source tree")

    @property
    def mode(self) -> int:
        return 0o755 if self.kind == DIR or self.executable else 0o644


def check_member_path(path: str) -> None:
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise FormatError(f"unsafe path in source: {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise FormatError(f"unsafe path in source: {path!r}")


def canonical_tar(files: Sequence[SnapshotFile]) -> bytes:
    """The deterministic tar of ``files`` (see module docstring)."""
    if len(files) > MAX_FILES:
        raise FormatError(f"source has more than {MAX_FILES} entries")
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise FormatError("source lists a path twice")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(files, key=lambda f: f.path.encode()):
            info = tarfile.TarInfo(f.path)
            info.mode = f.mode
            info.mtime = f.mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if f.kind == DIR:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif f.kind == SYMLINK:
                info.type = tarfile.SYMTYPE
                info.linkname = f.target
                tar.addfile(info)
            else:
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
    return out.getvalue()


def dir_hash(files: Sequence[SnapshotFile]) -> str:
    """in-toto ``dirHash``: sha256 of the ``sha256sum`` lines of every regular file, sorted by path (C locale)."""
    lines = [
        f"{hashlib.sha256(f.data).hexdigest()}  {f.path}\n".encode()
        for f in sorted((f for f in files if f.kind == FILE), key=lambda f: f.path.encode())
    ]
    return hashlib.sha256(b"".join(lines)).hexdigest()


def read_tar(data: bytes, *, strip_top: bool, mtime: int | None = None) -> list[SnapshotFile]:
    """Entries of a tar (any compression tarfile knows), checked for unsafe paths; ``mtime`` overrides if given.

    ``strip_top`` drops a single top-level directory (``tomli-2.0.1/``) as sdists have.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_FILES:
                raise FormatError(f"archive has more than {MAX_FILES} entries")
            raw: list[tuple[tarfile.TarInfo, bytes]] = []
            for m in members:
                content = b""
                if m.isfile():
                    fh = tar.extractfile(m)
                    content = fh.read() if fh is not None else b""
                raw.append((m, content))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise FormatError(f"not a readable tar archive: {e}") from e
    names = [m.name.lstrip("./") if m.name.startswith("./") else m.name for m, _ in raw]
    prefix = ""
    if strip_top:
        tops = {n.split("/", 1)[0] for n in names if n}
        if len(tops) == 1 and any("/" in n for n in names):
            prefix = tops.pop() + "/"
    out: list[SnapshotFile] = []
    seen: set[str] = set()
    for (m, content), name in zip(raw, names, strict=True):
        name = name.rstrip("/")
        if prefix:
            if name + "/" == prefix:
                continue
            name = name[len(prefix) :]
        if name in seen:  # 'a' and 'a/' too: which one a tar reader keeps is not the snapshot's to guess
            raise FormatError(f"archive lists {name!r} twice")
        seen.add(name)
        when = int(m.mtime) if mtime is None else mtime
        executable = bool(m.mode & 0o111)
        if m.isdir():
            out.append(SnapshotFile(path=name, kind=DIR, mtime=when))
        elif m.issym():
            out.append(SnapshotFile(path=name, kind=SYMLINK, mtime=when, target=m.linkname))
        elif m.isfile():
            out.append(SnapshotFile(path=name, kind=FILE, executable=executable, mtime=when, data=content))
        else:
            raise FormatError(f"archive member {m.name!r} is neither a file, a directory nor a symlink")
    return with_parent_dirs(out)


def with_parent_dirs(files: list[SnapshotFile]) -> list[SnapshotFile]:
    """Add the directories a tree implies but does not list (tarballs often omit them)."""
    kinds = {f.path: f.kind for f in files}
    extra = []
    for f in files:
        parent = posixpath.dirname(f.path)
        while parent:
            kind = kinds.get(parent)
            if kind is None:
                kinds[parent] = DIR
                extra.append(SnapshotFile(path=parent, kind=DIR, mtime=f.mtime))
            elif kind != DIR:
                raise FormatError(f"{parent} is both a {kind} and the directory of {f.path}")
            parent = posixpath.dirname(parent)
    return files + extra
