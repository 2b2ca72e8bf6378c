"""The root: offline k-of-n keys outside the home, the signing ceremony (below threshold nothing is
published; a key of neither version is refused) and rotation by chained versions, followed by the stock client."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root

from overt.distribute.repository import RepositoryContext
from overt.distribute.root import init_repository, prepare_root, sign_root
from overt.errors import ConfigError, PolicyError, UsageError
from overt.home import Home
from overt.keys.registry import Role
from overt.keys.signers import generate_file_key
from tests.distribute.conftest import ROOT_KEYS, ROOT_THRESHOLD, Repo, Served, add_key


def key_files(repo: Repo) -> list[Path]:
    return [Path(r.uri.removeprefix("file2:")) for r in repo.root_keys.records]


def test_root_keys_are_generated_outside_the_home_and_never_kept_in_it(repo: Repo) -> None:
    files = key_files(repo)
    assert len(files) == ROOT_KEYS and all(f.is_file() and f.stat().st_mode & 0o077 == 0 for f in files)
    home = repo.home.path.resolve()
    assert all(home not in f.resolve().parents for f in files)
    root = Metadata[Root].from_bytes(repo.root_v1()).signed
    assert sorted(root.roles["root"].keyids) == sorted(r.keyid for r in repo.root_keys.records)
    assert root.roles["root"].threshold == ROOT_THRESHOLD and root.consistent_snapshot
    assert not list(repo.home.path.rglob(f"{repo.root_keys.records[0].keyid}.pem"))


def test_root_keys_inside_the_home_are_refused(conveyor: Home, tmp_path: Path) -> None:
    for role in (Role.TARGETS, Role.SNAPSHOT, Role.TIMESTAMP):
        add_key(conveyor, role)
    ctx = RepositoryContext.of_home(conveyor)
    with pytest.raises(UsageError, match="inside the home"):
        init_repository(ctx, root_keys_dir=conveyor.path / "root-keys", count=3, threshold=2)
    with pytest.raises(UsageError, match="threshold"):
        init_repository(ctx, root_keys_dir=tmp_path / "k", count=2, threshold=3)
    assert not (conveyor.paths.public / "tuf" / "metadata").exists()


def test_a_repository_needs_its_online_keys_and_is_created_once(conveyor: Home, tmp_path: Path) -> None:
    ctx = RepositoryContext.of_home(conveyor)
    with pytest.raises(ConfigError, match="no active targets key"):
        init_repository(ctx, root_keys_dir=tmp_path / "k", count=1, threshold=1)
    for role in (Role.TARGETS, Role.SNAPSHOT, Role.TIMESTAMP):
        add_key(conveyor, role)
    init_repository(ctx, root_keys_dir=tmp_path / "k2", count=1, threshold=1)
    with pytest.raises(ConfigError, match="already has a TUF repository"):
        init_repository(ctx, root_keys_dir=tmp_path / "k3", count=1, threshold=1)


def test_below_threshold_nothing_is_published_and_a_wrong_key_is_refused(repo: Repo) -> None:
    ctx = repo.ctx
    status, _ = prepare_root(ctx)
    assert status.version == 2 and not status.published and status.signed_by == ()
    staged = status.staged
    first, second, _ = key_files(repo)
    one = sign_root(ctx, first)
    assert not one.published and one.missing_previous == 1 and one.missing_new == 1
    assert not (repo.public / "metadata" / "2.root.json").exists()
    # The same holder twice still counts once.
    assert sign_root(ctx, first).missing_previous == 1
    # A key of neither version: refused, and the staged file keeps only the valid signature.
    _, stranger = generate_file_key(repo.tmp / "stranger", "ed25519")
    before = staged.read_bytes()
    with pytest.raises(PolicyError, match="root key of neither version"):
        sign_root(ctx, repo.tmp / "stranger" / f"{stranger.keyid}.pem")
    assert staged.read_bytes() == before
    done = sign_root(ctx, second)
    assert done.published and done.missing_previous == 0 and done.publication is not None
    assert [m.name for m in done.publication.metadata] == [
        "2.root.json",
        "2.snapshot.json",
        "2.timestamp.json",
    ]
    assert (repo.public / "metadata" / "2.root.json").is_file() and not staged.exists()
    with pytest.raises(ConfigError, match="no root version is being signed"):
        sign_root(ctx, first)


def test_root_rotation_to_new_keys_chains_and_the_client_follows_it(
    repo: Repo, served: Served, tmp_path: Path
) -> None:
    released = repo.release(b"before the rotation", "a.bin")
    client = tmp_path / "client"
    served.updater(client, repo.root_v1()).refresh()
    ctx = repo.ctx
    # New root keys (2 of 2), and a rotated timestamp key: the new root lists the home's active one.
    old_timestamp = repo.home.registry.current(Role.TIMESTAMP, ctx.now())
    repo.home.registry.save(replace(old_timestamp, valid_until=ctx.now()))
    new_timestamp = add_key(repo.home, Role.TIMESTAMP)
    status, new_keys = prepare_root(ctx, new_keys_dir=tmp_path / "new-root", count=2, threshold=2)
    assert new_keys is not None and status.missing_previous == 2 and status.missing_new == 2
    new_files = [Path(r.uri.removeprefix("file2:")) for r in new_keys.records]
    old_files = key_files(repo)
    # The threshold of the old keys alone is not enough, nor of the new keys alone.
    sign_root(ctx, old_files[0])
    partial = sign_root(ctx, old_files[1])
    assert not partial.published and partial.missing_previous == 0 and partial.missing_new == 2
    sign_root(ctx, new_files[0])
    done = sign_root(ctx, new_files[1])
    assert done.published
    root2 = Metadata[Root].from_bytes((repo.public / "metadata" / "2.root.json").read_bytes()).signed
    assert root2.roles["timestamp"].keyids == [new_timestamp.keyid]
    # A client that trusted version 1 walks to version 2 and accepts the timestamp the new key signed.
    updater = served.updater(client, repo.root_v1())
    updater.refresh()
    assert updater.get_targetinfo(released.path) is not None
    assert "/metadata/2.root.json" in served.requested
    # Version 3 keeps version 2's keys: the retired keys can no longer sign at all.
    prepare_root(repo.ctx)
    for f in old_files:
        with pytest.raises(PolicyError, match="root key of neither version"):
            sign_root(repo.ctx, f)
    assert sign_root(repo.ctx, new_files[0]).missing_previous == 1
    assert sign_root(repo.ctx, new_files[1]).published
    assert (repo.public / "metadata" / "3.root.json").is_file()
