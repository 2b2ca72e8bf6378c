"""An independent auditor's home: made once by ``overt auditor init``, read by every auditor command.

:meth:`AuditorHome.init` checks everything it was given before it writes a byte, then makes, in an empty or
new directory (see :mod:`overt.auditor.paths` for the layout):

1. the auditor's own signing key (a software ``file2:`` key of role ``auditor``, in its jurisdiction);
2. a witness home with its own cosignature/v1 key, following the log(s) the pinned policy names (or adopts
   the one made beforehand at ``<home>/witness`` with ``overt witness init``, under the auditor's name, so
   the vendor could name it in the very policy the auditor pins);
3. byte copies of the vendor's log policy and public key files, which the auditor trusts from then on: later
   changes to the files it was given change nothing here;
4. ``config.toml``, written last, so a home without one is an init that did not finish (what it wrote is
   removed when a step fails).

An existing home is never changed by ``init``. :meth:`AuditorHome.open` reads a home back and checks the
pinned policy against the digest in its configuration.

Owns the home and its pins. Deliberately nothing of a conveyor's home (:mod:`overt.home`): an auditor works
without the vendor's help, from the public log, the escrow and what it pinned. The key formats are
:mod:`overt.keys.registry`'s, the witness home :mod:`overt.tlog.witness`'s, the policy :mod:`overt.tlog.policy`'s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overt import jsonio
from overt.atomic import atomic_write
from overt.auditor.config import AuditorConfig, AuditorIdentity, FollowedLogSettings
from overt.auditor.paths import AuditorPaths
from overt.errors import ConfigError, FormatError, StorageError, UsageError
from overt.files import read_regular_file
from overt.keys.registry import MAX_KEY_FILE, KeyRecord, Registry, Role, check_jurisdiction
from overt.keys.signers import generate_file_key
from overt.tlog.client import check_http_url
from overt.tlog.cosignature import parse_cosignature_vkey
from overt.tlog.note import check_key_name
from overt.tlog.policy import Policy
from overt.tlog.witness import WitnessIdentity, init_witness, trust_log

DEFAULT_JURISDICTION = "CH"
MAX_POLICY_FILE = 1 << 16  # a tlog-policy of 256 items, each a line, is well under this
AUDITOR_KEY_TYPE = "ed25519"


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedKey:
    """A vendor public key pinned in the home: its record, and the SHA-256 of the file's bytes."""

    record: KeyRecord
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "keyid": r.keyid,
            "role": r.role.value,
            "jurisdiction": r.jurisdiction,
            "keytype": r.key.keytype,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditorHome:
    """An auditor home as read from disk: its configuration, its keys and what it pinned of the vendor's."""

    paths: AuditorPaths
    config: AuditorConfig
    key: KeyRecord  # the auditor's signing key (the private record: its uri names the key file)
    witness: WitnessIdentity
    policy: Policy
    vendor_keys: tuple[PinnedKey, ...]

    @classmethod
    def init(
        cls,
        path: Path,
        *,
        name: str,
        log_url: str,
        log_policy: bytes,
        vendor_keys: Sequence[Path],
        jurisdiction: str = DEFAULT_JURISDICTION,
        unsafe_no_witness_quorum: bool = False,
        now: datetime | None = None,
    ) -> AuditorHome:
        """Make a new auditor home at ``path`` (a new or empty directory) and return it.

        Args:
            name: the auditor's name, a signed-note key name (``auditor.example/a1``); its witness's too.
            log_url: where the vendor's log is served (http or https).
            log_policy: the vendor's C2SP tlog-policy for that log, as obtained out of band.
            vendor_keys: the vendor's public key files (``public/keys/<keyid>.json``), read once each.
            jurisdiction: where the auditor signs (ISO 3166-1 alpha-2).
            unsafe_no_witness_quorum: accept a policy whose quorum is ``none``: the log alone then vouches
                for its checkpoints, and could show this auditor a view of the log it shows no one else.

        Raises:
            UsageError: ``path`` is not a new or empty directory, or an argument is wrong.
            FormatError: the policy or a key file cannot be parsed.
        """
        paths = AuditorPaths(path)
        check_key_name(name)
        check_jurisdiction(jurisdiction)
        check_http_url(log_url)
        policy = check_log_policy(log_policy, unsafe_no_witness_quorum=unsafe_no_witness_quorum)
        pinned = read_vendor_keys(vendor_keys)
        adopted = check_new_home(paths)
        if adopted:
            _check_adopted_witness(paths, name)
        with _removed_on_failure(path, keep=paths.witness if adopted else None):
            path.mkdir(parents=True, exist_ok=True)
            key = _new_auditor_key(paths, jurisdiction, now or datetime.now(UTC))
            if not adopted:
                init_witness(paths.witness, name)
            for log in policy.logs:
                trust_log(paths.witness, log.verifier.vkey())
            atomic_write(paths.log_policy, log_policy)
            for keyid, data in pinned:
                atomic_write(paths.vendor_key(keyid), data)
            paths.state.mkdir()
            config = AuditorConfig(
                auditor=AuditorIdentity(name=name, jurisdiction=jurisdiction, key=key.keyid),
                log=FollowedLogSettings(url=log_url, policy_sha256=hashlib.sha256(log_policy).hexdigest()),
                vendor_keys=tuple((keyid, hashlib.sha256(data).hexdigest()) for keyid, data in pinned),
            )
            atomic_write(paths.config, config.dumps().encode())
        return cls.open(path)

    @classmethod
    def open(cls, path: Path) -> AuditorHome:
        """The auditor home at ``path``, its pins checked against its configuration.

        Raises:
            ConfigError: ``path`` is no auditor home, or its configuration or keys are wrong.
            StorageError: a pinned file is missing, unreadable or no longer what was pinned.
        """
        paths = AuditorPaths(path)
        if _is_conveyor_home(paths):
            raise ConfigError(
                f"{path} is a conveyor's home, not an auditor's: give the auditor home as --home"
            )
        if not paths.config.is_file():
            raise ConfigError(
                f"{path} is not an auditor home (no config.toml); make one with 'overt auditor init'"
            )
        config = AuditorConfig.parse(
            _read_pinned(paths.config, MAX_POLICY_FILE).decode(errors="replace"), where=str(paths.config)
        )
        policy_bytes = _read_pinned(paths.log_policy, MAX_POLICY_FILE)
        digest = hashlib.sha256(policy_bytes).hexdigest()
        if digest != config.log.policy_sha256:
            raise StorageError(
                f"{paths.log_policy} is not the policy pinned at init: its sha256 is {digest}, config.toml "
                f"pins {config.log.policy_sha256}",
                pinned=config.log.policy_sha256,
                found=digest,
            )
        return cls(
            paths=paths,
            config=config,
            key=_auditor_key(paths, config.auditor.key),
            witness=_witness(paths),
            policy=Policy.from_bytes(policy_bytes),
            vendor_keys=tuple(_pinned_key(paths, keyid, sha256) for keyid, sha256 in config.vendor_keys),
        )

    def to_dict(self) -> dict[str, Any]:
        """What ``overt auditor init`` and ``overt auditor show`` print with ``--json``."""
        return {
            "home": str(self.paths.root),
            "name": self.config.auditor.name,
            "jurisdiction": self.config.auditor.jurisdiction,
            "auditor_key": {
                "keyid": self.key.keyid,
                "role": self.key.role.value,
                "keytype": self.key.key.keytype,
            },
            "witness": self.witness.to_dict(),
            "log": {
                "url": self.config.log.url,
                "origins": [lg.origin for lg in self.policy.logs],
                "policy_sha256": self.config.log.policy_sha256,
                "quorum": describe_quorum(self.policy),
            },
            "vendor_keys": [k.to_dict() for k in self.vendor_keys],
        }


# --- checks before anything is written ------------------------------------------------------------------


def check_log_policy(data: bytes, *, unsafe_no_witness_quorum: bool = False) -> Policy:
    """The vendor's log policy, if an auditor can pin it: a tlog-policy naming at least one log, with a
    witness quorum unless ``unsafe_no_witness_quorum``."""
    try:
        policy = Policy.from_bytes(data)
    except FormatError as e:
        raise FormatError(f"the log policy is not a C2SP tlog-policy: {e}") from e
    if not policy.logs:
        raise FormatError("the log policy names no log: an auditor pins the key of the log it follows")
    if policy.quorum == "none" and not unsafe_no_witness_quorum:
        raise UsageError(
            "the log policy has no witness quorum (quorum none): the log alone would vouch for what it shows "
            "this auditor. Pin a policy with witnesses, or pass --unsafe-no-witness-quorum"
        )
    return policy


def read_vendor_keys(files: Sequence[Path]) -> list[tuple[str, bytes]]:
    """(keyid, bytes) of each vendor public key file, read once: a regular file, a public key record with
    no field a key file does not have, each key once."""
    if not files:
        raise UsageError("give the vendor's public keys to pin (--vendor-key FILE, once per key)")
    out: list[tuple[str, bytes]] = []
    for path in files:
        data = read_regular_file(path, limit=MAX_KEY_FILE)
        try:
            obj = jsonio.load_object(data, "key file", max_size=MAX_KEY_FILE)
            record = KeyRecord.from_dict(obj)
        except FormatError as e:
            raise FormatError(f"{path} is not a public key file: {e}") from e
        if record.uri:
            raise UsageError(
                f"{path} is a private key record (it names a signer): give its public copy, "
                f"public/keys/{record.keyid}.json"
            )
        extra = sorted(set(obj) - set(record.public_dict()))
        if extra:
            raise FormatError(f"{path} is not a public key file: unknown fields {', '.join(extra)}")
        if any(keyid == record.keyid for keyid, _ in out):
            raise UsageError(f"vendor key {record.keyid[:16]} is given twice ({path})")
        out.append((record.keyid, data))
    return out


def check_new_home(paths: AuditorPaths) -> bool:
    """Refuse a ``--home`` that is a file or a directory with anything in it: an auditor home is made new.

    The one thing it may already hold is ``witness/``, a witness home made by ``overt witness init``: an
    auditor runs its witness first, the vendor names it in the log policy, and then the auditor pins that
    policy. Returns whether such a witness is there (and is adopted rather than made)."""
    root = paths.root
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory: --home names the directory to make the auditor home in")
    if not root.is_dir() or not any(root.iterdir()):
        return False
    if [p.name for p in root.iterdir()] == ["witness"] and _is_witness_home(paths.witness):
        return True
    if paths.config.exists() and paths.witness.exists():
        what = "it is an auditor home already, and 'overt auditor init' never changes one"
    elif _is_conveyor_home(paths):
        what = "it is a conveyor's home; an auditor's shares nothing with it"
    else:
        what = "it holds files"
    raise UsageError(f"{root} is not empty ({what}): give a new or empty directory as --home")


def _is_witness_home(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / "witness.skey").is_file()


def _check_adopted_witness(paths: AuditorPaths, name: str) -> None:
    """A witness made beforehand is adopted only under the auditor's name, so both keys name one party."""
    found = _witness(paths).name
    if found != name:
        raise UsageError(
            f"{paths.witness} is a witness named {found!r}, not {name!r}: an auditor's witness has the "
            f"auditor's name (give --name {found}, or make the witness again under {name})"
        )


def _is_conveyor_home(paths: AuditorPaths) -> bool:
    """Whether ``paths.root`` holds a conveyor's home (its main log's policy or database), never an auditor's."""
    return (paths.root / "log-policy").exists() or (paths.root / "overt.db").exists()


def describe_quorum(policy: Policy) -> str:
    """A policy's quorum as a reader says it: ``none``, a witness's name, or ``k of w1, w2``."""
    group = next((g for g in policy.groups if g.name == policy.quorum), None)
    if group is None:
        return policy.quorum
    return f"{group.threshold} of {', '.join(group.members)}"


# --- steps ----------------------------------------------------------------------------------------------


def _new_auditor_key(paths: AuditorPaths, jurisdiction: str, now: datetime) -> KeyRecord:
    paths.keys.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.keys, 0o700)
    uri, key = generate_file_key(paths.keys, AUDITOR_KEY_TYPE)
    record = KeyRecord.create(
        key, role=Role.AUDITOR, jurisdiction=jurisdiction, valid_from=now, valid_until=None, uri=uri
    )
    Registry(paths.key_registry, paths.public_keys).add(record, conveyor_jurisdiction=jurisdiction)
    return record


@contextmanager
def _removed_on_failure(path: Path, *, keep: Path | None = None) -> Iterator[None]:
    """Remove what the block wrote under ``path`` (empty or new before it, but for ``keep``), and ``path`` if
    it made it."""
    existed = path.is_dir()
    try:
        yield
    except BaseException:
        for made in path.iterdir() if path.is_dir() else []:
            if made == keep:
                continue
            if made.is_dir() and not made.is_symlink():
                shutil.rmtree(made, ignore_errors=True)
            else:
                made.unlink(missing_ok=True)
        if not existed:
            with suppress(OSError):
                path.rmdir()
        raise


# --- reading a home back --------------------------------------------------------------------------------


def _read_pinned(path: Path, limit: int) -> bytes:
    try:
        return read_regular_file(path, limit=limit)
    except UsageError as e:
        raise StorageError(f"the auditor home is damaged: {e}") from e


def _auditor_key(paths: AuditorPaths, keyid: str) -> KeyRecord:
    record = Registry(paths.key_registry, paths.public_keys).get(keyid)
    if record.role is not Role.AUDITOR or not record.uri:
        raise ConfigError(f"key {keyid[:16]} named in [auditor] key is not a signing key of role auditor")
    return record


def _witness(paths: AuditorPaths) -> WitnessIdentity:
    text = _read_pinned(paths.witness / "witness.vkey", MAX_KEY_FILE).decode(errors="replace").strip()
    try:
        verifier = parse_cosignature_vkey(text)
    except FormatError as e:
        raise StorageError(f"{paths.witness / 'witness.vkey'}: {e}") from e
    return WitnessIdentity(home=paths.witness, name=verifier.name, vkey=verifier.vkey())


def _pinned_key(paths: AuditorPaths, keyid: str, sha256: str) -> PinnedKey:
    path = paths.vendor_key(keyid)
    data = _read_pinned(path, MAX_KEY_FILE)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise StorageError(
            f"{path} is not the key pinned at init: its sha256 is {digest}, config.toml pins {sha256}",
            pinned=sha256,
            found=digest,
        )
    try:
        record = KeyRecord.from_bytes(data, keyid=keyid)
    except FormatError as e:
        raise StorageError(f"pinned vendor key {path} is damaged: {e}") from e
    return PinnedKey(record=record, sha256=digest)
