"""The repository as the stock python-tuf client sees it over HTTP: refresh and download, per-segment
delegation patterns, hash bins (one bin fetched per lookup), the timestamp renewed; and the log invariant:
every metadata file's digest is a log entry before a snapshot or timestamp references it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import DelegatedRole, Metadata, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement
from overt.distribute.config import RoleSettings
from overt.distribute.evidence import unlogged_metadata, verify_logged_metadata
from overt.distribute.layout import RELEASE_PATHS
from overt.distribute.metadata import MetadataStatement
from overt.distribute.repository import NewTarget, Repository, RepositoryContext, renew_repository
from overt.errors import ConfigError, VerificationError
from overt.home import Home
from overt.keys.jurisdiction import TUF_METADATA_V1
from overt.keys.registry import KeyRecord, Role
from overt.keys.rotation import rotate
from overt.keys.signers import generate_file_key
from overt.tlog.client import directory_fetcher
from tests.distribute.conftest import Repo, Served


def logged_statements(h: Home) -> list[tuple[int, MetadataStatement]]:
    """Every tuf-metadata/v1 statement in the home's log, with its index, in log order."""
    log = h.log.read()
    try:
        size = log.tree_size
        entries = [log.tiles.entry(i) for i in range(size)]
    finally:
        log.close()
    out = []
    for i, entry in enumerate(entries):
        try:
            statement = Statement.from_bytes(Envelope.from_bytes(entry).payload)
        except Exception:
            continue
        if statement.predicate_type == TUF_METADATA_V1:
            out.append((i, MetadataStatement.from_statement(statement)))
    return out


def test_the_stock_client_refreshes_and_downloads_a_released_target(
    repo: Repo, served: Served, tmp_path: Path
) -> None:
    data = b"demo 1.0 release archive\n" * 100
    released = repo.release(data, "demo-1.0.tar.gz")
    assert released.path == "products/demo/1.0/demo-1.0.tar.gz"
    updater = served.updater(tmp_path / "client", repo.root_v1())
    updater.refresh()
    info = updater.get_targetinfo(released.path)
    assert info is not None and info.hashes["sha256"] == hashlib.sha256(data).hexdigest()
    assert info.custom["overt"]["provenance"]["logIndex"] == released.provenance_index
    assert info.custom["overt"]["version"] == "1.0" and info.custom["overt"]["channel"] == "stable"
    path = updater.download_target(info)
    assert Path(path).read_bytes() == data
    # Consistent snapshots: versioned metadata, hash-prefixed target, only the timestamp under a fixed name.
    assert "/metadata/timestamp.json" in served.requested
    assert "/metadata/2.snapshot.json" in served.requested and "/metadata/2.release.json" in served.requested
    digest = hashlib.sha256(data).hexdigest()
    assert f"/targets/products/demo/1.0/{digest}.demo-1.0.tar.gz" in served.requested


def test_patterns_match_per_segment_and_each_kind_of_target_resolves(
    repo: Repo, served: Served, tmp_path: Path
) -> None:
    # python-tuf matches each '/'-separated segment with fnmatch: 'products/*' does not reach a deeper path.
    shallow = DelegatedRole("r", [], 1, True, paths=["products/*"])
    assert not shallow.is_delegated_path("products/demo/1.0/x.tar.gz")
    targets = Metadata[Targets].from_bytes((repo.public / "metadata" / "1.targets.json").read_bytes())
    delegation = targets.signed.get_delegated_role("release")
    assert isinstance(delegation, DelegatedRole) and delegation.paths == list(RELEASE_PATHS)
    product = "products/demo/2.0/demo.tar.gz"
    database, delta = "avdb/main/7.avdb", "avdb/main/6-7.delta"
    for path in (product, database, delta):
        assert delegation.is_delegated_path(path), path
    assert not delegation.is_delegated_path("products/demo/demo.tar.gz")
    assert not delegation.is_delegated_path("elsewhere/demo/2.0/demo.tar.gz")
    with Repository.edit(repo.ctx) as r:
        r.add_targets(
            [
                NewTarget(path=p, data=p.encode(), custom={"overt": {"kind": "test"}})
                for p in (product, database, delta)
            ]
        )
    updater = served.updater(tmp_path / "client", repo.root_v1())
    for path in (product, database, delta):
        info = updater.get_targetinfo(path)
        assert info is not None, path
        assert Path(updater.download_target(info)).read_bytes() == path.encode()
    # A path outside every pattern is not found, even though the release role was asked for it.
    assert updater.get_targetinfo("elsewhere/demo/2.0/demo.tar.gz") is None


def _with_bins(repo: Repo, threshold: int, count: int) -> None:
    h = Home(repo.home.path)
    config = h.config.replace("tuf", {"release": RoleSettings(bins_threshold=threshold, bin_count=count)})
    config.write(h.paths.config)


def test_above_the_threshold_the_release_role_splits_into_bins_and_a_lookup_fetches_one(
    repo: Repo, served: Served, tmp_path: Path
) -> None:
    _with_bins(repo, threshold=3, count=4)
    paths = [f"products/p{i}/1.0/p{i}.tar.gz" for i in range(6)]
    with Repository.edit(repo.ctx) as r:
        first = r.add_targets([NewTarget(path=p, data=p.encode(), custom={}) for p in paths[:3]])
    assert [m.name for m in first.metadata] == ["2.release.json", "2.snapshot.json", "2.timestamp.json"]
    with Repository.edit(repo.ctx) as r:
        split = r.add_targets([NewTarget(path=paths[3], data=paths[3].encode(), custom={})])
        bins = r.state.succinct
        assert bins is not None and bins.number_of_bins == 4
        assert not r.state.release.signed.targets  # every target moved into a bin
    names = [m.name for m in split.metadata]
    assert names == [
        "3.release.json",
        "1.bin-0.json",
        "1.bin-1.json",
        "1.bin-2.json",
        "1.bin-3.json",
        "3.snapshot.json",
        "3.timestamp.json",
    ]
    with Repository.edit(repo.ctx) as r:
        later = r.add_targets([NewTarget(path=p, data=p.encode(), custom={}) for p in paths[4:]])
    assert {m.role for m in later.metadata} <= {"snapshot", "timestamp", *bins.get_roles()}
    updater = served.updater(tmp_path / "client", repo.root_v1())
    updater.refresh()
    assert not [p for p in served.requested if ".bin-" in p]  # refresh fetches no bin
    fetched_by_lookup = []
    for path in paths:
        before = len(served.requested)
        info = updater.get_targetinfo(path)
        assert info is not None and Path(updater.download_target(info)).read_bytes() == path.encode()
        fetched_by_lookup.append([p for p in served.requested[before:] if ".bin-" in p])
    own = [bins.get_role_for_target(p) for p in paths]
    # Each lookup fetches at most one bin, the one its path hashes to; ngclient keeps a bin once fetched, so
    # each bin a path lives in is fetched exactly once.
    for fetched, role in zip(fetched_by_lookup, own, strict=True):
        assert len(fetched) <= 1 and all(p.endswith(f".{role}.json") for p in fetched)
    assert sorted(p for f in fetched_by_lookup for p in f) == sorted(
        f"/metadata/{version}.{role}.json" for role, version in _bin_versions(repo).items() if role in own
    )
    assert not unlogged_metadata(directory_fetcher(repo.public), repo.home.log.policy())


def _bin_versions(repo: Repo) -> dict[str, int]:
    timestamp = Metadata[Timestamp].from_bytes((repo.public / "metadata" / "timestamp.json").read_bytes())
    name = f"{timestamp.signed.snapshot_meta.version}.snapshot.json"
    snapshot = Metadata[Snapshot].from_bytes((repo.public / "metadata" / name).read_bytes())
    return {
        f.removesuffix(".json"): m.version for f, m in snapshot.signed.meta.items() if f.startswith("bin-")
    }


def test_every_metadata_digest_is_logged_before_a_snapshot_or_timestamp_references_it(repo: Repo) -> None:
    _with_bins(repo, threshold=1, count=2)
    repo.release(b"one", "one.bin", product="one")
    repo.release(b"two", "two.bin", product="two")  # the split into bins
    renew_repository(repo.ctx)
    logged = logged_statements(repo.home)
    first_seen = {}
    for index, st in logged:
        first_seen.setdefault(st.name, (index, st))
    metadata = repo.public / "metadata"
    checked = 0
    for index, st in logged:
        if st.role == "snapshot":
            snap = Metadata[Snapshot].from_bytes((metadata / st.name).read_bytes())
            for file_name, meta in snap.signed.meta.items():
                name = f"{meta.version}.{file_name}"
                earlier, ref = first_seen[name]
                assert earlier < index, f"{name} is referenced by {st.name} before it is logged"
                assert (
                    ref.sha256
                    == meta.hashes["sha256"]
                    == hashlib.sha256((metadata / name).read_bytes()).hexdigest()
                )
                checked += 1
    timestamp = Metadata[Timestamp].from_bytes((metadata / "timestamp.json").read_bytes())
    snap_name = f"{timestamp.signed.snapshot_meta.version}.snapshot.json"
    ts_name = f"{timestamp.signed.version}.timestamp.json"
    assert first_seen[snap_name][0] < first_seen[ts_name][0]
    assert (
        first_seen[ts_name][1].sha256
        == hashlib.sha256((metadata / "timestamp.json").read_bytes()).hexdigest()
    )
    assert checked >= 6


def test_the_timestamp_is_re_signed_and_logged_and_the_client_follows(
    repo: Repo, served: Served, tmp_path: Path
) -> None:
    released = repo.release(b"payload", "x.bin")
    updater = served.updater(tmp_path / "client", repo.root_v1())
    updater.refresh()
    before = Metadata[Timestamp].from_bytes((repo.public / "metadata" / "timestamp.json").read_bytes()).signed
    change = renew_repository(repo.ctx)
    assert [m.role for m in change.metadata] == ["timestamp"]  # nothing else is near its expiry
    after = Metadata[Timestamp].from_bytes((repo.public / "metadata" / "timestamp.json").read_bytes()).signed
    assert after.version == before.version + 1 and after.snapshot_meta == before.snapshot_meta
    assert change.evidence_complete
    # A fresh client, and the one that saw the old timestamp, both accept the new one.
    again = served.updater(tmp_path / "client", repo.root_v1())
    again.refresh()
    assert again.get_targetinfo(released.path) is not None
    fresh = served.updater(tmp_path / "fresh", repo.root_v1())
    assert fresh.get_targetinfo(released.path) is not None


def test_renewal_re_signs_a_role_past_half_its_lifetime(repo: Repo) -> None:
    later = datetime.now(UTC) + timedelta(days=5)  # snapshot: 7 days, so past half
    ctx = RepositoryContext.of_home(repo.home, service=repo.home.signing_service(now=lambda: later))
    change = renew_repository(ctx)
    assert [m.role for m in change.metadata] == ["snapshot", "timestamp"]
    assert change.metadata[0].statement.expires.startswith(f"{(later + timedelta(days=7)):%Y-%m-%d}")


def test_a_targets_file_the_release_key_signed_without_logging_is_found(repo: Repo) -> None:
    """Hostile: the release, snapshot and timestamp keys sign a new release.json whose digest nobody logged
    (a targeted update). TUF accepts it; unlogged_metadata names it."""
    repo.release(b"honest", "honest.bin")
    policy = repo.home.log.policy()
    fetch = directory_fetcher(repo.public)
    assert unlogged_metadata(fetch, policy) == []
    h, metadata = repo.home, repo.public / "metadata"
    with Repository.edit(repo.ctx) as r:
        state = r.state
        release = state.release
        release.signed.version += 1
        release.signed.targets["products/evil/1.0/evil.bin"] = NewTarget(
            path="products/evil/1.0/evil.bin", data=b"x", custom={}
        ).info()
        release.sign(h.signer_for(r.key_for("release")).signer)
        data = release.to_bytes(JSONSerializer(compact=True))
        (metadata / f"{release.signed.version}.release.json").write_bytes(data)
        # The attacker also holds the snapshot and timestamp keys, so TUF itself is satisfied.
        state.snapshot.signed.meta["release.json"].version = release.signed.version
        state.snapshot.signed.meta["release.json"].hashes = {"sha256": hashlib.sha256(data).hexdigest()}
        state.snapshot.signed.meta["release.json"].length = len(data)
        state.snapshot.signed.version += 1
        state.snapshot.sign(h.signer_for(r.key_for("snapshot")).signer)
        snap = state.snapshot.to_bytes(JSONSerializer(compact=True))
        (metadata / f"{state.snapshot.signed.version}.snapshot.json").write_bytes(snap)
        state.timestamp.signed.snapshot_meta.version = state.snapshot.signed.version
        state.timestamp.signed.snapshot_meta.hashes = {"sha256": hashlib.sha256(snap).hexdigest()}
        state.timestamp.signed.snapshot_meta.length = len(snap)
        state.timestamp.signed.version += 1
        state.timestamp.sign(h.signer_for(r.key_for("timestamp")).signer)
        (metadata / "timestamp.json").write_bytes(state.timestamp.to_bytes(JSONSerializer(compact=True)))
    found = {u.name for u in unlogged_metadata(fetch, policy)}
    assert found == {"3.release.json", "3.snapshot.json", "3.timestamp.json"}
    # Replaying the evidence of the honest version does not help: the digest is not the served file's.
    honest = repo.public / "evidence" / "metadata" / "2.release.json"
    with pytest.raises(VerificationError, match="not the file the log holds"):
        verify_logged_metadata(
            "2.release.json",
            data,
            entry=(honest / "statement.dsse.json").read_bytes(),
            proof=(honest / "statement.tlog-proof").read_bytes(),
            policy=policy,
        )


def test_a_metadata_statement_cannot_be_signed_on_request(repo: Repo) -> None:
    """tuf-metadata/v1 is reserved: 'overt attest sign' with the release key is refused (and the refusal logged)."""
    from overt.errors import PolicyError

    statement = MetadataStatement(
        name="9.release.json",
        sha256="ab" * 32,
        length=1,
        role="release",
        version=9,
        expires="2030-01-01T00:00:00Z",
    ).to_statement()
    key = repo.home.registry.current(Role.RELEASE, datetime.now(UTC))
    with pytest.raises(PolicyError, match="never signed on request"):
        repo.home.signing_service().sign(key, statement)


def test_a_rotated_release_key_is_delegated_to_and_signs_the_bins(
    repo: Repo, served: Served, tmp_path: Path
) -> None:
    _with_bins(repo, threshold=1, count=2)
    first = repo.release(b"one", "one.bin", product="one")
    repo.release(b"two", "two.bin", product="two")  # bins now
    h = repo.home
    old = h.registry.current(Role.RELEASE, datetime.now(UTC))
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    draft = KeyRecord.create(
        key, role=Role.RELEASE, jurisdiction="CH", valid_from=datetime.now(UTC), valid_until=None, uri=uri
    )
    new, _ = rotate(h.signing_service(), h.registry, old, new_uri=uri, new_key_record=draft, reason="test")
    with pytest.raises(ConfigError, match="none of the release keys the metadata lists"):
        repo.release(b"three", "three.bin", product="three")
    change = renew_repository(repo.ctx)
    assert [m.role for m in change.metadata] == [
        "targets",
        "release",
        "bin-0",
        "bin-1",
        "snapshot",
        "timestamp",
    ]
    assert {m.keyid for m in change.metadata if m.role in ("release", "bin-0", "bin-1")} == {new.keyid}
    third = repo.release(b"three", "three.bin", product="three")
    assert {m.keyid for m in third.publication.metadata if m.role.startswith("bin-")} == {new.keyid}
    updater = served.updater(tmp_path / "client", repo.root_v1())
    for released in (first, third):
        assert updater.get_targetinfo(released.path) is not None
