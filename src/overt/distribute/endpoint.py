"""``overt agent update``: the stock TUF client, then overt's checks, then an atomic install (issue 12, point 5).

For each product channel or database the pinned policy follows (:mod:`overt.distribute.trust`):

1. **TUF**: the stock ``tuf.ngclient.Updater``, bootstrapped from the pinned root, refreshes (root chain,
   timestamp, snapshot, targets: signatures, expiry, rollback and consistent snapshots are TUF's), looks up
   the channel index (:mod:`overt.distribute.channels`) and the target it names, and downloads it
   (``Updater.download_target``): through a delta for a database when one leads from the installed version
   (a delta that does not rebuild the exact signed digest falls back to the full database), else the full
   target. The client works on a copy of its trusted metadata, which replaces it only when every followed
   item's metadata was proved logged: metadata TUF accepts and the log does not is never trusted again;
2.-5. the checks of :mod:`overt.distribute.assurance`, on the exact metadata bytes the client trusted (its
   local copies in ``tuf/metadata/``), under the log's head, fetched and checked for the quorum and for
   consistency with the last head this agent stored;
6. the install (:mod:`overt.distribute.installer`) and the post-install hook.

A target already installed is not fetched again; the run still checks that the metadata saying so is logged
and the log's head and its freshness, so an endpoint told "nothing new" by metadata made for it alone, or by
a frozen view of the log, says so. Any failure keeps the installed version.
The outcome of each followed item is a :class:`FollowOutcome`; the run's exit status is 1 if any was refused
on evidence or policy, else 2 if any failed for an operational reason (a server down, a full disk), else 0.
Errors of the TUF client are sorted the same way: bad or expired metadata and a wrong target are refusals
(``check`` ``tuf``), a download that fails is operational.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import urllib3
from packaging.version import InvalidVersion, Version
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Key, Metadata, Root, TargetFile, Targets
from tuf.ngclient import Updater, Urllib3Fetcher

from overt.atomic import atomic_write
from overt.attest.statement import format_timestamp
from overt.avdb.delta import apply_delta
from overt.avdb.install import installed as installed_database
from overt.distribute.agentdir import (
    AgentLayout,
    TrustRecord,
    agent_lock,
    load_pinned,
    read_record,
    remove_quietly,
)
from overt.distribute.assurance import (
    Assurance,
    Candidate,
    LogHead,
    Passed,
    UsedMetadata,
    assure,
    bundled_evidence,
    checkpoints_consistent,
    cosignatures_fresh,
    evidence_paths,
    metadata_bundles,
    metadata_logged,
    version_forward,
)
from overt.distribute.channels import CARRIES_AVDB, CARRIES_PRODUCT, ChannelIndex
from overt.distribute.evidence import (
    fetch_url,
    fetcher_source,
    http_source,
    refused,
    remember_verified_checkpoint,
)
from overt.distribute.installer import (
    HookResult,
    hook_error,
    install_target,
    installed_version,
    product_intact,
    run_hook,
    start_sync,
    sync_file,
)
from overt.distribute.layout import channel_path, database_channel_path, delta_path, metadata_name
from overt.distribute.release import AVDB, AVDB_DELTA, PRODUCT, overt_custom
from overt.distribute.trust import DATABASE, Follow, TrustPolicy
from overt.errors import Error, FormatError, StorageError, TransportError, VerificationError
from overt.tlog.client import MAX_BUNDLE_BYTES, MAX_CHECKPOINT_BYTES, Fetch, LogClient, http_fetcher
from overt.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, tile_width

INSTALLED, CURRENT, NOTHING, REFUSED, FAILED = "installed", "current", "nothing released", "refused", "failed"
T = TypeVar("T")


def _reason(e: BaseException) -> str:
    """What went wrong, for a reader: python-tuf raises SlowRetrievalError with no message for any timeout
    or refused connection, so the urllib3 error beneath it (the URL, "Connection refused") is named too."""
    parts: list[str] = []
    cause: BaseException | None = e
    while cause is not None and len(parts) < 3:
        text = str(cause).strip()
        parts.append(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return "; ".join(parts)


def _tuf(call: Callable[[], T]) -> T:
    """Run one ngclient call, its errors sorted into overt's families (module docstring)."""
    try:
        return call()
    except tuf_errors.DownloadLengthMismatchError as e:
        raise refused("tuf", f"the repository served more bytes than the signed metadata allows: {e}") from e
    except tuf_errors.DownloadError as e:
        raise TransportError(f"the TUF repository could not be read: {_reason(e)}", check="tuf") from e
    except tuf_errors.RepositoryError as e:
        raise refused("tuf", f"TUF refused the repository: {type(e).__name__}: {e}") from e
    except urllib3.exceptions.HTTPError as e:  # raised by the fetcher mid-stream, outside its own wrapping
        raise TransportError(
            f"the TUF repository could not be read: {type(e).__name__}: {e}", check="tuf"
        ) from e
    except OSError as e:
        raise StorageError(f"cannot write the TUF client's files: {e.strerror or e}", check="tuf") from e


def index_path(follow: Follow) -> str:
    """Where the channel index of ``follow`` is published."""
    if follow.kind == DATABASE:
        return database_channel_path(follow.name)
    return channel_path(follow.name, follow.channel)


@dataclass(slots=True)
class Timings:
    """Milliseconds spent in each part of one item's update, on the updating thread: work done in the
    background meanwhile (the log's head during TUF's refresh, reading the evidence during the download)
    counts only where the update waits for it."""

    tuf_ms: float = 0.0
    evidence_ms: float = 0.0
    install_ms: float = 0.0
    evidence_work_ms: float = 0.0  # how long the evidence checks ran, in the background or not

    @contextmanager
    def measure(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            name = f"{part}_ms"
            setattr(self, name, getattr(self, name) + (time.perf_counter() - start) * 1000)

    def to_dict(self) -> dict[str, float]:
        return {
            k: round(getattr(self, k), 3) for k in ("tuf_ms", "evidence_ms", "install_ms", "evidence_work_ms")
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowOutcome:
    """What one update did for one followed item, and what is installed after it."""

    follow: Follow
    status: str  # INSTALLED, CURRENT, NOTHING, REFUSED or FAILED
    offered: str | None  # the version the repository's channel index names
    record: TrustRecord | None  # what is installed now (unchanged unless INSTALLED)
    checks: tuple[Passed, ...] = ()
    error: Error | None = None
    delta: str = ""  # how the delta went: "" (none offered), "applied", or why it fell back
    hook: HookResult | None = None
    timings: Timings = field(default_factory=Timings)

    @property
    def check(self) -> str | None:
        """The check that failed."""
        return None if self.error is None else str(self.error.evidence.get("check", "")) or None

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "follow": self.follow.to_dict(),
            "status": self.status,
            "offered": self.offered,
            "installed": None if self.record is None else self.record.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "delta": self.delta,
            "hook": None if self.hook is None else self.hook.to_dict(),
            "timings": self.timings.to_dict(),
        }
        if self.error is not None:
            out["failed"] = {"check": self.check, "message": str(self.error), "evidence": self.error.evidence}
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointUpdate:
    """One ``overt agent update``: the outcome for each followed item."""

    outcomes: tuple[FollowOutcome, ...]
    policy_sha256: str

    @property
    def exit_code(self) -> int:
        codes = {o.exit_code for o in self.outcomes}
        return 1 if 1 in codes else 2 if codes - {0} else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_sha256": self.policy_sha256,
            "outcomes": [o.to_dict() for o in self.outcomes],
            "exit_code": self.exit_code,
        }


def _tiles_once(fetch: Fetch) -> Fetch:
    """``fetch``, each tile fetched once per run: the consistency proofs of several checkpoints share tiles
    (a tile path names immutable content; the checkpoint is never cached)."""
    tiles: dict[str, bytes] = {}

    def get(rel: str) -> bytes:
        if not rel.startswith("tile/"):
            return fetch(rel)
        if rel not in tiles:
            tiles[rel] = fetch(rel)
        return tiles[rel]

    return get


# The largest download the TUF client holds in memory (see _Fetcher); a larger one goes to a temporary file.
MAX_IN_MEMORY = 64 << 20


class _Fetcher(Urllib3Fetcher):
    """The TUF client's default fetcher, except that a download of at most :data:`MAX_IN_MEMORY` bytes (the
    length the signed metadata allows) is held in memory instead of a temporary file on disk: the client
    reads it back to check its length and hashes and copies it to the target's file, and for a 10 MiB
    artifact the temporary file's writes and reads were about a quarter of that download's processor time
    (measured with ``python -m benchmarks.update``; the target's file is still synced). The same limit is
    enforced as :meth:`~tuf.ngclient.FetcherInterface.download_file` enforces it, and every check of the
    downloaded bytes is still the client's own.

    Inside :meth:`spooling`, the next download held in memory on that thread is also written, chunk by
    chunk as it arrives, to a file (the very bytes the client then checks, in the same order), and a
    callback is told once all of them are written: the agent starts the file's fsync then, while the client
    hashes what it holds, instead of after the client has copied it out."""

    def __init__(self) -> None:
        super().__init__()
        self._spool = threading.local()

    @contextmanager
    def spooling(self, path: Path, written: Callable[[Path], None]) -> Iterator[None]:
        self._spool.to = (path, written)
        try:
            yield
        finally:
            self._spool.to = None

    @contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        if max_length > MAX_IN_MEMORY:
            with super().download_file(url, max_length) as on_disk:
                yield on_disk
            return
        spool: tuple[Path, Callable[[Path], None]] | None = getattr(self._spool, "to", None)
        self._spool.to = None  # for one download only
        received = 0
        with io.BytesIO() as held, ExitStack() as files:
            out = None if spool is None else files.enter_context(spool[0].open("wb"))
            for chunk in self.fetch(url):
                received += len(chunk)
                if received > max_length:
                    raise tuf_errors.DownloadLengthMismatchError(
                        f"Downloaded {received} bytes exceeding the maximum allowed length of {max_length}"
                    )
                held.write(chunk)
                if out is not None:
                    out.write(chunk)
            if spool is not None:
                files.close()  # written and closed: its fsync may start
                spool[1](spool[0])
            held.seek(0)
            yield held


def _log_fetch(log_url: str, fetcher: Urllib3Fetcher) -> Fetch:
    """The log's resources (:data:`~overt.tlog.client.Fetch`) through the TUF client's fetcher."""
    base = log_url.rstrip("/") + "/"

    def get(rel: str) -> bytes:
        url = base + rel
        data = fetch_url(fetcher, url, MAX_CHECKPOINT_BYTES if rel == "checkpoint" else MAX_BUNDLE_BYTES)
        if data is None:
            raise TransportError(f"GET {url} answered 404", url=url, status=404)
        return data

    return get


def _read_edge_tiles(log: LogClient, tree_size: int) -> None:
    """Read ahead the tiles on the right edge of the tree (the last one of each level): a consistency proof
    from a checkpoint of the last few entries to the head reads them, and reading them here, while TUF
    refreshes, spares the checks a round trip. Only a guess: a tile that cannot be read now is read when a
    proof needs it, and every tile is checked by the proof that uses it (:func:`_tiles_once` keeps them)."""
    reader = log.reader(tree_size)
    level = 0
    while tree_size >> (TILE_HEIGHT * level):
        index = (tree_size >> (TILE_HEIGHT * level)) // TILE_WIDTH
        if tile_width(level, index, tree_size):
            try:
                reader.tile(level, index)
            except (Error, ValueError):
                return
        level += 1


def _begin_metadata(layout: AgentLayout) -> Path:
    """``tuf/metadata.next``: a copy of the trusted metadata for this run's TUF client to update. It becomes
    the trusted copy only by :func:`_commit_metadata`, so metadata that TUF accepts but the log does not
    (a targeted update, signed with the online keys and never logged) never becomes what the next run starts
    from. A commit cut short between its two renames is finished first."""
    trusted, following, previous = layout.tuf_metadata, layout.tuf_next, layout.tuf_previous
    try:
        if not trusted.exists() and previous.exists():
            previous.rename(trusted)
        shutil.rmtree(previous, ignore_errors=True)
        shutil.rmtree(following, ignore_errors=True)
        if trusted.exists():
            _link_tree(trusted, following)
        else:
            following.mkdir(parents=True)
    except OSError as e:
        raise StorageError(
            f"cannot prepare the TUF client's metadata in {following}: {e.strerror or e}"
        ) from e
    return following


def _link_tree(source: Path, copy: Path) -> None:
    """``copy`` made a copy of ``source`` whose files are hard links: the stock ngclient never writes a
    metadata file in place (it writes a temporary file and renames it over the old name, and replaces the
    ``root.json`` symlink), so nothing it does in ``copy`` changes a file of ``source``. Where hard links
    are not possible, the files are copied."""
    try:
        shutil.copytree(source, copy, symlinks=True, copy_function=os.link)
    except OSError:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source, copy, symlinks=True)


def _commit_metadata(layout: AgentLayout) -> None:
    """This run's metadata, every file of it proved logged, becomes the trusted copy."""
    trusted, following, previous = layout.tuf_metadata, layout.tuf_next, layout.tuf_previous
    try:
        if trusted.exists():
            trusted.rename(previous)
        following.rename(trusted)
        shutil.rmtree(previous, ignore_errors=True)
    except OSError as e:
        raise StorageError(f"cannot store the TUF client's metadata in {trusted}: {e.strerror or e}") from e


def _proved_logged(outcome: FollowOutcome) -> bool:
    return any(c.check == "metadata" for c in outcome.checks)


class _Session:
    """One update run: the TUF client, the evidence source and the log client, each made once."""

    def __init__(self, layout: AgentLayout, trust: TrustPolicy, http: httpx.Client | None) -> None:
        self.layout = layout
        self.trust = trust
        self.metadata = _begin_metadata(layout)
        layout.downloads.mkdir(parents=True, exist_ok=True)
        base = trust.repository_url
        self.fetcher = _Fetcher()  # the client's default fetcher, downloads in memory; also for the log
        # Its pool keeps one connection per host; the evidence read alongside a download opens another,
        # which urllib3 then drops with a warning on stderr. Dropping it is right; the warning is noise.
        pool_log = logging.getLogger("urllib3.connectionpool")
        if pool_log.level != logging.ERROR:  # setting it clears every logger's cache: once per process
            pool_log.setLevel(logging.ERROR)
        self.updater = _tuf(
            lambda: Updater(
                metadata_dir=str(self.metadata),
                metadata_base_url=f"{base}/metadata/",
                target_dir=str(layout.downloads),
                target_base_url=f"{base}/targets/",
                bootstrap=trust.root,
                fetcher=self.fetcher,
            )
        )
        if http is not None:
            self.get, log = http_source(base, http), http_fetcher(trust.log_url, http)
        else:  # the TUF client's connection pool: the log and the evidence are often on its server
            self.get, log = fetcher_source(base, self.fetcher), _log_fetch(trust.log_url, self.fetcher)
        self.log = LogClient(_tiles_once(log), trust.log_policy, layout.log_state)
        # In the background: the log's head while TUF refreshes, the evidence files while the target
        # downloads, the download's fsync and the evidence checks while the TUF client checks it.
        self.pool = ThreadPoolExecutor(max_workers=4)
        self._refreshed: Error | bool = False
        self._head: Future[LogHead] | None = None
        self._syncs: dict[Path, Future[OSError | None]] = {}

    def read_head_ahead(self) -> None:
        """Start reading the log's head (:meth:`head`) in the background."""
        if self._head is None:
            self._head = self.pool.submit(self._read_head)

    def refresh(self) -> None:
        """TUF's refresh, once per run (ngclient allows one): a failure fails every item alike."""
        if isinstance(self._refreshed, Error):
            raise self._refreshed
        if not self._refreshed:
            try:
                _tuf(self.updater.refresh)
            except Error as e:
                self._refreshed = e
                raise
            self._refreshed = True

    def lookup(self, path: str) -> TargetFile | None:
        return _tuf(lambda: self.updater.get_targetinfo(path))

    def download(
        self, info: TargetFile, *, sync: bool = False, arrived: Callable[[], None] | None = None
    ) -> Path:
        """The target, downloaded and verified by the TUF client (``Updater.download_target``: at most the
        signed length read, then the exact length and every signed hash), in ``tuf/downloads/<sha256>``.

        A target held in memory (:class:`_Fetcher`) is written there by the fetcher as it arrives, and the
        client's own copy of what it verified goes to the null device: the file is the bytes it verified,
        and is written once. With ``sync``, its fsync (:func:`sync_file`, whose result :meth:`synced`
        gives) starts as soon as it is written, while the client checks it, and then ``arrived`` is
        called; a download that fails removes the file."""
        where = self.layout.downloads / info.hashes["sha256"]
        spooled = info.length <= MAX_IN_MEMORY

        def written(path: Path) -> None:
            if sync:
                self._syncs[path] = self.pool.submit(sync_file, path)
            if arrived is not None:
                arrived()

        try:
            with self.fetcher.spooling(where, written):
                out = os.devnull if spooled else str(where)
                _tuf(lambda: self.updater.download_target(info, filepath=out))
            if not spooled:
                written(where)
        except Error:
            remove_quietly(where)
            self._syncs.pop(where, None)
            raise
        return where

    def synced(self, path: Path) -> Future[OSError | None] | None:
        """The fsync :meth:`download` started for ``path`` (None: none was)."""
        return self._syncs.pop(path, None)

    def close(self) -> None:
        """Wait for the background work (the connections are the TUF client's, left to it as ngclient
        leaves them)."""
        self.pool.shutdown(wait=True)

    def head(self) -> LogHead:
        """The log's head: quorum, and consistency with the head stored last time (which it then replaces).
        Read once per run; its failure is raised here, where the update relies on it."""
        self.read_head_ahead()
        assert self._head is not None
        return self._head.result()

    def _read_head(self) -> LogHead:
        try:
            tree = self.log.update()
        except (VerificationError, FormatError) as e:
            raise refused("log", f"the log's checkpoint does not verify: {e}", **e.evidence) from e
        # update() verified it as verify_checkpoint does, under this very policy object: the proofs whose
        # checkpoint it is (the newest ones, often) are not checked against the same signatures again.
        remember_verified_checkpoint(tree.checkpoint, self.trust.log_policy, tree.cosigners)
        _read_edge_tiles(self.log, tree.checkpoint.checkpoint.tree_size)
        return LogHead(
            checkpoint=tree.checkpoint,
            cosigners=tree.cosigners,
            previous_size=tree.previous_size,
            client=self.log,
        )

    def used_metadata(self, paths: Sequence[str]) -> list[UsedMetadata]:
        """The client's local copy of every metadata file the lookups of ``paths`` went through."""
        md = self.metadata
        try:
            raw = {
                role: (md / f"{role}.json").read_bytes()
                for role in ("root", "timestamp", "snapshot", "targets", "release")
            }
            parsed: dict[str, Any] = {role: Metadata.from_bytes(data).signed for role, data in raw.items()}
            root, targets, release = parsed["root"], parsed["targets"], parsed["release"]
            if not (isinstance(root, Root) and isinstance(targets, Targets) and isinstance(release, Targets)):
                raise ValueError("a file holds metadata of another role")
            keys: dict[str, list[Key]] = {
                r: [root.get_key(k) for k in root.roles[r].keyids]
                for r in ("root", "timestamp", "snapshot", "targets")
            }
            delegated = targets.get_delegated_role("release")
            assert targets.delegations is not None
            keys["release"] = [targets.delegations.keys[k] for k in delegated.keyids]
            succinct = None if release.delegations is None else release.delegations.succinct_roles
            if succinct is not None:
                assert release.delegations is not None
                for role in sorted({succinct.get_role_for_target(p) for p in paths}):
                    raw[role] = (md / f"{role}.json").read_bytes()
                    parsed[role] = Metadata.from_bytes(raw[role]).signed
                    keys[role] = [release.delegations.keys[k] for k in succinct.keyids]
            return [
                UsedMetadata(
                    role=role,
                    name=metadata_name(role, parsed[role].version),
                    data=data,
                    keys=tuple(keys[role]),
                )
                for role, data in raw.items()
            ]
        except OSError as e:
            raise StorageError(f"cannot read the TUF client's trusted metadata in {md}: {e.strerror}") from e
        except (tuf_errors.RepositoryError, ValueError, KeyError) as e:
            raise StorageError(f"the TUF client's trusted metadata in {md} is damaged: {e}") from e


def _check_version(follow: Follow, version: str) -> None:
    """A version as ``overt release`` writes one: a database's a decimal number, a product's PEP 440 in its
    normal spelling. Anything else (a path such as ``../../etc``, which would be installed as a directory) is
    refused before it is compared or used."""
    try:
        good = str(int(version)) == version if follow.kind == DATABASE else str(Version(version)) == version
    except (ValueError, InvalidVersion):
        good = False
    if not good:
        raise refused("channel", f"the offered version {version!r} is not a version overt releases")


def _candidate(follow: Follow, info: TargetFile, index: ChannelIndex) -> Candidate:
    """The target the index names, as TUF verified it; its ``custom`` must agree with the index."""
    o = overt_custom(info)
    sha256 = info.hashes.get("sha256", "")
    version = str(o.get("version"))
    kind = AVDB if follow.kind == DATABASE else PRODUCT
    names = (o.get("database"),) if follow.kind == DATABASE else (o.get("product"), o.get("channel"))
    wanted = (follow.name,) if follow.kind == DATABASE else (follow.name, follow.channel)
    _check_version(follow, version)
    if o.get("kind") != kind or names != wanted or version != index.version or sha256 != index.sha256:
        raise refused(
            "channel",
            f"the channel index names {index.target} version {index.version} (sha256 {index.sha256}), but the "
            f"target's own metadata says {o.get('kind')} version {version} (sha256 {sha256})",
        )
    return Candidate(
        kind=follow.kind,
        name=follow.name,
        channel=follow.channel,
        version=version,
        path=info.path,
        sha256=sha256,
        length=info.length,
        custom=o,
    )


def _read_index(session: _Session, follow: Follow) -> ChannelIndex | None:
    info = session.lookup(index_path(follow))
    if info is None:
        return None
    try:
        index = ChannelIndex.from_custom(overt_custom(info))
    except FormatError as e:
        raise refused("channel", f"the channel index {info.path} is malformed: {e}") from e
    carries = CARRIES_AVDB if follow.kind == DATABASE else CARRIES_PRODUCT
    if (index.carries, index.name, index.channel) != (carries, follow.name, follow.channel):
        raise refused("channel", f"the channel index {info.path} is about {index.carries} {index.name}")
    return index


def _delta_lookup(
    session: _Session, follow: Follow, candidate: Candidate, installed: tuple[str, str] | None
) -> tuple[str, TargetFile | None] | None:
    """For a database installed at another version: the delta's path and its target info (None if the
    repository publishes none); None when no delta can apply."""
    if follow.kind != DATABASE or installed is None:
        return None
    path = delta_path(follow.name, int(installed[0]), int(candidate.version))
    return path, session.lookup(path)


def _fetch(
    session: _Session,
    candidate: Candidate,
    info: TargetFile,
    delta: tuple[str, TargetFile | None] | None,
    arrived: Callable[[], None],
) -> tuple[Path, str]:
    """The target downloaded to ``tuf/downloads/``, through ``delta`` if one was found and rebuilds its exact
    signed digest; (the file, how the delta went: "" none tried, "applied", or why it fell back).
    ``arrived`` is called once the full target's bytes are all here (:meth:`_Session.download`)."""
    if delta is None:
        return session.download(info, sync=True, arrived=arrived), ""
    path, found = delta
    how = "no delta from the installed version"
    if found is not None:
        o = overt_custom(found)
        try:
            if (
                o.get("target") != candidate.path
                or o.get("targetSha256") != candidate.sha256
                or o.get("kind") != AVDB_DELTA
            ):
                raise VerificationError(f"{path} is not a delta to {candidate.path}")
            downloaded = session.download(found)
            try:
                old = installed_database(session.layout.root, candidate.name)
                data = apply_delta(old, downloaded.read_bytes(), candidate.sha256)
            finally:
                remove_quietly(downloaded)
            out = session.layout.downloads / candidate.sha256
            atomic_write(out, data, durable=False)
            return out, "applied"
        except (FormatError, VerificationError) as e:
            how = f"fell back to the full database: the delta {path} failed: {e}"
    return session.download(info, sync=True, arrived=arrived), how


@dataclass(slots=True)
class _Run:
    """What one item's update has found so far, so that a refusal reports it too."""

    follow: Follow
    record: TrustRecord | None
    timings: Timings = field(default_factory=Timings)
    offered: str | None = None
    checks: list[Passed] = field(default_factory=list)

    def outcome(self, status: str, **more: Any) -> FollowOutcome:
        return FollowOutcome(
            follow=self.follow,
            status=status,
            offered=self.offered,
            record=self.record,
            checks=tuple(self.checks),
            timings=self.timings,
            **more,
        )


def _update_one(session: _Session, follow: Follow, now: datetime) -> FollowOutcome:
    run = _Run(follow=follow, record=read_record(session.layout, follow))
    try:
        installed = installed_version(session.layout, follow, run.record)
        session.read_head_ahead()  # while TUF refreshes
        with run.timings.measure("tuf"):
            session.refresh()
            index = _read_index(session, follow)
        if index is None:
            _confirm(session, run, index_path(follow), f"{index_path(follow)} is not released", now)
            return run.outcome(NOTHING)
        run.offered = index.version
        if installed is not None and installed[1] == index.sha256 and _intact(follow, run.record):
            detail = f"{index.path} names the installed version {index.version}"
            _confirm(session, run, index.path, detail, now)
            return run.outcome(CURRENT)
        return _install_new(session, run, index, installed, now)
    except Error as e:
        return run.outcome(REFUSED if e.exit_code == 1 else FAILED, error=e)


def _intact(follow: Follow, record: TrustRecord | None) -> bool:
    """A product's installed file is still the trusted one (a database is re-checked by what 'overt scan'
    loads, against its provenance)."""
    return follow.kind == DATABASE or (record is not None and product_intact(record))


def _confirm(session: _Session, run: _Run, path: str, tuf: str, now: datetime) -> None:
    """Nothing to install: the metadata that says so must still be logged (an update withheld from one
    endpoint by metadata made for it alone is refused) and the log's head fresh (a frozen view is told apart
    from a quiet channel)."""
    run.checks.append(Passed(check="tuf", detail=tuf))
    with run.timings.measure("evidence"):
        head = session.head()
        used = session.used_metadata([path])
        metadata = metadata_logged(metadata_bundles(session.get, used), used, session.trust.log_policy)
        consistent = checkpoints_consistent(head, [e for _, e in metadata])
        at = cosignatures_fresh(head.checkpoint, session.trust, now)
    names = ", ".join(name for name, _ in metadata)
    run.checks.append(
        Passed(check="metadata", detail=f"{len(metadata)} metadata files logged by digest: {names}")
    )
    run.checks.append(Passed(check="consistency", detail=consistent))
    size = head.checkpoint.checkpoint.tree_size
    run.checks.append(
        Passed(
            check="freshness", detail=f"log head at size {size}, quorum cosigned at {format_timestamp(at)}"
        )
    )


class _Checks:
    """Steps 2-5 (:func:`~overt.distribute.assurance.assure`) for one candidate, on the session's pool: started
    as the target's bytes have all arrived (:meth:`start`), so that they run while the TUF client hashes
    them (hashing leaves the interpreter's lock free; the checks need it), or else when their result is
    asked for. What they pass is kept in :attr:`passed`, apart from the run's checks until the TUF client
    has accepted the target."""

    def __init__(
        self, pool: ThreadPoolExecutor, read: Future[None], call: Callable[[list[Passed]], Assurance]
    ) -> None:
        self._pool = pool
        self._read = read
        self._call = call
        self.passed: list[Passed] = []
        self.work_ms = 0.0
        self._future: Future[Assurance] | None = None

    def start(self) -> None:
        if self._future is None:
            self._future = self._pool.submit(self._run)

    def _run(self) -> Assurance:
        self._read.result()  # the evidence files read ahead (each one's failure is raised where it is used)
        start = time.perf_counter()
        try:
            return self._call(self.passed)
        finally:
            self.work_ms = (time.perf_counter() - start) * 1000

    def result(self) -> Assurance:
        self.start()
        assert self._future is not None
        return self._future.result()


def _install_new(
    session: _Session, run: _Run, index: ChannelIndex, installed: tuple[str, str] | None, now: datetime
) -> FollowOutcome:
    """Steps 1 (the rest of it) to 6 for the version the channel index names. The log's head (read in the
    background since the run began) must verify before the download starts; the evidence files are read
    through their bundles (:mod:`overt.distribute.bundles`) in the background while the target downloads,
    and checked (:class:`_Checks`) while the TUF client checks the target, while the downloaded file is
    synced to disk (its install waits for that fsync, and fails with it, before any rename). A failure is
    reported in the order the steps are numbered: the TUF client's before any of the evidence."""
    with run.timings.measure("tuf"):
        info = session.lookup(index.target)
        if info is None:
            raise refused(
                "channel", f"the channel index names {index.target}, which the signed metadata does not list"
            )
        candidate = _candidate(run.follow, info, index)
        version_forward(candidate, installed)  # a rollback is refused before anything is downloaded
        delta = _delta_lookup(session, run.follow, candidate, installed)
        used = session.used_metadata([index.path, candidate.path, *([delta[0]] if delta else [])])
    with run.timings.measure("evidence"):
        head = session.head()
    # The evidence files are read while the target downloads (network waits: checking them then would
    # compete with the download for the processor), and checked once it has arrived.
    evidence = bundled_evidence(session.get, candidate, used, pool=session.pool)
    read = session.pool.submit(evidence.fetch_ahead, evidence_paths(candidate, used))
    trust = session.trust
    checking = _Checks(
        session.pool,
        read,
        lambda passed: assure(
            evidence, candidate, used, trust, head=head, installed=installed, now=now, checks=passed
        ),
    )
    with run.timings.measure("tuf"):
        downloaded, how = _fetch(session, candidate, info, delta, checking.start)
    # disk writes while the evidence is checked (started as the download arrived, if the fetcher wrote it)
    synced = session.synced(downloaded) or start_sync(session.pool, downloaded)
    try:
        tuf = f"{candidate.path} verified by the TUF client (sha256 {candidate.sha256})"
        run.checks.append(Passed(check="tuf", detail=tuf))
        with run.timings.measure("evidence"):
            try:
                assurance = checking.result()
            finally:
                run.checks.extend(checking.passed)
                run.timings.evidence_work_ms += checking.work_ms
        with run.timings.measure("install"):
            run.record = install_target(
                session.layout,
                trust,
                assurance,
                source=downloaded,
                via_delta=how == "applied",
                now=now,
                synced=synced,
            )
            hook = run_hook(trust, run.record)
    finally:
        remove_quietly(downloaded)  # installed by a rename, or refused
    run.checks.append(Passed(check="install", detail=run.record.installed))
    error = None if hook is None or hook.ok else hook_error(hook)
    return run.outcome(INSTALLED, error=error, delta=how, hook=hook)


def update_endpoint(
    agent_dir: Path, *, now: datetime | None = None, http: httpx.Client | None = None
) -> EndpointUpdate:
    """``overt agent update`` (module docstring): one run over everything the pinned policy follows.

    ``now`` is the time freshness is measured at (default: the clock; TUF's own expiry checks always use the
    clock). A missing or unreadable policy, or a second agent at work, raises instead.
    """
    layout = AgentLayout(agent_dir.absolute())  # the trust records name installed files by absolute path
    trust = load_pinned(layout)
    with agent_lock(layout):
        at = now or datetime.now(UTC)
        try:
            session = _Session(layout, trust, http)
        except Error as e:
            outcomes = tuple(
                FollowOutcome(
                    follow=f,
                    status=REFUSED if e.exit_code == 1 else FAILED,
                    offered=None,
                    record=read_record(layout, f),
                    error=e,
                )
                for f in trust.follows
            )
            return EndpointUpdate(outcomes=outcomes, policy_sha256=trust.sha256)
        try:
            outcomes = tuple(_update_one(session, f, at) for f in trust.follows)
        finally:
            session.close()
        if all(_proved_logged(o) for o in outcomes):
            _commit_metadata(layout)
    return EndpointUpdate(outcomes=outcomes, policy_sha256=trust.sha256)
