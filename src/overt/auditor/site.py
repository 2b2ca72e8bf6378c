"""The vendor's public site as a rebuilder reads it: every byte checked against a digest from a logged provenance.

The site is the conveyor's ``public/`` served over HTTP (by ``overt serve``, nginx or any static server)::

    <site>/escrow/<sha256>                   an escrowed source snapshot or toolchain input
    <site>/builds/<build-id>/<output path>   a published build output, and environment.json beside it
    <site>/avdb/<name>/<version>.avdb        a published AV database

Nothing the site says is trusted: not the escrow's ``.json`` metadata, not a file's name or size. The caller
names the digest it expects, taken from a provenance it verified in the log (signature by a pinned vendor key,
inclusion under a witnessed checkpoint), and :class:`Site` hands back only bytes with that digest (a source
snapshot also with its ``dirHash``) or raises :class:`~overt.errors.VerificationError` naming both digests.
Every download has a length limit. Paths are built from checked path segments only.

:class:`EscrowCache` keeps what was fetched in the auditor home (``state/escrow``), laid out as a conveyor's
escrow (:class:`overt.source.escrow.Escrow`), so the conveyor's own build code (:func:`overt.build.run.run_and_
compare`) reads it unchanged. Its metadata is written by the rebuilder from the provenance, never copied from
the site.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from overt import jsonio
from overt.atomic import atomic_write
from overt.attest.statement import ResourceDescriptor
from overt.build.environment import ENVIRONMENT_FILE, MAX_DOCUMENT_BYTES, Environment
from overt.errors import FormatError, VerificationError
from overt.source.escrow import INPUT, MAX_OBJECT, SOURCE, Escrow, EscrowEntry, snapshot_files
from overt.source.snapshot import FILE, check_member_path, dir_hash
from overt.tlog.client import get_bounded

_HEX64 = re.compile(r"[0-9a-f]{64}")
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

    def escrow_object(self, descriptor: ResourceDescriptor) -> bytes:
        """The escrow object ``descriptor`` names, checked against its sha256 and, if it gives one, its
        dirHash (the in-toto digest of the snapshot's files)."""
        sha256 = check_sha256(descriptor.digest.get("sha256"), f"escrow object {descriptor.name!r}")
        what = f"escrow object {descriptor.name} (sha256 {sha256[:16]})"
        data = self.verified(_path("escrow", sha256), sha256=sha256, limit=MAX_OBJECT, what=what)
        expected = descriptor.digest.get("dirHash")
        if expected:
            try:
                got = dir_hash(snapshot_files(data))
            except FormatError as e:
                raise VerificationError(f"{what} is not a source snapshot: {e}") from e
            if got != expected:
                raise VerificationError(
                    f"{what} has dirHash {got}, the provenance names {expected}", expected=expected, got=got
                )
        return data

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
        it is not cached yet. A cached object is re-read and checked by :meth:`Escrow.read` at each build."""
        sha256 = check_sha256(descriptor.digest.get("sha256"), f"escrow object {descriptor.name!r}")
        escrow = self.escrow
        meta = self.directory / f"{sha256}.json"
        if meta.exists() and (self.directory / sha256).exists():
            entry = EscrowEntry.from_bytes(meta.read_bytes())
            if entry.kind == kind and entry.dir_hash == descriptor.digest.get("dirHash", entry.dir_hash):
                escrow.read(entry)  # still the bytes it was: raises if the cache was damaged
                return entry
        data = site.escrow_object(descriptor)
        entry = _entry(descriptor, data, kind=kind)
        # The object first, then the metadata that marks it usable.
        atomic_write(self.directory / sha256, data)
        atomic_write(meta, jsonio.dump(entry.to_dict()) + b"\n")
        return entry


def _entry(descriptor: ResourceDescriptor, data: bytes, *, kind: str) -> EscrowEntry:
    """The metadata of a verified object, from what the provenance says of it (never from the site's .json)."""
    if kind not in (SOURCE, INPUT):
        raise ValueError(f"escrow kind {kind!r}")
    index = descriptor.annotations.get("escrowLogIndex", 0)
    sha256 = hashlib.sha256(data).hexdigest()
    if kind == SOURCE:
        files = snapshot_files(data)
        return EscrowEntry(
            sha256=sha256,
            kind=SOURCE,
            name=descriptor.name or sha256[:16],
            size=len(data),
            log_index=index if isinstance(index, int) and index >= 0 else 0,
            dir_hash=dir_hash(files),
            files=sum(1 for f in files if f.kind == FILE),
        )
    name = descriptor.name if descriptor.name and "/" not in descriptor.name else sha256[:16]
    return EscrowEntry(
        sha256=sha256,
        kind=INPUT,
        name=name,
        size=len(data),
        log_index=index if isinstance(index, int) and index >= 0 else 0,
    )
