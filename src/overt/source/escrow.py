"""The escrow: canonical source snapshots and toolchain inputs, stored by SHA-256 and logged before use.

Layout (plain static files, so auditors fetch any object by digest over HTTP)::

    public/escrow/<sha256>        the object: a canonical source tar, or a toolchain input as given
    public/escrow/<sha256>.json   what it is: kind (source|input), name, size, dirHash, files, log index

Adding an object logs a ``source-escrow/v1`` statement (subject: the object's sha256 and, for sources, its
dirHash) signed by the conveyor's builder key; the metadata records the log index, and builds refuse objects
whose escrow was not logged. Writing is idempotent: the same input gives the same digest and is stored once.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.build.recipe import RECIPE_FILE, validate_recipe
from overt.errors import ConfigError, FormatError, VerificationError
from overt.files import read_regular_file
from overt.keys.jurisdiction import SOURCE_ESCROW_V1, Issuer
from overt.keys.registry import KeyRecord
from overt.keys.signing import Signed, SigningService
from overt.source.snapshot import (
    DIR,
    FILE,
    SYMLINK,
    SnapshotFile,
    canonical_tar,
    dir_hash,
    read_tar,
    with_parent_dirs,
)

SOURCE = "source"
INPUT = "input"
DEFAULT_DIRECTORY_MTIME = 315_532_800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can carry
MAX_OBJECT = 1 << 30
_ISSUER = Issuer(SOURCE_ESCROW_V1)  # escrow records are issued here only, never signed on request


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowEntry:
    sha256: str
    kind: str
    name: str
    size: int
    log_index: int
    dir_hash: str = ""
    files: int = 0
    escrowed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sha256": self.sha256,
            "kind": self.kind,
            "name": self.name,
            "size": self.size,
            "log_index": self.log_index,
            "escrowed_at": self.escrowed_at,
        }
        if self.kind == SOURCE:
            out.update(dirHash=self.dir_hash, files=self.files)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> EscrowEntry:
        obj = jsonio.load_object(data, "escrow metadata", max_size=1 << 16)
        what = "escrow metadata"
        size, index, files = obj.get("size"), obj.get("log_index"), obj.get("files", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (size, index, files)):
            raise FormatError(f"{what}: size, log_index and files must be non-negative integers")
        assert isinstance(size, int) and isinstance(index, int) and isinstance(files, int)
        kind = jsonio.req_str(obj, "kind", what)
        if kind not in (SOURCE, INPUT):
            raise FormatError(f"{what}: kind must be source or input")
        return cls(
            sha256=jsonio.req_str(obj, "sha256", what),
            kind=kind,
            name=jsonio.req_str(obj, "name", what),
            size=size,
            log_index=index,
            dir_hash=jsonio.opt_str(obj, "dirHash", what),
            files=files,
            escrowed_at=jsonio.opt_str(obj, "escrowed_at", what),
        )


def read_directory(root: Path, *, mtime: int = DEFAULT_DIRECTORY_MTIME) -> list[SnapshotFile]:
    """A working tree as snapshot entries; every mtime becomes ``mtime``. Skips ``.git``. A special file in
    the tree (a FIFO, a device, a socket) is refused, never read."""
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory")
    out: list[SnapshotFile] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        base = Path(dirpath)
        for name in [*dirnames, *sorted(filenames)]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out.append(SnapshotFile(path=rel, kind=SYMLINK, mtime=mtime, target=os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                out.append(SnapshotFile(path=rel, kind=DIR, mtime=mtime))
            elif stat.S_ISREG(st.st_mode):
                if total + st.st_size > MAX_OBJECT:
                    raise ConfigError(
                        f"the files of {root} hold more than {MAX_OBJECT} bytes, "
                        "more than one escrow object may hold"
                    )
                data = read_regular_file(path, limit=MAX_OBJECT - total)  # a FIFO swapped in is refused
                total += len(data)
                out.append(
                    SnapshotFile(
                        path=rel, kind=FILE, executable=bool(st.st_mode & 0o111), mtime=mtime, data=data
                    )
                )
            else:
                raise FormatError(f"{path} is neither a file, a directory nor a symlink")
    return out


def add_recipe(files: list[SnapshotFile], recipe: bytes, mtime: int) -> list[SnapshotFile]:
    """Place ``overt.toml`` at the source root (replacing one the source has)."""
    return [f for f in files if f.path != "overt.toml"] + [
        SnapshotFile(path="overt.toml", kind=FILE, mtime=mtime, data=recipe)
    ]


def snapshot_files(snapshot: bytes) -> list[SnapshotFile]:
    return with_parent_dirs(read_tar(snapshot, strip_top=False))


def extract(snapshot: bytes, dest: Path, *, reverse: bool = False) -> None:
    """Materialise a canonical snapshot in ``dest`` with its modes and mtimes (``reverse`` changes the creation
    order, and so the directory order on tmpfs)."""
    files = snapshot_files(snapshot)
    ordered = sorted(files, key=lambda f: f.path.encode(), reverse=reverse)
    for f in sorted(ordered, key=lambda f: f.kind != DIR):  # directories first
        path = dest / f.path
        if f.kind == DIR:
            path.mkdir(parents=True, exist_ok=True)
        elif f.kind == SYMLINK:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(f.target)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
            path.chmod(f.mode)
    for f in sorted(files, key=lambda f: f.path.count("/"), reverse=True):  # children before parents
        os.utime(dest / f.path, (f.mtime, f.mtime), follow_symlinks=False)
    os.utime(dest, (DEFAULT_DIRECTORY_MTIME, DEFAULT_DIRECTORY_MTIME))


class Escrow:
    """The escrow directory of one home, and the logging of what enters it."""

    def __init__(self, directory: Path, jurisdiction: str) -> None:
        self.directory = directory
        self.jurisdiction = jurisdiction

    def _meta_path(self, sha256: str) -> Path:
        return self.directory / f"{sha256}.json"

    def object_path(self, entry: EscrowEntry) -> Path:
        """Where the object's bytes are: ``<escrow>/<sha256>``, also served under that name."""
        return self.directory / entry.sha256

    def entries(self) -> list[EscrowEntry]:
        if not self.directory.is_dir():
            return []
        out = []
        for meta in sorted(self.directory.glob("*.json")):
            try:
                out.append(EscrowEntry.from_bytes(meta.read_bytes()))
            except FormatError as e:
                raise ConfigError(f"escrow metadata {meta} is broken: {e}") from e
        return sorted(out, key=lambda e: e.log_index)

    def get(self, ref: str) -> EscrowEntry:
        """An entry by sha256 or a unique prefix of at least 8 hex digits (``sha256:`` prefix allowed)."""
        ref = ref.removeprefix("sha256:")
        exact = self._meta_path(ref)
        if len(ref) == 64 and exact.exists():  # a full digest needs no scan of the whole escrow
            try:
                return EscrowEntry.from_bytes(exact.read_bytes())
            except FormatError as e:
                raise ConfigError(f"escrow metadata {exact} is broken: {e}") from e
        if len(ref) < 8:
            raise ConfigError(f"{ref!r} is not a sha256 digest or a prefix of at least 8 hex digits")
        found = [e for e in self.entries() if e.sha256.startswith(ref)]
        if len(found) != 1:
            raise ConfigError(
                f"{'no' if not found else len(found)} escrowed objects match {ref}; see 'overt source show'"
            )
        return found[0]

    def read(self, entry: EscrowEntry) -> bytes:
        """The object's bytes, checked against its digest."""
        try:
            data = (self.directory / entry.sha256).read_bytes()
        except OSError as e:
            raise ConfigError(f"escrowed object {entry.sha256} is missing: {e.strerror}") from e
        got = hashlib.sha256(data).hexdigest()
        if got != entry.sha256:
            raise VerificationError(
                f"escrowed object {entry.name} does not match its digest", expected=entry.sha256, got=got
            )
        return data

    def _store(
        self,
        data: bytes,
        *,
        kind: str,
        name: str,
        service: SigningService,
        key: KeyRecord,
        files: int,
        dhash: str,
    ) -> tuple[EscrowEntry, Signed | None]:
        if len(data) > MAX_OBJECT:
            raise ConfigError(f"{name} is {len(data)} bytes; escrow objects are at most {MAX_OBJECT}")
        sha = hashlib.sha256(data).hexdigest()
        if self._meta_path(sha).exists():
            return EscrowEntry.from_bytes(self._meta_path(sha).read_bytes()), None
        digest = {"sha256": sha} | ({"dirHash": dhash} if dhash else {})
        now = service.now()
        statement = Statement(
            subject=(ResourceDescriptor(name=name, digest=digest),),
            predicate_type=SOURCE_ESCROW_V1,
            predicate={
                "kind": kind,
                "name": name,
                "size": len(data),
                "files": files,
                "escrowUri": f"escrow/{sha}",
                "jurisdiction": self.jurisdiction,
                "time": format_timestamp(now),
            },
        )
        # Object first, then the logged statement, then the metadata that marks it usable.
        atomic_write(self.directory / sha, data)
        signed = service.issue(key, statement, issuer=_ISSUER)
        entry = EscrowEntry(
            sha256=sha,
            kind=kind,
            name=name,
            size=len(data),
            log_index=signed.receipt.index,
            dir_hash=dhash,
            files=files,
            escrowed_at=format_timestamp(now),
        )
        atomic_write(self._meta_path(sha), jsonio.dump(entry.to_dict()) + b"\n")
        return entry, signed

    def add_source(
        self, files: list[SnapshotFile], *, name: str, service: SigningService, key: KeyRecord
    ) -> tuple[EscrowEntry, Signed | None]:
        """Escrow a source snapshot. A recipe at its root is validated first: escrow is permanent and logged,
        so a recipe that could never build is refused before anything is stored or signed."""
        for f in files:
            if f.path == RECIPE_FILE and f.kind == FILE:
                try:
                    validate_recipe(f.data)
                except FormatError as e:
                    raise FormatError(f"{e} (nothing was escrowed or logged)", **e.evidence) from e
        data = canonical_tar(files)
        regular = sum(1 for f in files if f.kind == FILE)
        return self._store(
            data, kind=SOURCE, name=name, service=service, key=key, files=regular, dhash=dir_hash(files)
        )

    def add_input(
        self, data: bytes, *, name: str, service: SigningService, key: KeyRecord
    ) -> tuple[EscrowEntry, Signed | None]:
        if "/" in name or not name:
            raise ConfigError(f"toolchain input name {name!r} must be a plain file name")
        return self._store(data, kind=INPUT, name=name, service=service, key=key, files=0, dhash="")


def read_source(path: Path, *, mtime: int | None = None) -> list[SnapshotFile]:
    """A directory or a tarball (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.xz``...) as snapshot entries; a path
    that is neither a directory nor a regular file (a FIFO, a device) is refused, never read."""
    if path.is_dir():
        return read_directory(path, mtime=DEFAULT_DIRECTORY_MTIME if mtime is None else mtime)
    data = read_regular_file(path, limit=MAX_OBJECT)
    if not tarfile.is_tarfile(io.BytesIO(data)):
        raise FormatError(f"{path} is neither a directory nor a tar archive")
    return read_tar(data, strip_top=True, mtime=mtime)
