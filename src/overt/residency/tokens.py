"""API tokens of tenants: their format, their hashes and their verification, with a cache that never hides a
revocation.

A token is ``ovt_<token_id>_<secret>``: ``token_id`` 16 lower-case hex digits (the lookup key, not secret:
access logs and ``tenant show`` name it), ``secret`` 32 random bytes in URL-safe base64 without padding (43
characters). Only an argon2id hash of the whole token is stored; the token is handed back once, when it is
made, and is never stored, logged or printed again.

The argon2id parameters (:func:`token_password_hasher`) are OWASP's second minimum configuration: 19 MiB,
2 passes, 1 lane (about 25 ms here, against about 150 ms for argon2-cffi's default RFC 9106 "low memory"
profile of 64 MiB, 3 passes, 4 lanes). A memory-hard cost protects guessable passwords; a token's secret is
256 random bits, which no cost factor needs to protect against guessing, so the lighter cost gives away
nothing and makes a request with a wrong secret six times cheaper. Each argon2 hash encodes its own
parameters, so tokens hashed with the earlier defaults still verify (at their own cost).

:class:`TokenHasher` does the verification work, bounded:

- it remembers, in memory, each token it verified (by the SHA-256 of the token) together with the stored
  hash it verified against, so a tenant's requests after the first cost no argon2. It is only a cache of
  the argon2 answer: the caller still looks the token id up in the directory on every request
  (:meth:`overt.residency.tenants.Directory.authenticate`), so a token revoked by any process stops at its
  next use;
- at most ``max_concurrent`` argon2 verifications run at once (a semaphore; default half the cores), so
  tokens with wrong secrets cannot take every core from the tenants whose tokens are remembered;
- :meth:`TokenHasher.verify_dummy` verifies against a fixed hash of a random token, so that a caller can
  spend on an unknown or revoked token id the same argon2 work as on a wrong secret, and answer all three
  alike (:data:`NOT_VALID`): the time and the answer tell them apart no more than the words do.

Owns the format and the hashing. Does not store anything (that is :mod:`overt.residency.tenants`), nor
limit failed attempts (:class:`overt.residency.ratelimit.AuthFailureLimiter`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from overt.errors import FormatError, PolicyError, StorageError

MAX_CACHED_TOKENS = 4096
MAX_CONCURRENT_VERIFICATIONS = max(1, (os.cpu_count() or 2) // 2)
# OWASP Password Storage Cheat Sheet, argon2id, the second of its equivalent minimum configurations.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
NOT_VALID = "the API token is not valid"
_TOKEN_ID = re.compile(r"[0-9a-f]{16}")
_TOKEN = re.compile(r"ovt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class AuthenticationError(PolicyError):
    """An API token that authenticates no tenant. ``reason`` says why: ``malformed``, ``unknown``,
    ``revoked`` or ``wrong-secret``. The reason is for the server's own use: what a client is told of the
    last three is :data:`NOT_VALID` alone (:func:`not_valid`)."""

    REASONS: ClassVar[tuple[str, ...]] = ("malformed", "unknown", "revoked", "wrong-secret")

    def __init__(self, message: str, *, reason: str, **evidence: Any) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"not an authentication failure reason: {reason}")
        super().__init__(message, reason=reason, **evidence)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """A stored token, never its secret. ``revoked`` is when it stops (or stopped) authenticating."""

    token_id: str
    tenant: str
    created: str
    revoked: str | None = None

    def revoked_at(self, now: datetime) -> bool:
        return self.revoked is not None and datetime.fromisoformat(self.revoked) <= now

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "tenant": self.tenant,
            "created": self.created,
            "revoked": self.revoked,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NewToken:
    """A token just made: the only time its secret exists outside the caller's hands."""

    info: TokenInfo
    token: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "token": self.token}


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokedToken:
    """A revocation: the token as stored now, and whether it had been revoked already (then nothing changed)."""

    info: TokenInfo
    already: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "already_revoked": self.already}


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRotation:
    """A new token for the tenant, and the tokens that rotation revoked (from ``revoked`` on)."""

    new: NewToken
    revoked: tuple[TokenInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"new": self.new.to_dict(), "revoked": [t.to_dict() for t in self.revoked]}


def not_valid(error: AuthenticationError) -> AuthenticationError:
    """``error`` as a client sees it: an unknown, revoked or wrong token is :data:`NOT_VALID`, nothing more
    (whether the id exists, or when it was revoked, is told to no one who has not shown the secret)."""
    if error.reason == "malformed":
        return error
    return AuthenticationError(NOT_VALID, reason=error.reason, token_id=error.evidence.get("token_id", ""))


def parse_token(token: str) -> str:
    """The token id of an API token; raises :class:`AuthenticationError` (``malformed``) otherwise."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise AuthenticationError(
            "not an overt API token (ovt_, 16 hex digits, _ and 43 base64url characters)", reason="malformed"
        )
    return match.group(1)


def check_token_id(token_id: str) -> str:
    if not _TOKEN_ID.fullmatch(token_id):
        raise FormatError(f"token id {token_id[:40]!r} is not 16 lower-case hex digits")
    return token_id


def new_token() -> tuple[str, str]:
    """A fresh (token_id, token)."""
    token_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return token_id, f"ovt_{token_id}_{secret}"


def token_password_hasher() -> PasswordHasher:
    """argon2id with the parameters above (module docstring): new tokens are hashed with these."""
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
    )


def _token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenHasher:
    """argon2id hashes of tokens, and their verification: remembered once verified, at most
    ``max_concurrent`` at once."""

    def __init__(
        self, hasher: PasswordHasher | None = None, *, max_concurrent: int = MAX_CONCURRENT_VERIFICATIONS
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.hasher = hasher or token_password_hasher()
        self.max_concurrent = max_concurrent
        self._verified: OrderedDict[bytes, str] = OrderedDict()  # sha256(token) -> the hash it matched
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._dummy: str | None = None

    def hash(self, token: str) -> str:
        return self.hasher.hash(token)

    def verified_before(self, token: str) -> bool:
        """True if ``token`` was verified by this hasher (so checking it again costs no argon2). Its secret
        is then proven; whether it still authenticates is the directory's to say."""
        with self._lock:
            return _token_key(token) in self._verified

    def verify(self, token: str, *, token_id: str, stored: str) -> None:
        """Return if ``token`` matches the ``stored`` hash (remembered after the first time), else raise.

        Raises:
            AuthenticationError: the secret is wrong (``wrong-secret``).
            StorageError: ``stored`` is not an argon2 hash.
        """
        key = _token_key(token)
        with self._lock:
            if self._verified.get(key) == stored:
                self._verified.move_to_end(key)
                return
        try:
            self._argon2(stored, token)
        except VerifyMismatchError:
            # The directory's own words for it, as for an unknown id; clients are told NOT_VALID (not_valid).
            raise AuthenticationError("unknown API token", reason="wrong-secret", token_id=token_id) from None
        except (InvalidHashError, VerificationError) as e:
            raise StorageError(f"the stored hash of API token {token_id} is damaged: {e}") from e
        with self._lock:
            self._verified[key] = stored
            while len(self._verified) > MAX_CACHED_TOKENS:
                self._verified.popitem(last=False)

    def verify_dummy(self, token: str) -> None:
        """Spend on ``token`` the argon2 work of a wrong secret, against a fixed hash it cannot match (made
        once, with this hasher's parameters): for a token id that is unknown or revoked."""
        with self._lock:
            if self._dummy is None:
                self._dummy = self.hasher.hash(secrets.token_urlsafe(32))
            dummy = self._dummy
        try:
            self._argon2(dummy, token)
        except VerificationError:
            return
        raise RuntimeError("a token matched the dummy hash")  # a 256-bit random secret: never

    def _argon2(self, stored: str, token: str) -> None:
        with self._slots:
            self.hasher.verify(stored, token)
