"""An auditor home's ``config.toml``: who the auditor is, which log it follows and what it pinned.

::

    [auditor]  name (the auditor's and its witness's key name), jurisdiction (ISO 3166-1), key (keyid of its
               signing key, role auditor)
    [log]      url (the vendor's log, http or https), policy_sha256 (of pinned/log-policy)
    [vendor.keys]  keyid = sha256, for each vendor public key pinned in pinned/vendor-keys/<keyid>.json

Read with tomllib, written with tomli-w. Unknown sections and settings are refused, and each setting must hold
its type: a typo never silently means a default.

Deliberately not the conveyor's section registry (:func:`overt.home.config.register_section`): a section
registered there is written into every conveyor home's ``config.toml`` and accepted by every one, and an
auditor home shares nothing with a conveyor's. The pinned files' bytes are :mod:`overt.auditor.home`'s.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

import tomli_w

from overt.errors import ConfigError, FormatError, UsageError
from overt.keys.registry import check_jurisdiction
from overt.tlog.client import check_http_url
from overt.tlog.note import check_key_name

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _check_hex64(value: str, what: str) -> str:
    if not _HEX64.fullmatch(value):
        raise FormatError(f"{what} {value[:80]!r} is not 64 lower-case hex digits")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditorIdentity:
    """The auditor: its name (also its witness's key name), where it signs, and the keyid it signs with."""

    name: str
    jurisdiction: str
    key: str

    def __post_init__(self) -> None:
        check_key_name(self.name)
        check_jurisdiction(self.jurisdiction)
        _check_hex64(self.key, "auditor key")


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowedLogSettings:
    """The vendor's log: where it is served and the SHA-256 of the policy pinned for it."""

    url: str
    policy_sha256: str

    def __post_init__(self) -> None:
        try:
            check_http_url(self.url)
        except UsageError as e:
            raise FormatError(f"log url: {e}") from e
        _check_hex64(self.policy_sha256, "log policy_sha256")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditorConfig:
    """The parsed ``config.toml`` of an auditor home."""

    auditor: AuditorIdentity
    log: FollowedLogSettings
    vendor_keys: tuple[tuple[str, str], ...]  # (keyid, sha256 of the pinned file), in the order given

    def __post_init__(self) -> None:
        if not self.vendor_keys:
            raise FormatError("an auditor pins at least one vendor key")
        for keyid, sha256 in self.vendor_keys:
            _check_hex64(keyid, "vendor key")
            _check_hex64(sha256, f"sha256 of vendor key {keyid[:16]}")
        if len({keyid for keyid, _ in self.vendor_keys}) != len(self.vendor_keys):
            raise FormatError("a vendor key is listed twice")

    @classmethod
    def parse(cls, text: str, *, where: str = "config.toml") -> AuditorConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"cannot read {where}: {e}") from e
        _only(where, "", data, {"auditor": dict, "log": dict, "vendor": dict})
        auditor = _only(where, "[auditor] ", data["auditor"], {"name": str, "jurisdiction": str, "key": str})
        log = _only(where, "[log] ", data["log"], {"url": str, "policy_sha256": str})
        vendor = _only(where, "[vendor] ", data["vendor"], {"keys": dict})
        if not all(isinstance(v, str) for v in vendor["keys"].values()):
            raise ConfigError(f"{where}: [vendor.keys] must map each keyid to the sha256 of its pinned file")
        try:
            return cls(
                auditor=AuditorIdentity(**auditor),
                log=FollowedLogSettings(**log),
                vendor_keys=tuple(vendor["keys"].items()),
            )
        except FormatError as e:
            raise ConfigError(f"{where}: {e}") from e

    def dumps(self) -> str:
        header = "# overt auditor home (see docs/operations.md, Independent auditors). Made by 'overt auditor init'."
        tables = {
            "auditor": {
                "name": self.auditor.name,
                "jurisdiction": self.auditor.jurisdiction,
                "key": self.auditor.key,
            },
            "log": {"url": self.log.url, "policy_sha256": self.log.policy_sha256},
            "vendor": {"keys": dict(self.vendor_keys)},
        }
        return header + "\n\n" + tomli_w.dumps(tables)


def _only(where: str, label: str, table: Any, kinds: dict[str, type]) -> dict[str, Any]:
    """``table`` if it holds exactly the settings ``kinds`` names, each of its type."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {label.strip() or 'the file'} must be a table")
    unknown, missing = sorted(set(table) - set(kinds)), sorted(set(kinds) - set(table))
    if unknown:
        what = f"{label}settings" if label else "sections"
        raise ConfigError(f"{where}: unknown {what} {', '.join(unknown)}")
    if missing:
        raise ConfigError(f"{where}: {label}has no {', '.join(missing)}")
    for name, kind in kinds.items():
        if not isinstance(table[name], kind) or isinstance(table[name], bool):
            raise ConfigError(
                f"{where}: {label}{name} must be a {'table' if kind is dict else kind.__name__}"
            )
    return table
