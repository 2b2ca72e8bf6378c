"""The vendor's public site as a rebuilder reads it: every byte checked against a digest from a logged provenance.

The site is the conveyor's ``public/`` served over HTTP (by ``overt serve``, nginx or any static server)::

    <site>/escrow/<sha256>                   an escrowed source snapshot or toolchain input
    <site>/builds/<build-id>/<output path>   a published build output, and environment.json beside it
    <site>/avdb/<name>/<version>.avdb        a published AV database

Nothing the site says is trusted: not the escrow's ``.json`` metadata, not a file's name or size. The caller
names the digest it expects, taken from a provenance it verified in the log (signature by a pinned vendor key,
inclusion under a witnessed checkpoint), and :class:`Site` hands back only bytes with that digest (a source
snapshot also with its ``dirHash``) or raises :class:`~overt.errors.VerificationError` naming both digests.
Every download has a length limit. Paths are built from checked path segments only. Two error families, as
python-tuf has them: :class:`~overt.errors.TransportError` when the site could not be reached or read (a
connection refused, a status other than 200, a redirect, a body over its limit, a timeout), which says
nothing about the build; :class:`~overt.errors.VerificationError` when it answered with other bytes than the
digest names (the vendor's site, or someone between it and the rebuilder, served wrong bytes).

:class:`EscrowCache` keeps what was fetched in the auditor home (``state/escrow``), laid out as a conveyor's
escrow (:class:`overt.source.escrow.Escrow`), so the conveyor's own build code (:func:`overt.build.run.run_and_
compare`) reads it unchanged. Its metadata is written by the rebuilder from the provenance, never copied from
the site. An object is streamed into a temporary file in the cache directory while it is hashed, never held in
memory whole, and cut off at :data:`~overt.source.escrow.MAX_OBJECT` or at the size the site's ``.json``
metadata gives it, if smaller (the metadata only lowers the cap; a wrong size makes the download fail, never
pass); it is renamed into the cache only once its digest matched. An object already cached is never fetched
again (:meth:`Escrow.read` checks its bytes at each build).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import httpx

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.statement import ResourceDescriptor
from overt.build.environment import ENVIRONMENT_FILE, MAX_DOCUMENT_BYTES, Environment
from overt.errors import FormatError, TransportError, VerificationError
from overt.source.escrow import INPUT, MAX_OBJECT, SOURCE, Escrow, EscrowEntry, snapshot_files
from overt.source.snapshot import FILE, check_member_path, dir_hash
from overt.tlog.client import get_bounded

_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_METADATA_BYTES = 1 << 16  # an escrow object's .json (EscrowEntry.from_bytes refuses more)
_BUILD_ID = re.compile(r"[0-9a-f]{16}")


def check_sha256(value: object, what: str) -> str:
    """``value`` if it is a SHA-256 digest in lower-case hex (a FormatError names ``what`` otherwise)."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise FormatError(f"{what} is not a sha256 digest")
    return value


def check_build_id(value: str) -> str:
    if not _BUILD_ID.fullmatch(value):
        raise FormatError(f"build id {value[:40]!r} is not 16 lower-case hex digits")
    return value


def _path(*segments: str) -> str:
    """A site-relative path of checked segments (no ``..``, no empty or absolute part), percent-encoded."""
    for s in segments:
        check_member_path(s)
    return "/".join(quote(s, safe="/") for s in segments)


class Site:
    """The vendor's public site at ``url`` (``http(s)://host[:port][/prefix]``)."""

    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url = url.rstrip("/")
        self.http = http

    def get(self, rel: str, *, limit: int) -> bytes:
        """The body of ``<site>/<rel>``: TransportError unless it answers 200 within ``limit`` bytes."""
        return get_bounded(self.http, f"{self.url}/{rel}", limit=limit)

    def verified(self, rel: str, *, sha256: str, limit: int, what: str) -> bytes:
        """``<site>/<rel>`` if its SHA-256 is ``sha256``; VerificationError (both digests) otherwise."""
        data = self.get(rel, limit=limit)
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise VerificationError(
                f"{what} from the site ({self.url}/{rel}) does not match its digest: sha256 {got}, the "
                f"provenance names {sha256}",
                url=f"{self.url}/{rel}",
                expected=sha256,
                got=got,
            )
        return data

    def stream(self, rel: str, out: BinaryIO, *, limit: int, why: str = "") -> str:
        """Write the body of ``<site>/<rel>`` to ``out`` as it arrives; its SHA-256. TransportError unless it
        answers 200 within ``limit`` bytes (``why`` says where the limit comes from)."""
        url = f"{self.url}/{rel}"
        digest, size = hashlib.sha256(), 0
        try:
            with self.http.stream("GET", url) as r:
                if r.status_code != 200:
                    raise TransportError(f"GET {url} answered {r.status_code}", url=url, status=r.status_code)
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise TransportError(f"GET {url} returned more than {limit} bytes{why}", url=url)
                    digest.update(chunk)
                    out.write(chunk)
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise TransportError(f"GET {url} failed: {e}", url=url) from e
        return digest.hexdigest()

    def escrow_limit(self, sha256: str) -> tuple[int, str]:
        """The most bytes escrow object ``sha256`` may have: :data:`MAX_OBJECT`, or the size the site's
        ``.json`` gives it if that is smaller (unreadable metadata lowers nothing); and why, for a message."""
        try:
            claimed = EscrowEntry.from_bytes(
                self.get(_path("escrow", f"{sha256}.json"), limit=MAX_METADATA_BYTES)
            )
        except (TransportError, FormatError):
            return MAX_OBJECT, ", the escrow's limit"
        if claimed.sha256 != sha256 or claimed.size >= MAX_OBJECT:
            return MAX_OBJECT, ", the escrow's limit"
        return claimed.size, f", the size the site's {sha256[:16]}.json gives the object"

    def escrow_object(self, descriptor: ResourceDescriptor, out: BinaryIO) -> None:
        """The escrow object ``descriptor`` names, written to ``out`` (a file in the cache's directory) and
        checked against its sha256; the dirHash is the caller's to check (it needs the bytes)."""
        sha256 = check_sha256(descriptor.digest.get("sha256"), f"escrow object {descriptor.name!r}")
        rel = _path("escrow", sha256)
        limit, why = self.escrow_limit(sha256)
        got = self.stream(rel, out, limit=limit, why=why)
        if got != sha256:
            raise VerificationError(
                f"{_escrow_what(descriptor, sha256)} from the site ({self.url}/{rel}) does not match its digest: "
                f"sha256 {got}, the provenance names {sha256}",
                url=f"{self.url}/{rel}",
                expected=sha256,
                got=got,
            )

    def build_file(self, build_id: str, name: str, *, sha256: str) -> bytes:
        """A published file of build ``build_id`` (an output, by its path), checked against ``sha256``."""
        rel = _path("builds", check_build_id(build_id), *name.split("/"))
        return self.verified(rel, sha256=sha256, limit=MAX_OBJECT, what=f"published {name}")

    def environment(self, build_id: str, *, sha256: str) -> Environment:
        """The ``environment.json`` build ``build_id`` recorded, checked against ``sha256`` and parsed."""
        rel = _path("builds", check_build_id(build_id), ENVIRONMENT_FILE)
        data = self.verified(
            rel, sha256=sha256, limit=MAX_DOCUMENT_BYTES, what=f"the recorded environment of build {build_id}"
        )
        try:
            return Environment.from_bytes(data)
        except FormatError as e:
            raise VerificationError(
                f"the recorded environment of build {build_id} does not parse: {e}"
            ) from e

    def database(self, name: str, version: int, *, sha256: str) -> bytes:
        """The published AV database ``name`` ``version``, checked against ``sha256``."""
        rel = _path("avdb", name, f"{version}.avdb")
        return self.verified(
            rel, sha256=sha256, limit=MAX_OBJECT, what=f"published database {name} {version}"
        )

    def url_of(self, *segments: str) -> str:
        """The URL a reader fetches ``segments`` at (a VSA's ``resourceUri``)."""
        return f"{self.url}/{_path(*segments)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowCache:
    """Escrow objects fetched from the site and verified, under ``directory``, as :class:`Escrow` lays them out."""

    directory: Path

    @property
    def escrow(self) -> Escrow:
        return Escrow(self.directory, jurisdiction="ZZ")  # read only: this escrow never signs or logs

    def ensure(self, site: Site, descriptor: ResourceDescriptor, *, kind: str) -> EscrowEntry:
        """The cached object ``descriptor`` names (``kind`` source or input), fetched and checked first if
        it is not cached yet (module doc). A cached object is not read here: :meth:`Escrow.read` checks its
        bytes at each build.

        Raises:
            TransportError: the site could not be reached or read, or the object is over its limit.
            VerificationError: the site served other bytes than the digests name.
        """
        sha256 = check_sha256(descriptor.digest.get("sha256"), f"escrow object {descriptor.name!r}")
        meta = self.directory / f"{sha256}.json"
        if meta.exists() and (self.directory / sha256).exists():
            entry = EscrowEntry.from_bytes(meta.read_bytes())
            if entry.kind == kind and entry.dir_hash == descriptor.digest.get("dirHash", entry.dir_hash):
                return entry
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{sha256}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                site.escrow_object(descriptor, out)
                size = out.tell()
                out.flush()
                os.fsync(out.fileno())
            entry = _entry(descriptor, Path(tmp), sha256=sha256, size=size, kind=kind)
            os.chmod(tmp, 0o644)
            # The object first, then the metadata that marks it usable.
            os.replace(tmp, self.directory / sha256)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        atomic_write(meta, jsonio.dump(entry.to_dict()) + b"\n")
        return entry


def _escrow_what(descriptor: ResourceDescriptor, sha256: str) -> str:
    return f"escrow object {descriptor.name} (sha256 {sha256[:16]})"


def _entry(descriptor: ResourceDescriptor, path: Path, *, sha256: str, size: int, kind: str) -> EscrowEntry:
    """The metadata of the verified object at ``path``, from what the provenance says of it (never from the
    site's .json); a source's dirHash checked against the provenance's first."""
    if kind not in (SOURCE, INPUT):
        raise ValueError(f"escrow kind {kind!r}")
    index = descriptor.annotations.get("escrowLogIndex", 0)
    log_index = index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else 0
    if kind == SOURCE:
        what = _escrow_what(descriptor, sha256)
        try:
            files = snapshot_files(path.read_bytes())  # its sha256 matched: the vendor's own object's size
        except FormatError as e:
            raise VerificationError(f"{what} is not a source snapshot: {e}") from e
        got, expected = dir_hash(files), descriptor.digest.get("dirHash")
        if expected and got != expected:
            raise VerificationError(
                f"{what} has dirHash {got}, the provenance names {expected}", expected=expected, got=got
            )
        return EscrowEntry(
            sha256=sha256,
            kind=SOURCE,
            name=descriptor.name or sha256[:16],
            size=size,
            log_index=log_index,
            dir_hash=got,
            files=sum(1 for f in files if f.kind == FILE),
        )
    name = descriptor.name if descriptor.name and "/" not in descriptor.name else sha256[:16]
    return EscrowEntry(sha256=sha256, kind=INPUT, name=name, size=size, log_index=log_index)
