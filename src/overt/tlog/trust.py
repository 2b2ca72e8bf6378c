"""Where a log client's trust roots come from: a policy the verifier pins, never the log it verifies.

Owns the client state directory (``$XDG_STATE_HOME/overt``, by default ``~/.local/state/overt``), the policy
made from a bare log vkey, and trust on first use: the first ``<log>/policy`` fetched from a log source is
pinned in the state directory, and every later fetch must be the same bytes (compared by SHA-256) or is
refused. A policy file the verifier obtained out of band needs nothing from here.

It does not verify checkpoints (:func:`overt.tlog.client.verify_checkpoint` does) and does not choose
between the ways of pinning (the command line does, from its options).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from overt.atomic import atomic_write
from overt.errors import ConfigError, StorageError, VerificationError
from overt.tlog.client import Fetch
from overt.tlog.note import parse_ed25519_vkey
from overt.tlog.policy import Policy, PolicyLog

PINNED_POLICIES = "policies"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/overt``, or ``~/.local/state/overt`` when it is unset or not absolute.

    The XDG Base Directory specification says a relative ``XDG_STATE_HOME`` is invalid and must be ignored,
    so a client state never lands in the current directory.
    """
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "overt"
    try:
        return Path.home() / ".local" / "state" / "overt"
    except RuntimeError as e:
        raise ConfigError("cannot find the home directory for the client state; set XDG_STATE_HOME") from e


def policy_from_vkey(vkey: str) -> Policy:
    """A policy that trusts one log key and asks for no witness cosignature."""
    return Policy(logs=(PolicyLog(verifier=parse_ed25519_vkey(vkey.strip())),), quorum="none")


def source_key(source: str) -> str:
    """One spelling per log source: a URL without its trailing slashes, a directory as its absolute path."""
    if source.startswith(("http://", "https://")):
        return source.rstrip("/")
    return str(Path(source).resolve())


def pinned_policy_path(state_dir: Path, source: str) -> Path:
    """Where the policy trusted on first use for ``source`` is kept."""
    digest = hashlib.sha256(source_key(source).encode()).hexdigest()
    return state_dir / PINNED_POLICIES / f"{digest}.policy"


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedPolicy:
    """A policy trusted on first use: its bytes' SHA-256, where it is kept, and whether this run pinned it."""

    policy: Policy
    sha256: str
    path: Path
    first_use: bool


class PolicyChangedError(VerificationError):
    """The log serves another policy than the one pinned on first use; evidence carries both digests."""

    def __init__(self, *, source: str, path: Path, pinned_sha256: str, fetched_sha256: str) -> None:
        super().__init__(
            f"{source.rstrip('/')}/policy changed since it was trusted on first use: it is now "
            f"sha256:{fetched_sha256}, the pinned policy is sha256:{pinned_sha256} ({path}); refusing it: "
            "confirm the new policy out of band before trusting it",
            pinned_sha256=pinned_sha256,
            fetched_sha256=fetched_sha256,
            pinned_file=str(path),
        )
        self.source = source
        self.path = path
        self.pinned_sha256 = pinned_sha256
        self.fetched_sha256 = fetched_sha256


def trust_on_first_use(fetch: Fetch, *, source: str, state_dir: Path) -> PinnedPolicy:
    """The policy pinned for ``source``; on the first use, ``<source>/policy`` as fetched now.

    Steps: (1) fetch ``policy`` from the log; (2) if nothing is pinned for this source, parse it (a malformed
    policy is never pinned) and pin its exact bytes; (3) otherwise the fetched bytes must have the pinned
    bytes' SHA-256, else :class:`PolicyChangedError`; the pinned bytes are what is trusted.

    The pin is taken before any checkpoint is checked under it: on first use the log is believed as it is,
    which is what trust on first use means.
    """
    fetched = fetch("policy")
    fetched_sha256 = hashlib.sha256(fetched).hexdigest()
    path = pinned_policy_path(state_dir, source)
    pinned = _read_pinned(path)
    if pinned is None:
        policy = Policy.from_bytes(fetched)
        try:
            atomic_write(path, fetched)
        except OSError as e:
            raise StorageError(f"cannot pin the policy of {source} in {path}: {e.strerror}") from e
        return PinnedPolicy(policy=policy, sha256=fetched_sha256, path=path, first_use=True)
    pinned_sha256 = hashlib.sha256(pinned).hexdigest()
    if pinned_sha256 != fetched_sha256:
        raise PolicyChangedError(
            source=source, path=path, pinned_sha256=pinned_sha256, fetched_sha256=fetched_sha256
        )
    return PinnedPolicy(policy=Policy.from_bytes(pinned), sha256=pinned_sha256, path=path, first_use=False)


def _read_pinned(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"cannot read the pinned policy {path}: {e.strerror}") from e
