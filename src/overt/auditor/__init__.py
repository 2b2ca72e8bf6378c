"""Independent auditors: an organisation's own home, keys and pins, apart from any conveyor's.

An auditor home (``overt auditor init``) holds the auditor's signing key, its witness, and byte copies of the
vendor's log policy and public keys. See :mod:`overt.auditor.paths` for its layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt import lazy_exports

if TYPE_CHECKING:
    from overt.auditor.config import AuditorConfig, AuditorIdentity, FollowedLogSettings
    from overt.auditor.home import (
        MAX_POLICY_FILE,
        AuditorHome,
        PinnedKey,
        check_log_policy,
        check_new_home,
        read_vendor_keys,
    )
    from overt.auditor.monitor import (
        MonitorConfig,
        MonitorReport,
        monitor_config,
        monitor_once,
    )
    from overt.auditor.paths import AuditorPaths
    from overt.auditor.queue import QueuedJob, QueueSettings, QueueStatus, defer_jobs, queue_status
    from overt.auditor.queue_rebuild import DeferPass, defer_pass, follow_queue, serve_rebuilds
    from overt.auditor.queue_worker import JobResult, serve_queue
    from overt.auditor.rebuild import Outcome, RebuildJob, RebuildSettings, discover, run_job
    from overt.auditor.rebuild_loop import Pass, follow_log, rebuild_pass
    from overt.auditor.verdicts import StoredVerdict, VerdictStore

__all__ = [
    "MAX_POLICY_FILE",
    "AuditorConfig",
    "AuditorHome",
    "AuditorIdentity",
    "AuditorPaths",
    "DeferPass",
    "FollowedLogSettings",
    "JobResult",
    "MonitorConfig",
    "MonitorReport",
    "Outcome",
    "Pass",
    "PinnedKey",
    "QueueSettings",
    "QueueStatus",
    "QueuedJob",
    "RebuildJob",
    "RebuildSettings",
    "StoredVerdict",
    "VerdictStore",
    "check_log_policy",
    "check_new_home",
    "defer_jobs",
    "defer_pass",
    "discover",
    "follow_log",
    "follow_queue",
    "monitor_config",
    "monitor_once",
    "queue_status",
    "read_vendor_keys",
    "rebuild_pass",
    "run_job",
    "serve_queue",
    "serve_rebuilds",
]

_EXPORTS = {
    "config": ("AuditorConfig", "AuditorIdentity", "FollowedLogSettings"),
    "home": (
        "MAX_POLICY_FILE",
        "AuditorHome",
        "PinnedKey",
        "check_log_policy",
        "check_new_home",
        "read_vendor_keys",
    ),
    "monitor": (
        "MonitorConfig",
        "MonitorReport",
        "monitor_config",
        "monitor_once",
    ),
    "paths": ("AuditorPaths",),
    "queue": ("QueueSettings", "QueueStatus", "QueuedJob", "defer_jobs", "queue_status"),
    "queue_rebuild": ("DeferPass", "defer_pass", "follow_queue", "serve_rebuilds"),
    "queue_worker": ("JobResult", "serve_queue"),
    "rebuild": ("RebuildSettings", "Outcome", "RebuildJob", "discover", "run_job"),
    "rebuild_loop": ("Pass", "follow_log", "rebuild_pass"),
    "verdicts": ("StoredVerdict", "VerdictStore"),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
