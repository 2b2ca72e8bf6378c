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
  pinned log policy: :func:`verify_logged_metadata`, :func:`unlogged_metadata`), :mod:`~overt.distribute.channels`
  (the channel index that names each channel's newest version) and :mod:`~overt.distribute.verdicts`
  (auditors' VSAs published beside their target: :func:`add_verdict`);
* the endpoint agent: :mod:`~overt.distribute.trust` (the customer's trust policy),
  :mod:`~overt.distribute.agentdir` (the agent directory: pinning, lock, trust records),
  :mod:`~overt.distribute.endpoint` (``overt agent update``: the stock ngclient, then
  :mod:`~overt.distribute.assurance`, the checks beyond TUF, then :mod:`~overt.distribute.installer`),
  :mod:`~overt.distribute.agent` (status and the run loop) and :mod:`~overt.distribute.offline`
  (``overt verify --evidence``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.distribute.agent import AgentStatus, FollowStatus, agent_status, run_agent
    from overt.distribute.agentdir import AgentLayout, PinnedTrust, TrustRecord, load_pinned, pin_policy
    from overt.distribute.assurance import Assurance, Candidate, LogHead, Passed, UsedMetadata, assure
    from overt.distribute.channels import ChannelIndex
    from overt.distribute.checks import CheckedProvenance, ReleaseContext, check_provenance
    from overt.distribute.config import RoleSettings, TufSettings
    from overt.distribute.databases import release_database
    from overt.distribute.endpoint import EndpointUpdate, FollowOutcome, update_endpoint
    from overt.distribute.evidence import (
        EvidenceFiles,
        EvidenceSource,
        LoggedEntry,
        UnloggedMetadata,
        directory_source,
        http_source,
        metadata_evidence,
        served_metadata,
        target_evidence,
        unlogged_metadata,
        verify_logged_entry,
        verify_logged_metadata,
        write_pending_evidence,
        write_proved_evidence,
    )
    from overt.distribute.installer import HookResult
    from overt.distribute.layout import (
        RELEASE_PATHS,
        RepositoryLayout,
        avdb_path,
        delta_path,
        metadata_name,
        product_path,
    )
    from overt.distribute.metadata import LoggedMetadata, MetadataStatement, log_metadata, sign_and_log
    from overt.distribute.offline import OfflineVerification, verify_offline
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
    from overt.distribute.trust import Follow, TrustPolicy
    from overt.distribute.verdicts import (
        PublishedVerdict,
        VerdictIndex,
        add_verdict,
        verdict_evidence,
        verdict_index_path,
        verdicts_passed,
    )

__all__ = [
    "DEFAULT_CHANNEL",
    "RELEASE_PATHS",
    "AgentLayout",
    "AgentStatus",
    "Assurance",
    "Candidate",
    "CeremonyStatus",
    "ChannelIndex",
    "CheckedProvenance",
    "EndpointUpdate",
    "EvidenceFiles",
    "EvidenceSource",
    "Follow",
    "FollowOutcome",
    "FollowStatus",
    "HookResult",
    "LogHead",
    "LoggedEntry",
    "LoggedMetadata",
    "MetadataStatement",
    "NewTarget",
    "OfflineVerification",
    "Passed",
    "PinnedTrust",
    "ProductRelease",
    "PublishedVerdict",
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
    "TrustPolicy",
    "TrustRecord",
    "TufSettings",
    "UnloggedMetadata",
    "UsedMetadata",
    "VerdictIndex",
    "add_verdict",
    "agent_status",
    "assure",
    "avdb_path",
    "build_provenance",
    "check_provenance",
    "create_repository",
    "delta_path",
    "directory_source",
    "http_source",
    "init_repository",
    "load_pinned",
    "load_repository_state",
    "log_metadata",
    "metadata_evidence",
    "metadata_name",
    "overt_custom",
    "parse_version",
    "pin_policy",
    "prepare_root",
    "product_path",
    "release_database",
    "release_product",
    "renew_repository",
    "repository_status",
    "run_agent",
    "served_metadata",
    "sign_and_log",
    "sign_root",
    "staged_status",
    "target_evidence",
    "unlogged_metadata",
    "update_endpoint",
    "verdict_evidence",
    "verdict_index_path",
    "verdicts_passed",
    "verify_logged_entry",
    "verify_logged_metadata",
    "verify_offline",
    "write_pending_evidence",
    "write_proved_evidence",
]

_EXPORTS = {
    "agent": ("AgentStatus", "FollowStatus", "agent_status", "run_agent"),
    "agentdir": ("AgentLayout", "PinnedTrust", "TrustRecord", "load_pinned", "pin_policy"),
    "assurance": ("Assurance", "Candidate", "LogHead", "Passed", "UsedMetadata", "assure"),
    "channels": ("ChannelIndex",),
    "checks": ("CheckedProvenance", "ReleaseContext", "check_provenance"),
    "config": ("RoleSettings", "TufSettings"),
    "databases": ("release_database",),
    "endpoint": ("EndpointUpdate", "FollowOutcome", "update_endpoint"),
    "evidence": (
        "EvidenceFiles",
        "EvidenceSource",
        "directory_source",
        "http_source",
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
    "installer": ("HookResult",),
    "metadata": ("LoggedMetadata", "MetadataStatement", "log_metadata", "sign_and_log"),
    "offline": ("OfflineVerification", "verify_offline"),
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
    "trust": ("Follow", "TrustPolicy"),
    "verdicts": (
        "PublishedVerdict",
        "VerdictIndex",
        "add_verdict",
        "verdict_evidence",
        "verdict_index_path",
        "verdicts_passed",
        "verdicts_passed",
    ),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
