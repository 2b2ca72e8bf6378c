"""Where everything in an auditor home lives: the layout, as paths, and nothing else (no I/O).

An auditor home belongs to an organisation independent of the vendor. It holds its own keys and what it
pinned of the vendor's, copied in once at ``overt auditor init``; it never reads a conveyor's home. Layout::

    <home>/config.toml              who the auditor is, which log it follows, what it pinned (:mod:`.config`)
    <home>/keys/<keyid>.pem         the auditor's software signing key (``file2:``), mode 0600
    <home>/keys/registry/           its private key record: role auditor, jurisdiction, signer URI (mode 0600)
    <home>/public/keys/<keyid>.json its public key record, as a conveyor publishes its own
    <home>/witness/                 a tlog-witness home (:mod:`overt.tlog.witness`) with its own
                                    cosignature/v1 key, following the pinned log
    <home>/pinned/log-policy        the vendor's log policy (C2SP tlog-policy), byte for byte as given
    <home>/pinned/vendor-keys/      the vendor's public key files, ``<keyid>.json``, byte for byte as given
    <home>/state/                   what the auditor's long-running commands keep between runs
    <home>/state/log/               the last checkpoint of the followed log it verified (consistency)
    <home>/state/escrow/            the rebuilder's escrow cache: objects fetched by digest and verified
    <home>/state/rebuild.sqlite     the rebuilder's position, jobs and verdicts (:mod:`.verdicts`)
    <home>/public/                  what the auditor publishes: served as static files
    <home>/public/vsa/<sha256>.dsse.json   its VSA on the provenance of that sha256, and beside it
                                    ``.tlog-proof``, its inclusion in the vendor's log
    <home>/public/reports/<sha256>/ diffoscope's report (``diffoscope.txt``, ``.html``) on a mismatch
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from overt.home.paths import KeyedPaths


@dataclass(frozen=True, slots=True)
class AuditorPaths(KeyedPaths):
    """The layout of the auditor home at ``root`` (config, keys and public/ as every home has them)."""

    @property
    def witness(self) -> Path:
        return self.root / "witness"

    @property
    def pinned(self) -> Path:
        return self.root / "pinned"

    @property
    def log_policy(self) -> Path:
        return self.pinned / "log-policy"

    @property
    def vendor_keys(self) -> Path:
        return self.pinned / "vendor-keys"

    def vendor_key(self, keyid: str) -> Path:
        return self.vendor_keys / f"{keyid}.json"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def log_state(self) -> Path:
        return self.state / "log"

    @property
    def escrow_cache(self) -> Path:
        return self.state / "escrow"

    @property
    def rebuild_store(self) -> Path:
        return self.state / "rebuild.sqlite"

    def vsa(self, provenance_sha256: str) -> Path:
        return self.public / "vsa" / f"{provenance_sha256}.dsse.json"

    def reports(self, provenance_sha256: str) -> Path:
        return self.public / "reports" / provenance_sha256
