"""``overt agent``: a pinned trust policy, an update through the stock TUF client and every overt check, an
atomic install, why it was trusted (``status``), one agent at a time, the post-install hook, the run loop,
hash bins, and ``overt verify --evidence`` offline. The attacks are tests/distribute/test_agent_attacks.py."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadLengthMismatchError

from overt.distribute.agent import agent_status, run_agent
from overt.distribute.agentdir import agent_lock
from overt.distribute.endpoint import CURRENT, FAILED, INSTALLED, NOTHING, REFUSED, EndpointUpdate, _Fetcher
from overt.distribute.offline import verify_offline
from overt.distribute.trust import TrustPolicy
from overt.errors import ConfigError, Error, PolicyError, UsageError, VerificationError
from overt.keys.registry import KeyRecord
from tests.distribute.test_repository import _with_bins
from tests.distribute.world import World

STEPS = ["tuf", "log", "metadata", "provenance", "verdicts", "consistency", "version", "freshness", "install"]


def test_an_update_installs_what_every_check_passed_and_status_says_why(world: World) -> None:
    world.pin()
    assert world.outcome().status == NOTHING  # the channel has no release yet
    released = world.release("1.0")
    o = world.outcome()
    assert o.status == INSTALLED, o.error
    assert [c.check for c in o.checks] == STEPS
    current = world.agent / "products" / "demo" / "stable" / "current" / "demo.tar.gz"
    assert (
        current.read_bytes()
        == (
            world.repo.public / "targets" / "products" / "demo" / "1.0" / f"{released.sha256}.demo.tar.gz"
        ).read_bytes()
    )
    status = agent_status(world.agent)
    (item,) = status.items
    assert item.intact and item.record is not None
    r = item.record
    assert (r.version, r.sha256, r.provenance_index) == ("1.0", released.sha256, released.provenance_index)
    assert sorted(r.auditors) == sorted(a.keyid for a in world.auditors[:2])
    names = [n for n, _ in r.metadata]
    newest = {m.name for m in released.publication.metadata if m.role == "release"}
    assert newest <= set(names) and {"1.root.json", "1.targets.json"} <= set(names)
    assert (
        set(r.cosigners) == {"w1", "w2"} and r.checkpoint["origin"] == world.home.log.policy().logs[0].origin
    )
    assert status.log_head is not None and status.log_head["tree_size"] == r.checkpoint["tree_size"]
    assert status.policy.sha256 == r.policy_sha256
    # The installed file changed on disk: status says so.
    current.write_bytes(b"tampered")
    assert agent_status(world.agent).items[0].intact is False


def test_updates_move_forward_keep_the_previous_version_and_a_no_op_checks_freshness(world: World) -> None:
    world.pin()
    for version in ("1.0", "2.0", "3.0"):
        world.release(version)
        assert world.outcome().status == INSTALLED and world.installed() == version
    versions = sorted(
        p.name for p in (world.agent / "products" / "demo" / "stable").iterdir() if not p.is_symlink()
    )
    assert versions == ["2.0", "3.0"]  # the one before is kept for a rollback by hand, older ones removed
    before = len(world.site.requested)
    o = world.outcome()
    assert o.status == CURRENT
    assert [c.check for c in o.checks] == ["tuf", "metadata", "consistency", "freshness"]
    fetched = world.site.requested[before:]
    assert not [p for p in fetched if "/targets/" in p]  # nothing downloaded again
    assert "/log/checkpoint" in fetched  # but the log's head was checked


def test_init_makes_the_directories_an_update_writes_in(world: World) -> None:
    world.pin()
    for d in ("tuf/downloads", "log", "trusted", "products/demo/stable"):
        assert (world.agent / d).is_dir(), d


def test_an_update_needs_no_temporary_directory(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TUF client's downloads are held in memory, not in a temporary file: an endpoint whose temporary
    directory is gone or full still updates (and the download is not written to disk twice)."""
    world.release("1.0")
    world.pin()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
    o = world.outcome()
    assert o.status == INSTALLED, o.error
    assert world.installed() == "1.0"


def test_one_agent_at_a_time(world: World) -> None:
    world.release("1.0")
    world.pin()
    with agent_lock(world.layout), pytest.raises(ConfigError, match="another overt agent is working in"):
        world.update()
    assert world.installed() is None


def test_the_lock_names_its_holder_over_the_same_bytes_without_truncating(world: World) -> None:
    """The pid is written over a fixed-width record (truncating a file just written costs milliseconds on
    ext4); a longer file left by something else is shortened to the record, and the holder is named."""
    world.layout.root.mkdir(parents=True, exist_ok=True)
    world.layout.lock.write_text("x" * 100)
    record = f"{os.getpid()}".ljust(15) + "\n"
    with agent_lock(world.layout):
        assert world.layout.lock.read_text() == record
    with agent_lock(world.layout):
        assert world.layout.lock.read_text() == record


def test_the_log_tiles_are_read_before_the_target_is_downloaded(world: World) -> None:
    """The tiles on the tree's right edge are read with the log's head, while TUF refreshes, not after the
    download: the consistency proofs then find them there."""
    world.release("1.0")
    world.pin()
    before = len(world.site.requested)
    assert world.outcome().status == INSTALLED
    fetched = world.site.requested[before:]
    tiles = [i for i, p in enumerate(fetched) if "/log/tile/" in p]
    download = next(i for i, p in enumerate(fetched) if "/targets/products/" in p)
    assert tiles and max(tiles) < download, fetched


def test_an_unreachable_repository_is_operational_and_keeps_the_installed_version(world: World) -> None:
    world.release("1.0")
    world.pin()
    assert world.outcome().status == INSTALLED
    world.release("2.0")
    world.site.stop()
    o = world.outcome()
    assert o.status == FAILED and o.exit_code == 2 and world.installed() == "1.0"
    # Said as it is: the connection was refused (python-tuf's own error for it has no message).
    assert re.search(r"could not be read: \w+Error.*(Connection refused|Errno 111)", str(o.error)), str(
        o.error
    )


def test_the_post_install_hook_sees_what_was_installed_and_a_failing_one_is_reported(world: World) -> None:
    out = world.customer / "hook.out"
    hook = world.customer / "hook.sh"
    hook.write_text(f'#!/bin/sh\nenv | grep ^OVERT_ | sort > {out}\nexit "$1"\n')
    hook.chmod(0o755)
    world.pin(world.policy_text(extra=f'\n[install]\nhook = ["{hook}", "0"]\n'))
    world.release("1.0")
    o = world.outcome()
    assert o.status == INSTALLED and o.hook is not None and o.hook.ok
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert (
        seen["OVERT_VERSION"] == "1.0" and seen["OVERT_NAME"] == "demo" and seen["OVERT_CHANNEL"] == "stable"
    )
    assert Path(seen["OVERT_INSTALLED"]).read_bytes() == Path(o.record.installed).read_bytes()  # type: ignore[union-attr]
    world.pin(world.policy_text(extra=f'\n[install]\nhook = ["{hook}", "3"]\n'))
    world.release("2.0")
    o = world.outcome()
    assert o.status == INSTALLED and world.installed() == "2.0"  # installed; the hook's failure is reported
    assert (
        o.exit_code == 2
        and o.error is not None
        and "post-install hook" in str(o.error)
        and "exited 3" in str(o.error)
    )


def test_the_agent_finds_its_channel_in_hash_bins_fetching_one_bin_per_lookup(world: World) -> None:
    _with_bins(world.repo, threshold=2, count=4)
    for i in range(3):
        world.repo.release(f"other {i}".encode(), "x.tar.gz", product=f"other{i}", version="1.0")
    world.release("1.0")
    world.pin()
    before = len(world.site.requested)
    o = world.outcome()
    assert o.status == INSTALLED, o.error
    bins = [p for p in world.site.requested[before:] if p.startswith("/tuf/metadata/") and ".bin-" in p]
    assert 1 <= len(bins) <= 2  # the channel index's bin and the target's (maybe the same one)
    assert any(".bin-" in n for n, _ in o.record.metadata)  # type: ignore[union-attr]


def test_run_updates_again_after_the_interval_and_a_random_jitter(world: World) -> None:
    world.release("1.0")
    world.pin()
    slept: list[float] = []
    reports: list[EndpointUpdate | Error] = []
    done = run_agent(
        world.agent,
        interval=10,
        jitter=5,
        runs=3,
        report=reports.append,
        sleep=slept.append,
        rng=random.Random(7),
    )
    assert done == 3 and len(slept) == 2 and all(10 <= s <= 15 for s in slept) and slept[0] != slept[1]
    assert [r.outcomes[0].status for r in reports if isinstance(r, EndpointUpdate)] == [
        INSTALLED,
        CURRENT,
        CURRENT,
    ]
    # A run that fails is reported and the loop goes on.
    (world.agent / "policy.toml").unlink()
    reports.clear()
    run_agent(world.agent, interval=0, jitter=0, runs=2, report=reports.append, sleep=slept.append)
    assert len(reports) == 2 and all(isinstance(r, ConfigError) for r in reports)


def test_verify_offline_runs_the_checks_on_a_copy_of_the_repository(world: World) -> None:
    released = world.release("1.0")
    v2 = world.release("2.0")
    world.pin()
    trust = TrustPolicy.from_file(world.customer / "policy.toml")
    data = (
        world.repo.public / "targets" / "products" / "demo" / "1.0" / f"{released.sha256}.demo.tar.gz"
    ).read_bytes()
    now = datetime.now(UTC)
    result = verify_offline(data, name="demo.tar.gz", evidence=world.repo.public, trust=trust, now=now)
    assert result.assurance.candidate.path == released.path and result.assurance.candidate.version == "1.0"
    assert [c.check for c in result.checks] == [
        "tuf",
        "metadata",
        "provenance",
        "verdicts",
        "consistency",
        "version",
        "freshness",
    ]
    with pytest.raises(VerificationError, match="lists no target with sha256") as e:
        verify_offline(data + b"!", name="x", evidence=world.repo.public, trust=trust, now=now)
    assert e.value.evidence["check"] == "tuf"
    # A copy whose release listing was changed after signing: its signatures are checked offline too.
    copy = world.customer.parent / "copy"
    shutil.copytree(world.repo.public, copy)
    for listing in (copy / "metadata").glob("*.release.json"):
        listing.write_bytes(listing.read_bytes().replace(b'"version":"1.0"', b'"version":"9.0"'))
    with pytest.raises(VerificationError, match="TUF metadata does not verify") as e:
        verify_offline(data, name="x", evidence=copy, trust=trust, now=now)
    assert e.value.evidence["check"] == "tuf"
    # An agent with 2.0 installed: 1.0 is older.
    assert world.outcome().status == INSTALLED and world.installed() == "2.0"
    with pytest.raises(Error, match=r"older than the installed version 2\.0"):
        verify_offline(
            data, name="x", evidence=world.repo.public, trust=trust, now=now, agent_dir=world.agent
        )
    assert v2.path != released.path


def overt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_the_agent_from_the_command_line(world: World, tmp_path: Path) -> None:
    released = world.release("1.0")
    (world.customer / "policy.toml").write_text(world.policy_text())
    env = {**os.environ, "OVERT_AGENT_DIR": str(world.agent)}
    r = overt("agent", "init", "--policy", str(world.customer / "policy.toml"), env=env)
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.startswith(f"pinned {world.customer / 'policy.toml'} (sha256 ")
        and "follows: demo (stable)" in r.stdout
    )
    r = overt("agent", "update", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("demo (stable): installed version 1.0 (")
    for step in STEPS:
        assert f"  PASSED {step}: " in r.stdout
    r = overt("agent", "status", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["items"][0]["installed"]["sha256"] == released.sha256
    r = overt("agent", "status", env=env)
    assert (
        f"demo (stable): version 1.0, sha256 {released.sha256}" in r.stdout
        and "verified by auditors: " in r.stdout
    )
    # A refused update: exit 1, the check and the evidence on stderr, the version kept.
    world.release("2.0", vouched=1)
    r = overt("agent", "update", env=env)
    assert r.returncode == 1, r.stderr
    assert (
        "demo (stable): REFUSED version 2.0, the verdicts check: 1 of the 2" in r.stdout
        and "kept version 1.0" in r.stdout
    )
    assert (
        r.stderr.startswith("error: 1 of the 2 distinct trusted auditors") and "  check: verdicts" in r.stderr
    )
    assert world.installed() == "1.0"
    r = overt("agent", "update", "--json", env=env)
    report = json.loads(r.stdout)
    assert r.returncode == 1 and report["exit_code"] == 1
    (item,) = report["outcomes"]
    assert (
        item["status"] == "refused"
        and item["failed"]["check"] == "verdicts"
        and item["installed"]["version"] == "1.0"
    )
    assert json.loads(r.stderr.splitlines()[0])["evidence"]["required"] == 2
    # 'overt verify --evidence' offline, on a copy of the repository: exit 0, then 1 for another file.
    target = world.repo.public / "targets" / "products" / "demo" / "1.0" / f"{released.sha256}.demo.tar.gz"
    args = [
        "verify",
        str(target),
        "--evidence",
        str(world.repo.public),
        "--policy",
        str(world.customer / "policy.toml"),
    ]
    r = overt(*args)
    assert r.returncode == 0, r.stderr
    assert "PROVED  verdicts: 2 of 2 trusted auditors PASSED it" in r.stdout
    assert r.stdout.rstrip().endswith(f"is {released.path} version 1.0 (sha256 {released.sha256})")
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"something else")
    r = overt("verify", str(other), *args[2:])
    assert r.returncode == 1 and r.stderr.startswith(
        "error: the evidence directory's signed metadata lists no"
    )
    r = overt(*args, "--provenance", str(other))
    assert r.returncode == 2 and "--evidence checks with your trust policy alone" in r.stderr
    r = overt("agent", "update", "--dir", str(tmp_path / "empty"))
    assert r.returncode == 2 and "no trust policy is pinned" in r.stderr


def test_verify_offline_refuses_a_fifo_in_the_evidence_directory_instead_of_waiting_on_it(
    world: World,
) -> None:
    released = world.release("1.0")
    world.pin()
    trust = TrustPolicy.from_file(world.customer / "policy.toml")
    copy = world.customer.parent / "fifo-copy"
    shutil.copytree(world.repo.public, copy)
    data = (copy / "targets" / "products" / "demo" / "1.0" / f"{released.sha256}.demo.tar.gz").read_bytes()
    index = copy / "evidence" / "targets" / released.path / "vsa" / "index.json"
    index.unlink()
    os.mkfifo(index)  # nobody ever writes to it: reading it would wait for ever
    with pytest.raises(UsageError, match="not a regular file"):
        verify_offline(data, name="demo.tar.gz", evidence=copy, trust=trust, now=datetime.now(UTC))


def test_an_installed_file_changed_on_disk_is_not_current_and_is_installed_again(world: World) -> None:
    world.release("1.0")
    world.pin()
    assert world.outcome().status == INSTALLED
    current = world.agent / "products" / "demo" / "stable" / "current" / "demo.tar.gz"
    good = current.read_bytes()
    os.utime(current, ns=(1, 1))  # touched, same bytes: hashed again, still the trusted file
    assert world.outcome().status == CURRENT
    current.write_bytes(bytes([good[0] ^ 1]) + good[1:])  # same size, other bytes
    o = world.outcome()
    assert o.status == INSTALLED and current.read_bytes() == good, (o.status, o.error)
    assert agent_status(world.agent).items[0].intact is True
    assert world.outcome().status == CURRENT


def test_a_rebuilders_verdict_counts_for_the_build_it_names_never_for_another(world: World) -> None:
    """A rebuilder judges a build: its VSA's subject is the build output's name, and it names the provenance in
    inputAttestations. It counts for a target naming that provenance (PASSED by k such auditors: installed), and
    a VSA naming another provenance over the same bytes does not bind to this release."""
    from overt.distribute import testbed
    from overt.distribute.checks import ReleaseContext
    from overt.distribute.verdicts import add_verdict
    from overt.home import Home

    world.pin()
    released = world.release("1.0", vouched=0)
    provenance = released.custom["overt"]["provenance"]["sha256"]
    ctx = ReleaseContext.of_home(Home(world.home.path))

    def rebuilt(auditor: KeyRecord, prov: str) -> None:
        entry = testbed.auditor_verdict(
            world.home,
            auditor,
            path=released.path,
            sha256=released.sha256,
            provenance=prov,
            nonce=next(world.serial),
        )
        add_verdict(ctx, entry, target=released.path)

    rebuilt(world.auditors[0], provenance)
    with pytest.raises(PolicyError, match="nor the provenance"):
        rebuilt(world.auditors[1], "ab" * 32)
    o = world.outcome()
    assert o.status == REFUSED and "1 of the 2 distinct trusted auditors" in str(o.error), o.error
    rebuilt(world.auditors[1], provenance)
    o = world.outcome()
    assert o.status == INSTALLED, o.error
    assert o.record is not None and sorted(o.record.auditors) == sorted(a.keyid for a in world.auditors[:2])


def test_the_fetcher_writes_a_download_as_it_arrives_and_says_so_before_it_is_checked(
    world: World, tmp_path: Path
) -> None:
    """The agent's fetcher, asked to spool, writes the download it holds in memory to a file chunk by chunk,
    and calls back once all of it is there (the agent starts its fsync then, while the TUF client hashes it):
    the file holds exactly the bytes the client is given. Only the next download on that thread is spooled,
    and one longer than the signed length is never reported written."""
    released = world.release("1.0")
    name = f"products/demo/1.0/{released.sha256}.demo.tar.gz"
    data = (world.repo.public / "targets" / name).read_bytes()
    url = f"{world.site.url}/tuf/targets/{name}"
    fetcher, out, seen = _Fetcher(), tmp_path / "spooled", []
    with fetcher.spooling(out, lambda p: seen.append(p.read_bytes())):
        with fetcher.download_file(url, len(data)) as held:
            assert seen == [data]  # written before the client reads what it holds
            assert held.read() == data
        with fetcher.download_file(url, len(data)) as held:
            assert held.read() == data
    assert seen == [data] and out.read_bytes() == data
    seen.clear()
    with (
        fetcher.spooling(out, lambda p: seen.append(p.read_bytes())),
        pytest.raises(DownloadLengthMismatchError),
        fetcher.download_file(url, len(data) - 1),
    ):
        pass
    assert seen == []
