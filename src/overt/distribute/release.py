"""``overt release``: a checked artifact becomes a TUF target, with its evidence beside it.

A product release (``overt release ARTIFACT --product P --version V [--channel C] [--provenance FILE]``)
is refused, with a one-line reason and nothing signed, when (in this order):

1. the product, version or file name is not a plain path segment, or the version is not a PEP 440 version in
   its normal spelling (``1.0``, not ``v1.0``): a usage error, exit 2;
2. the product already has this version, on any channel (PEP 440 compares, so ``1.0`` and ``1.0.0`` are
   the same version): a version is released once;
3. the version is not greater than the last one of the same product and channel;
4. the provenance fails a check of :mod:`overt.distribute.checks`: not logged under the witness quorum, not
   naming the artifact, not signed by a builder key here, or failing the jurisdiction policy or the builder
   registry.

Refusals 2-4 are :class:`~overt.errors.PolicyError` (exit 1). AV databases are :mod:`overt.distribute.databases`.

Each target's ``custom`` field carries what an endpoint checks beyond TUF::

    {"overt": {"kind": "product", "product": "demo", "channel": "stable", "version": "1.0",
               "provenance": {"sha256": "<SHA-256 of the provenance envelope, byte for byte as logged>",
                              "logIndex": 17}}}

``provenance.sha256`` names the log entry (its tlog-proof is in ``evidence/targets/<path>/``) and
``logIndex`` is where it is. Versions are ordered with ``packaging.version`` (PEP 440). The same change
points the channel index ``channels/products/<product>/<channel>.json`` at the new version
(:mod:`overt.distribute.channels`), so endpoints find it without listing targets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version
from tuf.api.metadata import TargetFile

from overt.distribute.channels import CARRIES_PRODUCT, ChannelIndex
from overt.distribute.checks import ReleaseContext, check_provenance
from overt.distribute.layout import check_segment, product_path
from overt.distribute.repository import NewTarget, Repository, RepositoryChange
from overt.distribute.state import RepositoryState
from overt.errors import PolicyError, UsageError

DEFAULT_CHANNEL = "stable"
PRODUCT, AVDB, AVDB_DELTA = "product", "avdb", "avdb-delta"


def parse_version(value: str) -> Version:
    """A PEP 440 version in its normal spelling (so one version has one target path)."""
    try:
        version = Version(value)
    except InvalidVersion as e:
        raise UsageError(f"version {value!r} is not a PEP 440 version such as 1.0 or 2.1.3") from e
    if str(version) != value:
        raise UsageError(f"write version {value!r} as {version}, its normal PEP 440 spelling")
    return version


def overt_custom(info: TargetFile) -> dict[str, Any]:
    """The ``overt`` object of a target's ``custom`` field (empty if it has none)."""
    custom = info.unrecognized_fields.get("custom")
    found = custom.get("overt") if isinstance(custom, dict) else None
    return found if isinstance(found, dict) else {}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasedTarget:
    """A published target: its path, digest, custom field, the log index of its provenance, any delta
    published with it, and what the repository signed and logged."""

    path: str
    sha256: str
    length: int
    custom: dict[str, Any]
    provenance_index: int
    quorum: str  # the witness quorum of the log policy the provenance was proved under
    cosigners: tuple[str, ...]  # the witnesses that cosigned that checkpoint
    publication: RepositoryChange
    delta: str | None = None
    channel_index: str | None = None  # the channel index this release made point to it

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.path,
            "sha256": self.sha256,
            "length": self.length,
            "custom": self.custom,
            "provenance_log_index": self.provenance_index,
            "quorum": self.quorum,
            "cosigners": list(self.cosigners),
            "delta": self.delta,
            "channel_index": self.channel_index,
            **self.publication.to_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductRelease:
    """What ``overt release ARTIFACT`` was asked to publish."""

    artifact: bytes
    file_name: str
    product: str
    version: str
    provenance: bytes
    channel: str = DEFAULT_CHANNEL


def check_product_version(
    state: RepositoryState, *, product: str, channel: str, version: Version, sha256: str | None = None
) -> None:
    """Refusals 2 and 3: one artifact per (product, version), and versions move forward per channel; and
    an artifact is released once, under one product, so old bytes never come back under a new version
    number or name."""
    latest: Version | None = None
    for path, info in state.released().items():
        o = overt_custom(info)
        if o.get("kind") != PRODUCT:
            continue
        if sha256 is not None and info.hashes.get("sha256") == sha256:
            raise PolicyError(
                f"refused: this artifact (sha256 {sha256}) is already released as {o.get('product')} "
                f"{o.get('version')} ({path}); old bytes under a new version or name would roll endpoints back",
                check="version",
            )
        if o.get("product") != product:
            continue
        other = Version(str(o.get("version")))
        if other == version:
            raise PolicyError(
                f"refused: {product} {version} is already released ({path}, channel {o.get('channel')}); "
                "a version is released once, with one artifact",
                check="version",
            )
        if o.get("channel") == channel and (latest is None or other > latest):
            latest = other
    if latest is not None and version < latest:
        raise PolicyError(
            f"refused: {product} on channel {channel} is at version {latest}; versions only move forward",
            check="version",
        )


def release_product(ctx: ReleaseContext, request: ProductRelease) -> ReleasedTarget:
    """Check ``request`` (refusals 1-4) and publish it as ``products/<product>/<version>/<file>``."""
    path = product_path(request.product, request.version, request.file_name)
    check_segment(request.channel, "channel")
    for value, what in ((request.product, "product"), (request.channel, "channel")):
        if value != value.lower() or value.endswith("."):
            # A mirror or CDN on a case-insensitive or name-normalising store would make two names one.
            raise UsageError(f"{what} {value!r} must be lowercase and not end with '.'")
    version = parse_version(request.version)
    with Repository.edit(ctx.repo) as repo:
        check_product_version(
            repo.state,
            product=request.product,
            channel=request.channel,
            version=version,
            sha256=hashlib.sha256(request.artifact).hexdigest(),
        )
        checked = check_provenance(
            ctx, request.artifact, name=request.file_name, provenance=request.provenance
        )
        custom = {
            "overt": {
                "kind": PRODUCT,
                "product": request.product,
                "channel": request.channel,
                "version": request.version,
                "provenance": {"sha256": checked.sha256, "logIndex": checked.index},
            }
        }
        target = NewTarget(
            path=path,
            data=request.artifact,
            custom=custom,
            provenance=checked.envelope,
            provenance_index=checked.index,
        )
        index = ChannelIndex(
            carries=CARRIES_PRODUCT,
            name=request.product,
            channel=request.channel,
            version=request.version,
            target=path,
            sha256=checked.report.sha256,
            length=len(request.artifact),
        )
        publication = repo.add_targets([target, index.new_target()])
    return ReleasedTarget(
        path=path,
        sha256=checked.report.sha256,
        length=len(request.artifact),
        custom=custom,
        provenance_index=checked.index,
        quorum=ctx.log.policy.quorum,
        cosigners=checked.report.cosigners,
        publication=publication,
        channel_index=index.path,
    )


def build_provenance(artifact: Path, builds: Path) -> Path:
    """The provenance of a published build output: ``provenance.dsse.json`` of the build directory under
    ``builds`` (``public/builds/<build-id>/``) that holds ``artifact``."""
    where, root = artifact.resolve(), builds.resolve()
    for directory in where.parents:
        if directory.parent == root and (directory / "provenance.dsse.json").is_file():
            return directory / "provenance.dsse.json"
    raise UsageError(
        f"{artifact} is not an output of a build published here: give its provenance with --provenance"
    )
