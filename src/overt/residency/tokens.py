"""API tokens of tenants: their format, their hashes and their verification, with a cache that never hides a
revocation.

A token is ``ovt_<token_id>_<secret>``: ``token_id`` 16 lower-case hex digits (the lookup key, not secret),
``secret`` 32 random bytes in URL-safe base64 without padding (43 characters). Only an argon2id hash of the
whole token is stored (argon2-cffi's :class:`~argon2.PasswordHasher`, its default parameters); the token is
handed back once, when it is made, and is never stored, logged or printed again.

Argon2 is slow on purpose (about a tenth of a second here), too slow to run on every request.
:class:`TokenHasher` remembers, in memory, each token it verified (by the SHA-256 of the token) together with
the stored hash it verified against. It is only a cache of the argon2 answer: the caller still looks the token
id up in the directory on every request (:meth:`overt.residency.tenants.Directory.authenticate`), so a token
revoked by any process stops at its next use.

Owns the format and the hashing. Does not store anything (that is :mod:`overt.residency.tenants`).
"""

from __future__ import annotations

import base64
import hashlib
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
_TOKEN_ID = re.compile(r"[0-9a-f]{16}")
_TOKEN = re.compile(r"ovt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class AuthenticationError(PolicyError):
    """An API token that authenticates no tenant. ``reason`` says why: ``malformed``, ``unknown``,
    ``revoked`` or ``wrong-secret`` (the message says "unknown" for the last, as for an unknown id)."""

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


class TokenHasher:
    """argon2id hashes of tokens, and their verification with an in-memory cache of verified tokens."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._verified: OrderedDict[bytes, str] = OrderedDict()  # sha256(token) -> the hash it matched
        self._lock = threading.Lock()

    def hash(self, token: str) -> str:
        return self.hasher.hash(token)

    def verify(self, token: str, *, token_id: str, stored: str) -> None:
        """Return if ``token`` matches the ``stored`` hash (remembered after the first time), else raise.

        Raises:
            AuthenticationError: the secret is wrong (``wrong-secret``).
            StorageError: ``stored`` is not an argon2 hash.
        """
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            if self._verified.get(key) == stored:
                self._verified.move_to_end(key)
                return
        try:
            self.hasher.verify(stored, token)
        except VerifyMismatchError:
            raise AuthenticationError("unknown API token", reason="wrong-secret", token_id=token_id) from None
        except (InvalidHashError, VerificationError) as e:
            raise StorageError(f"the stored hash of API token {token_id} is damaged: {e}") from e
        with self._lock:
            self._verified[key] = stored
            while len(self._verified) > MAX_CACHED_TOKENS:
                self._verified.popitem(last=False)
