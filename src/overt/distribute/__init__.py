"""Distribution: the TUF repository of a home, its root ceremony, releases, and the evidence endpoints check.

By use case:

* the repository and its files: :mod:`~overt.distribute.layout` (paths), :mod:`~overt.distribute.config`
  (``[tuf.ROLE]`` settings), :mod:`~overt.distribute.state` (read and verify what was published),
  :mod:`~overt.distribute.repository` (change it: sign, log, write), :mod:`~overt.distribute.metadata`
  (the ``tuf-metadata/v1`` statement that logs each metadata file by digest);
* the root: :mod:`~overt.distribute.root` (offline k-of-n keys, the signing ceremony, chained versions);
* releases: :mod:`~overt.distribute.checks` (what a provenance must pass), :mod:`~overt.distribute.release`
  (products), :mod:`~overt.distribute.databases` (AV databases and their deltas);
* for endpoints: :mod:`~overt.distribute.evidence` (the static evidence files, and checking them against a
  pinned log policy: :func:`verify_logged_metadata`, :func:`unlogged_metadata`).

The endpoint agent (its trust policy, update and install) builds on this package; it is not here yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.distribute.checks import CheckedProvenance, ReleaseContext, check_provenance
    from overt.distribute.config import RoleSettings, TufSettings
    from overt.distribute.databases import release_database
    from overt.distribute.evidence import (
        EvidenceFiles,
        LoggedEntry,
        UnloggedMetadata,
        metadata_evidence,
        served_metadata,
        target_evidence,
        unlogged_metadata,
        verify_logged_entry,
        verify_logged_metadata,
        write_pending_evidence,
        write_proved_evidence,
    )
    from overt.distribute.layout import (
        RELEASE_PATHS,
        RepositoryLayout,
        avdb_path,
        delta_path,
        metadata_name,
        product_path,
    )
    from overt.distribute.metadata import LoggedMetadata, MetadataStatement, log_metadata, sign_and_log
    from overt.distribute.release import (
        DEFAULT_CHANNEL,
        ProductRelease,
        ReleasedTarget,
        build_provenance,
        overt_custom,
        parse_version,
        release_product,
    )
    from overt.distribute.repository import (
        NewTarget,
        Repository,
        RepositoryChange,
        RepositoryContext,
        renew_repository,
    )
    from overt.distribute.root import (
        CeremonyStatus,
        RootKeys,
        create_repository,
        init_repository,
        prepare_root,
        sign_root,
        staged_status,
    )
    from overt.distribute.state import RepositoryState, load_repository_state
    from overt.distribute.status import RepositoryStatus, RoleStatus, repository_status

__all__ = [
    "DEFAULT_CHANNEL",
    "RELEASE_PATHS",
    "CeremonyStatus",
    "CheckedProvenance",
    "EvidenceFiles",
    "LoggedEntry",
    "LoggedMetadata",
    "MetadataStatement",
    "NewTarget",
    "ProductRelease",
    "ReleaseContext",
    "ReleasedTarget",
    "Repository",
    "RepositoryChange",
    "RepositoryContext",
    "RepositoryLayout",
    "RepositoryState",
    "RepositoryStatus",
    "RoleSettings",
    "RoleStatus",
    "RootKeys",
    "TufSettings",
    "UnloggedMetadata",
    "avdb_path",
    "build_provenance",
    "check_provenance",
    "create_repository",
    "delta_path",
    "init_repository",
    "load_repository_state",
    "log_metadata",
    "metadata_evidence",
    "metadata_name",
    "overt_custom",
    "parse_version",
    "prepare_root",
    "product_path",
    "release_database",
    "release_product",
    "renew_repository",
    "repository_status",
    "served_metadata",
    "sign_and_log",
    "sign_root",
    "staged_status",
    "target_evidence",
    "unlogged_metadata",
    "verify_logged_entry",
    "verify_logged_metadata",
    "write_pending_evidence",
    "write_proved_evidence",
]

_EXPORTS = {
    "checks": ("CheckedProvenance", "ReleaseContext", "check_provenance"),
    "config": ("RoleSettings", "TufSettings"),
    "databases": ("release_database",),
    "evidence": (
        "EvidenceFiles",
        "LoggedEntry",
        "UnloggedMetadata",
        "metadata_evidence",
        "served_metadata",
        "target_evidence",
        "unlogged_metadata",
        "verify_logged_entry",
        "verify_logged_metadata",
        "write_pending_evidence",
        "write_proved_evidence",
    ),
    "layout": (
        "RELEASE_PATHS",
        "RepositoryLayout",
        "avdb_path",
        "delta_path",
        "metadata_name",
        "product_path",
    ),
    "metadata": ("LoggedMetadata", "MetadataStatement", "log_metadata", "sign_and_log"),
    "release": (
        "DEFAULT_CHANNEL",
        "ProductRelease",
        "ReleasedTarget",
        "build_provenance",
        "overt_custom",
        "parse_version",
        "release_product",
    ),
    "repository": (
        "NewTarget",
        "Repository",
        "RepositoryChange",
        "RepositoryContext",
        "renew_repository",
    ),
    "root": (
        "CeremonyStatus",
        "RootKeys",
        "create_repository",
        "init_repository",
        "prepare_root",
        "sign_root",
        "staged_status",
    ),
    "state": ("RepositoryState", "load_repository_state"),
    "status": ("RepositoryStatus", "RoleStatus", "repository_status"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
