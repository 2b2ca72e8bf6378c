"""API token hashing: the argon2id parameters of new tokens, old hashes still verifying, the dummy verification
for ids without a live hash, and the cap on argon2 verifications running at once."""

from __future__ import annotations

import threading
import time

import pytest
from argon2 import PasswordHasher

from overt.residency.tokens import NOT_VALID, AuthenticationError, TokenHasher, new_token, not_valid


def test_new_tokens_are_hashed_with_owasps_minimum_and_old_hashes_still_verify() -> None:
    hasher = TokenHasher()
    token_id, token = new_token()
    assert hasher.hash(token).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    old = PasswordHasher().hash(token)  # argon2-cffi's defaults, as tokens were hashed before
    assert old.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert not hasher.verified_before(token)
    hasher.verify(token, token_id=token_id, stored=old)
    assert hasher.verified_before(token)
    with pytest.raises(AuthenticationError) as wrong:
        hasher.verify(new_token()[1], token_id=token_id, stored=old)
    assert wrong.value.reason == "wrong-secret" and str(not_valid(wrong.value)) == NOT_VALID


class Watched(PasswordHasher):
    """argon2id, cheap, that records how many of its verifications ran at once (each lasts 50 ms)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.running = 0
        self.most = 0
        self.calls = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.parametrize("cap", [1, 2])
def test_at_most_max_concurrent_verifications_run_at_once(cap: int) -> None:
    watched = Watched()
    hasher = TokenHasher(watched, max_concurrent=cap)
    token_id, token = new_token()
    stored = hasher.hash(token)

    def attempt() -> None:
        with pytest.raises(AuthenticationError):
            hasher.verify(new_token()[1], token_id=token_id, stored=stored)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert watched.calls == 6 and 1 <= watched.most <= cap


def test_the_dummy_verification_costs_one_argon2_and_matches_nothing() -> None:
    watched = Watched()
    hasher = TokenHasher(watched)
    _, token = new_token()
    hasher.verify_dummy(token)
    hasher.verify_dummy(token)
    assert watched.calls == 2 and not hasher.verified_before(token)
    with pytest.raises(ValueError, match="at least 1"):
        TokenHasher(max_concurrent=0)
