"""Where the TUF repository of a home lives, and how target paths are spelt: paths only, no I/O.

Public, served as static files (``<home>/public/tuf/``)::

    metadata/N.root.json           every root version, chained: N+1 is signed by the threshold of N and itself
    metadata/N.targets.json        top-level targets: delegates the target paths of RELEASE_PATHS to 'release'
    metadata/N.release.json        the release role (conveyor key): targets, or a succinct hash-bin delegation
    metadata/N.bin-XX.json         the hash bins (TAP 15), once the release role holds more than bins_threshold
    metadata/N.snapshot.json       consistent snapshot: the version, length and sha256 of every targets file
    metadata/timestamp.json        the only file served under a fixed name; short-lived, re-signed by a timer
    targets/<dir>/<sha256>.<name>  each target under its consistent-snapshot name, in its path's directory
    evidence/metadata/N.R.json/    for each metadata file: statement.dsse.json (the logged tuf-metadata/v1
                                   statement of its digest), statement.tlog-proof, checkpoint
    evidence/targets/<path>/       for each target with provenance: provenance.dsse.json (as logged),
                                   provenance.tlog-proof, checkpoint

Private (``<home>/tuf/``)::

    staging/N.root.json            a root version being signed in a ceremony ('overt tuf sign-root')
    repository.lock                one writer at a time (release, timestamp, ceremony)

Target paths (TUF §targetpath) are matched per ``/``-separated segment, as python-tuf's
``DelegatedRole.is_delegated_path`` does with fnmatch: ``products/*`` does not match
``products/demo/1.0/demo.tar.gz``, so each pattern has the depth of the paths it covers::

    products/<product>/<version>/<file>    a product release (channel in the target's custom field)
    avdb/<database>/<version>.avdb         an AV database, as overt.avdb.release names it
    avdb/<database>/<from>-<to>.delta      a transport-only delta between two database versions
    channels/products/<product>/<channel>.json   the channel index: the newest version of a channel
    channels/avdb/<database>.json                ... and of a database (:mod:`overt.distribute.channels`)

An endpoint asks for a channel index by name, so it finds the newest version without listing targets (which
ngclient cannot do once the release role is split into hash bins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from overt.errors import UsageError

# The release role's delegation in targets.json: one pattern per kind of target path, of exactly its depth.
RELEASE_PATHS = ("products/*/*/*", "avdb/*/*", "channels/products/*/*", "channels/avdb/*")
TIMESTAMP_FILE = "timestamp.json"
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def check_segment(value: str, what: str) -> str:
    """One segment of a target path: letters, digits, '.', '_', '+', '-', not starting with a dot or dash.

    No ``/``, no ``..`` and no glob characters, so that a product name can never widen or escape a pattern.
    """
    if not _SEGMENT.fullmatch(value) or ".." in value:
        raise UsageError(
            f"{what} {value!r} must be 1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit"
        )
    return value


def product_path(product: str, version: str, file_name: str) -> str:
    """``products/<product>/<version>/<file>``: matched by ``products/*/*/*``."""
    return "/".join(
        (
            "products",
            check_segment(product, "product"),
            check_segment(version, "version"),
            check_segment(file_name, "artifact file name"),
        )
    )


def avdb_path(database: str, version: int) -> str:
    """``avdb/<database>/<version>.avdb``: matched by ``avdb/*/*``."""
    return f"avdb/{check_segment(database, 'database name')}/{version}.avdb"


def delta_path(database: str, old: int, new: int) -> str:
    """``avdb/<database>/<old>-<new>.delta``: matched by ``avdb/*/*``."""
    return f"avdb/{check_segment(database, 'database name')}/{old}-{new}.delta"


def channel_path(product: str, channel: str) -> str:
    """``channels/products/<product>/<channel>.json``: matched by ``channels/products/*/*``."""
    return f"channels/products/{check_segment(product, 'product')}/{check_segment(channel, 'channel')}.json"


def database_channel_path(database: str) -> str:
    """``channels/avdb/<database>.json``: matched by ``channels/avdb/*``."""
    return f"channels/avdb/{check_segment(database, 'database name')}.json"


def metadata_name(role: str, version: int) -> str:
    """The consistent-snapshot name of a metadata version (``3.release.json``), also for the timestamp, which
    is served as ``timestamp.json`` but logged and evidenced under its versioned name."""
    return f"{version}.{role}.json"


@dataclass(frozen=True, slots=True)
class RepositoryLayout:
    """The TUF repository of the home at ``home``."""

    home: Path

    @property
    def public(self) -> Path:
        return self.home / "public" / "tuf"

    @property
    def metadata(self) -> Path:
        return self.public / "metadata"

    @property
    def targets(self) -> Path:
        return self.public / "targets"

    @property
    def evidence(self) -> Path:
        return self.public / "evidence"

    @property
    def private(self) -> Path:
        return self.home / "tuf"

    @property
    def staging(self) -> Path:
        return self.private / "staging"

    @property
    def lock(self) -> Path:
        return self.private / "repository.lock"

    def metadata_file(self, role: str, version: int) -> Path:
        if role == "timestamp":
            return self.metadata / TIMESTAMP_FILE
        return self.metadata / metadata_name(role, version)

    def target_file(self, path: str, sha256: str) -> Path:
        """Where ngclient fetches ``path`` from under consistent snapshots: ``<dir>/<sha256>.<name>``."""
        directory, _, name = path.rpartition("/")
        return self.targets / directory / f"{sha256}.{name}"

    def metadata_evidence(self, name: str) -> Path:
        return self.evidence / "metadata" / name

    def target_evidence(self, path: str) -> Path:
        return self.evidence / "targets" / path

    def staged_root(self, version: int) -> Path:
        return self.staging / metadata_name("root", version)

    @property
    def exists(self) -> bool:
        return (self.metadata / TIMESTAMP_FILE).is_file()
