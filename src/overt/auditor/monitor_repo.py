"""What the vendor's TUF repository serves, as the monitor judges it: every metadata file, the keys of its
role, and every release its targets metadata names, across versions.

Reads the repository over HTTP(S) (or a directory) with overt's own fetcher (length limits included):

1. the files an endpoint would use now, as :func:`overt.distribute.evidence.served_metadata` lists them
   (every root version, the timestamp, its snapshot, each targets file that snapshot names);
2. every older version of each targets role (``N.release.json``, ``N.bin-XX.json``, ``N.targets.json``) not
   read by an earlier run: a version a targeted update served for an hour stays on a consistent-snapshot
   repository, and two versions may name two artifacts for one release;
3. the role keys: for root, targets, snapshot and timestamp those of every root version; for a delegated
   role (``release``, a hash bin, any other) those every targets file read that delegates to it names.

Releases are targets whose ``custom.overt`` (:func:`overt.distribute.release.overt_custom`) is a product or an
AV database, listed by any role that can list targets: the top-level ``targets`` role and every delegation
(an endpoint's TUF client resolves a target through all of them). It does not verify the TUF chain (an
endpoint's job, :mod:`overt.distribute.endpoint`): it only reads what is served, and the monitor checks the
log holds it. Files are returned oldest metadata version first, whatever the order they were read in, so a
monitor started late judges a role's history as one that ran all along did. A product version is compared as ``overt release`` compares it (PEP 440 equality: ``1.0`` and
``1.0.0`` are one version, ``1.1+local`` is another than ``1.1``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_version
from securesystemslib.signer import Key
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Root, Targets

from overt.avdb.release import _check_name
from overt.distribute.evidence import served_metadata
from overt.distribute.release import AVDB, PRODUCT, overt_custom, parse_version
from overt.errors import ConfigError, FormatError, TransportError, UsageError
from overt.tlog.client import Fetch

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
NOT_TARGETS = ("root", "snapshot", "timestamp")  # every other role can list targets


def role_of(name: str) -> str:
    """The role of the metadata file ``N.role.json``."""
    return name.split(".", 1)[1].removesuffix(".json") if name.count(".") >= 2 else name


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedFile:
    name: str  # its consistent-snapshot name (N.role.json)
    sha256: str
    role: str
    keys: tuple[Key, ...]  # the keys the delegating metadata names for the role


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """One release a targets file names. ``version_key`` compares versions as releases do (PEP 440 for a
    product: ``1.0`` and ``1.0.0`` are one version)."""

    kind: str  # product or avdb
    name: str
    version: str
    version_key: str
    path: str
    sha256: str
    provenance: str | None
    log_index: int | None
    listed_in: str  # the metadata file that names it
    problem: str | None = None  # why no release could have this version (``malformed-version``), if so


@dataclass(frozen=True, slots=True, kw_only=True)
class RepositoryView:
    files: tuple[ServedFile, ...]
    releases: tuple[Release, ...]
    versions: Mapping[str, int]  # the newest version read of each targets role


def avdb_version(value: object) -> int | None:
    """The AV-database version ``value`` stands for, as the release check compares it
    (:mod:`overt.distribute.databases`: equal to the positive integer ``overt avdb release`` was given, so
    ``7.0`` is version 7 and ``true`` version 1); None for a value no release can have (a string such as
    ``"07"``, a fraction, a number below 1): a malformed version, never silently another one."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 1 else None


def version_problem(kind: str, path: str, value: object) -> str | None:
    """Why no release could have the custom ``version`` ``value`` of the target at ``path``, or None: a
    product's must be a PEP 440 version in its normal spelling (:func:`overt.distribute.release.parse_version`,
    as ``overt release`` requires) and equal to the version segment of its path
    (``products/<product>/<version>/<file>``); an AV database's a positive integer (:func:`avdb_version`)."""
    shown = json.dumps(value)[:40] if value is not None else "(none)"
    if kind == AVDB:
        return None if avdb_version(value) is not None else f"version {shown} is not a positive integer"
    if not isinstance(value, str):
        return f"version {shown} is not a PEP 440 version string"
    try:
        parse_version(value)
    except UsageError:
        return f"version {shown} is not a PEP 440 version in its normal spelling"
    segments = path.split("/")
    if len(segments) == 4 and segments[0] == "products" and segments[2] != value:
        return f"its path names version {json.dumps(segments[2])[:40]} but its custom version is {shown}"
    return None


def avdb_name(value: object) -> str | None:
    """``value`` if it is a database name ``overt avdb`` accepts (:func:`overt.avdb.release._check_name`'s
    rule, exact: names differing in case are two databases), else None."""
    if not isinstance(value, str):
        return None
    try:
        return _check_name(value)
    except ConfigError:
        return None


def _parse(data: bytes, name: str) -> Metadata[Any]:
    try:
        return Metadata.from_bytes(data)
    except (RepositoryError, ValueError, TypeError, KeyError) as e:
        raise FormatError(f"the served metadata file {name} is malformed: {e}") from e


def _keys_of(delegator: Root | Targets, role: str) -> list[Key]:
    try:
        delegation = delegator.get_delegated_role(role)
        return [delegator.get_key(k) for k in delegation.keyids]
    except (ValueError, KeyError):
        return []


def _older(fetch: Fetch, current: Mapping[str, int], seen: Mapping[str, int]) -> list[tuple[str, bytes]]:
    """Versions of targets roles between the last run's and the current one (step 2)."""
    out = []
    for role, version in sorted(current.items()):
        if role in ("root", "timestamp", "snapshot"):
            continue
        for v in range(seen.get(role, 0) + 1, version):
            name = f"{v}.{role}.json"
            try:
                out.append((name, fetch(f"metadata/{name}")))
            except TransportError:
                continue  # no longer served: nothing an endpoint could be given
    return out


def read_repository(fetch: Fetch, *, seen: Mapping[str, int]) -> RepositoryView:
    """Steps 1-3 of the module docstring; ``seen`` is the newest version of each role an earlier run read."""
    files = served_metadata(fetch)
    parsed = {name: _parse(data, name) for name, data in files}
    current = {role_of(n): md.signed.version for n, md in parsed.items()}
    for name, data in _older(fetch, current, seen):
        files.append((name, data))
        parsed[name] = _parse(data, name)
    roots = [md.signed for n, md in parsed.items() if role_of(n) == "root"]
    delegators = [
        md.signed
        for n, md in parsed.items()
        if isinstance(md.signed, Targets) and md.signed.version == current.get(role_of(n))
    ]
    served, releases = [], []
    for name, data in sorted(files, key=lambda f: _order(f[0], parsed[f[0]])):
        role = role_of(name)
        if role in TOP_ROLES:
            keys = [k for root in roots for k in _keys_of(root, role)]
        else:
            keys = [k for d in delegators for k in _keys_of(d, role)]
        unique = {k.keyid: k for k in keys}
        served.append(
            ServedFile(
                name=name, sha256=hashlib.sha256(data).hexdigest(), role=role, keys=tuple(unique.values())
            )
        )
        if role not in NOT_TARGETS:
            releases.extend(_releases(parsed[name], name))
    return RepositoryView(files=tuple(served), releases=tuple(releases), versions=current)


def _order(name: str, md: Metadata[Any]) -> tuple[int, str]:
    """Files in metadata-version order, oldest first (per role; roles of one version by name), so every
    monitor, whenever started, meets a role's releases in the order the repository published them."""
    return (md.signed.version, role_of(name))


def _releases(md: Metadata[Any], name: str) -> list[Release]:
    if not isinstance(md.signed, Targets):
        return []
    out = []
    for path, info in sorted(md.signed.targets.items()):
        o = overt_custom(info)
        kind = o.get("kind")
        if kind not in (PRODUCT, AVDB) or "sha256" not in info.hashes:
            continue
        label = o.get("product") if kind == PRODUCT else o.get("database")
        version = str(o.get("version"))
        problem = version_problem(kind, path, o.get("version"))
        number = avdb_version(o.get("version")) if kind == AVDB else None
        provenance = o.get("provenance")
        prov = provenance if isinstance(provenance, dict) else {}
        index = prov.get("logIndex")
        out.append(
            Release(
                kind=kind,
                name=str(label),
                version=version,
                version_key=canonicalize_version(version)
                if kind == PRODUCT
                else (version if number is None else str(number)),
                path=path,
                sha256=info.hashes["sha256"],
                provenance=prov.get("sha256") if isinstance(prov.get("sha256"), str) else None,
                log_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
                listed_in=name,
                problem=problem,
            )
        )
    return out
