"""``overt verify ARTIFACT --evidence DIR --policy FILE``: the endpoint's checks, offline, for someone who
obtained the artifact another way (issue 12, point 6).

``DIR`` is laid out as the repository's ``public/tuf/`` (a copy of it, or the part one artifact needs):
``metadata/`` and ``evidence/``. The artifact is found among the targets by its sha256 (or named with
``--target``). Then:

* **TUF signatures**: from the policy's pinned root, each newer ``N.root.json`` in ``DIR`` signed by the
  threshold of the one before and its own, then the timestamp, the snapshot it names (length and sha256),
  targets, release and the bin that lists the artifact, each signed by its delegator. Expiry is *not*
  checked: an offline file is judged on the log's evidence, whose freshness step 5 measures;
* **steps 2-5** of :mod:`overt.distribute.assurance` with no log head: the proofs' checkpoints must carry
  the quorum, those of one size must agree (consistency across sizes needs the log's tiles, which an offline
  directory does not have), freshness is measured on the newest of them, and the version is compared with
  what an agent directory (``--dir``) has installed, if one is given.

Reads files only; writes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Key, Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from overt.distribute.agentdir import AgentLayout, read_record
from overt.distribute.assurance import Assurance, Candidate, Passed, UsedMetadata, assure
from overt.distribute.evidence import directory_source, refused
from overt.distribute.installer import installed_version
from overt.distribute.layout import TIMESTAMP_FILE, metadata_name
from overt.distribute.release import AVDB, PRODUCT, overt_custom
from overt.distribute.trust import DATABASE, Follow, TrustPolicy
from overt.errors import UsageError
from overt.files import read_regular_file
from overt.tlog.client import MAX_BUNDLE_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineVerification:
    """What ``overt verify --evidence`` proved about one artifact."""

    artifact: str
    evidence: str
    assurance: Assurance
    tuf: Passed

    @property
    def checks(self) -> tuple[Passed, ...]:
        return (self.tuf, *self.assurance.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "artifact": self.artifact,
            "evidence": self.evidence,
            **self.assurance.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
        }


class _Tree:
    """The metadata in an evidence directory, verified by signature from the pinned root (no expiry).

    ``used`` holds the exact bytes of each file the verification of the artifact's target went through."""

    def __init__(self, directory: Path, trust: TrustPolicy) -> None:
        self.metadata = directory / "metadata"
        self.used: dict[str, bytes] = {}
        self.root = self._roots(trust.root)
        root = self.root.signed
        data = self._read(TIMESTAMP_FILE)
        timestamp = Metadata[Timestamp].from_bytes(data)
        root.verify_delegate("timestamp", timestamp.signed_bytes, timestamp.signatures)
        self.used["timestamp"] = data
        data = self._checked(
            metadata_name("snapshot", timestamp.signed.snapshot_meta.version), timestamp.signed.snapshot_meta
        )
        snapshot = Metadata[Snapshot].from_bytes(data)
        root.verify_delegate("snapshot", snapshot.signed_bytes, snapshot.signatures)
        self.used["snapshot"] = data
        self.snapshot = snapshot.signed
        self.targets = self._delegated("targets", root)
        self.release = self._delegated("release", self.targets[1])
        self.used["targets"], self.used["release"] = self.targets[0], self.release[0]

    def _read(self, name: str) -> bytes:
        path = self.metadata / name
        if not path.exists():
            raise refused("tuf", f"the evidence directory lacks metadata/{name}")
        return read_regular_file(path, limit=MAX_BUNDLE_BYTES)

    def _checked(self, name: str, meta: MetaFile) -> bytes:
        data = self._read(name)
        meta.verify_length_and_hashes(data)
        return data

    def _roots(self, pinned: bytes) -> Metadata[Root]:
        trusted, data = Metadata[Root].from_bytes(pinned), pinned
        while (self.metadata / metadata_name("root", trusted.signed.version + 1)).is_file():
            data = self._read(metadata_name("root", trusted.signed.version + 1))
            new = Metadata[Root].from_bytes(data)
            if (
                new.signed.version != trusted.signed.version + 1
                or not new.signed.get_root_verification_result(
                    trusted.signed, new.signed_bytes, new.signatures
                )
            ):
                raise refused(
                    "tuf", f"{new.signed.version}.root.json is not signed by the root before it and its own"
                )
            trusted = new
        self.used["root"] = data
        return trusted

    def _delegated(self, role: str, delegator: Root | Targets) -> tuple[bytes, Targets]:
        meta = self.snapshot.meta.get(f"{role}.json")
        if meta is None:
            raise refused("tuf", f"the snapshot lists no {role}.json")
        data = self._checked(metadata_name(role, meta.version), meta)
        md = Metadata[Targets].from_bytes(data)
        delegator.verify_delegate(role, md.signed_bytes, md.signatures)
        return data, md.signed

    def listings(self) -> list[tuple[str, bytes, Targets]]:
        """The release role, or each of its bins the directory holds: (role, bytes, verified listing)."""
        release = self.release[1]
        succinct = None if release.delegations is None else release.delegations.succinct_roles
        if succinct is None:
            return [("release", self.release[0], release)]
        out = []
        for role in succinct.get_roles():
            meta = self.snapshot.meta.get(f"{role}.json")
            if meta is not None and (self.metadata / metadata_name(role, meta.version)).is_file():
                out.append((role, *self._delegated(role, release)))
        return out

    def keys(self, role: str) -> tuple[Key, ...]:
        root = self.root.signed
        if role in root.roles:
            return tuple(root.get_key(k) for k in root.roles[role].keyids)
        parent = self.targets[1] if role == "release" else self.release[1]
        assert parent.delegations is not None
        if role == "release":
            keyids = parent.get_delegated_role(role).keyids
        else:
            assert parent.delegations.succinct_roles is not None
            keyids = parent.delegations.succinct_roles.keyids
        return tuple(parent.delegations.keys[k] for k in keyids)

    def used_metadata(self) -> list[UsedMetadata]:
        return [
            UsedMetadata(
                role=role,
                name=metadata_name(role, Metadata.from_bytes(data).signed.version),
                data=data,
                keys=self.keys(role),
            )
            for role, data in self.used.items()
        ]


def _find(tree: _Tree, sha256: str, target: str | None) -> TargetFile:
    """The product or database target named ``target``, or with this sha256; its listing joins ``used``."""
    found = []
    for role, data, listing in tree.listings():
        for path, info in listing.targets.items():
            if overt_custom(info).get("kind") not in (PRODUCT, AVDB):
                continue
            if path == target or (target is None and info.hashes.get("sha256") == sha256):
                found.append((role, data, info))
    if not found:
        which = f"target {target}" if target else f"target with sha256 {sha256}"
        raise refused("tuf", f"the evidence directory's signed metadata lists no {which}")
    if len(found) > 1:
        paths = ", ".join(info.path for _, _, info in found)
        raise UsageError(f"{len(found)} targets have this sha256 ({paths}): name one with --target")
    role, data, info = found[0]
    tree.used[role] = data
    return info


def verify_offline(
    artifact: bytes,
    *,
    name: str,
    evidence: Path,
    trust: TrustPolicy,
    now: datetime,
    target: str | None = None,
    agent_dir: Path | None = None,
) -> OfflineVerification:
    """Steps 2-5 for the artifact ``artifact`` (module docstring); raises on the first check that fails."""
    sha256 = hashlib.sha256(artifact).hexdigest()
    try:
        tree = _Tree(evidence, trust)
        info = _find(tree, sha256, target)
    except (RepositoryError, ValueError, KeyError, TypeError) as e:
        raise refused(
            "tuf", f"the evidence directory's TUF metadata does not verify: {type(e).__name__}: {e}"
        ) from e
    if info.hashes.get("sha256") != sha256 or info.length != len(artifact):
        raise refused(
            "artifact",
            f"{name} is not {info.path}: its sha256 is {sha256}, the target's {info.hashes.get('sha256')}",
        )
    o = overt_custom(info)
    kind = DATABASE if o.get("kind") == AVDB else "product"
    candidate = Candidate(
        kind=kind,
        name=str(o.get("database") if kind == DATABASE else o.get("product")),
        channel="" if kind == DATABASE else str(o.get("channel")),
        version=str(o.get("version")),
        path=info.path,
        sha256=sha256,
        length=info.length,
        custom=o,
    )
    installed = None
    if agent_dir is not None:
        follow = Follow(kind=candidate.kind, name=candidate.name, channel=candidate.channel)
        layout = AgentLayout(agent_dir)
        installed = installed_version(layout, follow, read_record(layout, follow))
    used = tree.used_metadata()
    assurance = assure(
        directory_source(evidence), candidate, used, trust, head=None, installed=installed, now=now
    )
    tuf = Passed(
        check="tuf",
        detail=f"{info.path} signed from the pinned root through {', '.join(u.name for u in used)} (expiry not checked offline)",
    )
    return OfflineVerification(artifact=name, evidence=str(evidence), assurance=assurance, tuf=tuf)
