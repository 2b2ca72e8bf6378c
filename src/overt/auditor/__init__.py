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
    from overt.auditor.paths import AuditorPaths

__all__ = [
    "MAX_POLICY_FILE",
    "AuditorConfig",
    "AuditorHome",
    "AuditorIdentity",
    "AuditorPaths",
    "FollowedLogSettings",
    "PinnedKey",
    "check_log_policy",
    "check_new_home",
    "read_vendor_keys",
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
    "paths": ("AuditorPaths",),
}

if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
