"""Pinned trust: the client state lives under $XDG_STATE_HOME/overt, trust on first use pins the exact
bytes of ``<log>/policy`` per log source, and a log operator who swaps its own witness into it is refused."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from overt.errors import ConsistencyError, QuorumError
from overt.home import Home
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.client import LogClient, directory_fetcher
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import Signature
from overt.tlog.policy import Group, Policy, PolicyWitness
from overt.tlog.trust import (
    PolicyChangedError,
    default_state_dir,
    pinned_policy_path,
    policy_from_vkey,
    trust_on_first_use,
)

# Test-only witness keys, fixed so the fixtures are reproducible.
HONEST = CosignatureSigner.create("witness.pinned.overt.example", b"\x07" * 32, now=lambda: 1_700_000_000)
OPERATOR = CosignatureSigner.create("witness.operator.example", b"\x66" * 32, now=lambda: 1_700_000_000)


def cosign(log_dir: Path, witness: CosignatureSigner) -> None:
    """Add ``witness``'s cosignature/v1 to the published checkpoint, as its add-checkpoint answer would."""
    signed = SignedCheckpoint.from_bytes((log_dir / "checkpoint").read_bytes())
    line = Signature(
        name=witness.name, key_id=witness.key_id, signature=witness.sign(signed.note.text.encode())
    )
    (log_dir / "checkpoint").write_bytes(signed.note.with_signatures(line).to_bytes())


def witnessed_by(home: Home, witness: CosignatureSigner, name: str) -> bytes:
    """The home's policy with ``witness`` as the one required cosigner."""
    w = PolicyWitness(name=name, verifier=witness.verifier())
    group = Group(name="witnesses", threshold=1, members=(name,))
    return Policy(logs=home.log.policy().logs, witnesses=(w,), groups=(group,), quorum="witnesses").to_bytes()


@pytest.fixture
def witnessed(tmp_path: Path) -> Home:
    """A log whose published checkpoint is cosigned by the honest witness its published policy requires."""
    h = Home.init(tmp_path / "log-home", origin="pinned.overt.example/log")
    h.log.append(b"an entry")
    cosign(h.log.paths.public, HONEST)
    (h.log.paths.public / "policy").write_bytes(witnessed_by(h, HONEST, "w1"))
    return h


def test_the_state_dir_is_xdg_state_home_and_never_the_current_directory() -> None:
    assert default_state_dir({"XDG_STATE_HOME": "/srv/state"}) == Path("/srv/state/overt")
    fallback = Path.home() / ".local" / "state" / "overt"
    assert default_state_dir({}) == fallback
    # The XDG spec: a relative XDG_STATE_HOME is invalid and ignored, so nothing lands under the cwd.
    assert default_state_dir({"XDG_STATE_HOME": "state"}) == fallback


def test_first_use_pins_the_exact_bytes_per_source(
    witnessed: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    fetch = directory_fetcher(witnessed.log.paths.public)
    served = (witnessed.log.paths.public / "policy").read_bytes()
    first = trust_on_first_use(fetch, source=str(witnessed.log.paths.public), state_dir=state)
    assert first.first_use and first.sha256 == hashlib.sha256(served).hexdigest()
    assert first.path.read_bytes() == served and first.path.parent == state / "policies"
    # The same source spelled relative to the cwd, with a trailing slash, is the same pin.
    monkeypatch.chdir(witnessed.log.paths.public.parent)
    again = trust_on_first_use(fetch, source=f"{witnessed.log.paths.public.name}/", state_dir=state)
    assert not again.first_use and again.path == first.path and again.policy == first.policy
    # Another log source is pinned on its own.
    other = Home.init(tmp_path / "other", origin="other.overt.example/log")
    pinned = trust_on_first_use(
        directory_fetcher(other.log.paths.public), source=str(other.log.paths.public), state_dir=state
    )
    assert pinned.first_use and pinned.path != first.path
    assert pinned_policy_path(state, "https://log.example/x/") == pinned_policy_path(
        state, "https://log.example/x"
    )
    tree = LogClient(fetch, first.policy).update()
    assert tree.cosigners == {"w1"}


def test_an_operator_who_swaps_in_its_own_witness_is_refused(witnessed: Home, tmp_path: Path) -> None:
    state = tmp_path / "state"
    fetch = directory_fetcher(witnessed.log.paths.public)
    honest = trust_on_first_use(fetch, source=str(witnessed.log.paths.public), state_dir=state)
    # The operator serves a head only its own witness cosigned, and a policy that names that witness.
    witnessed.log.append(b"a split-view entry")
    cosign(witnessed.log.paths.public, OPERATOR)
    swapped = witnessed_by(witnessed, OPERATOR, "w1")
    (witnessed.log.paths.public / "policy").write_bytes(swapped)
    with pytest.raises(PolicyChangedError) as e:
        trust_on_first_use(fetch, source=str(witnessed.log.paths.public), state_dir=state)
    assert e.value.pinned_sha256 == honest.sha256
    assert e.value.fetched_sha256 == hashlib.sha256(swapped).hexdigest()
    assert honest.sha256 in str(e.value) and e.value.fetched_sha256 in str(e.value)
    assert honest.path.read_bytes() != swapped  # the pin is never overwritten
    # The pinned policy does not count the operator's witness, whatever its name in the swapped policy.
    with pytest.raises(QuorumError):
        LogClient(fetch, honest.policy).update()


def test_a_bare_vkey_trusts_that_key_alone(witnessed: Home) -> None:
    vkey = (witnessed.log.paths.public / "vkey").read_text()
    policy = policy_from_vkey(vkey)
    assert [lg.verifier.vkey() for lg in policy.logs] == [vkey.strip()]
    assert policy.quorum == "none" and not policy.witnesses


def test_two_logs_that_share_an_origin_are_kept_apart(tmp_path: Path) -> None:
    """Every fresh home starts as overt.example/log. The remembered checkpoint is per log (origin and key), so
    verifying a second such log used to fail as 'inconsistent' with the first one's checkpoint."""
    state = tmp_path / "state"
    for name, entries in (("a", [b"one"]), ("b", [b"one", b"two"])):
        home = Home.init(tmp_path / name)
        for e in entries:
            home.log.append(e)
        client = LogClient(directory_fetcher(home.log.paths.public), home.log.policy(), state)
        assert client.update().checkpoint.checkpoint.tree_size == len(entries)
    assert len(list(state.glob("*.checkpoint"))) == 2


def test_a_checkpoint_remembered_by_origin_alone_still_guards_its_own_log(tmp_path: Path) -> None:
    """State written before logs were told apart by key: it still catches a rollback of the log that signed
    it, and is ignored for another log with the same origin."""
    state = tmp_path / "state"
    state.mkdir()
    home = Home.init(tmp_path / "a")
    home.log.append(b"one")
    size_1 = (home.log.paths.public / "checkpoint").read_bytes()
    home.log.append(b"two")
    legacy = state / (hashlib.sha256(b"overt.example/log").hexdigest() + ".checkpoint")
    legacy.write_bytes((home.log.paths.public / "checkpoint").read_bytes())
    # Another log with the origin (another key, a smaller tree) is not held to the first one's checkpoint.
    other = Home.init(tmp_path / "other")
    LogClient(directory_fetcher(other.log.paths.public), other.log.policy(), state).update()
    # The first log, served rolled back to size 1, is caught through the legacy checkpoint.
    rolled = tmp_path / "rolled"
    shutil.copytree(home.log.paths.public, rolled)
    (rolled / "checkpoint").write_bytes(size_1)
    with pytest.raises(ConsistencyError, match="rolled back from size 2 to 1"):
        LogClient(directory_fetcher(rolled), home.log.policy(), state).update()


def test_a_log_restored_from_a_backup_is_a_rollback_even_without_the_larger_trees_tiles(
    tmp_path: Path,
) -> None:
    """The vendor restores the log from a backup: its checkpoint and tiles are of the smaller tree, so the
    stored tree's tiles are gone. That is a rollback (a refusal), not an unreachable log."""
    home = Home.init(tmp_path / "a")
    home.log.append(b"one")
    backup = tmp_path / "backup"
    shutil.copytree(home.log.paths.public, backup)
    home.log.append(b"two")
    state = tmp_path / "state"
    state.mkdir()
    LogClient(directory_fetcher(home.log.paths.public), home.log.policy(), state).update()
    with pytest.raises(ConsistencyError, match=r"rolled back from size 2 to 1 \(whether it is a prefix"):
        LogClient(directory_fetcher(backup), home.log.policy(), state).update()
