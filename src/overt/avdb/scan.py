"""The endpoint scanner: YARA rules (yara-x) and hash signatures over files, on every core.

yara-x holds the GIL while it scans, so parallelism is processes: each worker loads the database once (the
compiled rules when the database carries them, else it compiles the sources) and scans whole files, and the
members of zip, tar and gzip archives within limits (:mod:`overt.avdb.unpack`). Hash signatures are checked
only for data whose size some signature names, so hashing costs nothing for the rest.

Results follow clamscan: ``<path>: <name> FOUND`` per detection (``<path>!<member>: <name> FOUND`` inside an
archive), and the exit status is 0 (nothing found), 1 (something found) or 2 (errors). Owns no policy on which
database to trust: callers hand it a database they verified (:mod:`overt.avdb.install`).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import multiprocessing
import os
import pickle
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yara_x

from overt.avdb import unpack
from overt.avdb.package import Database, compile_sources, read_database

MAX_FILE = 512 << 20
READ_WHOLE = 256 << 10  # files up to this size are read with one open; larger ones are mapped
BATCH_BYTES, BATCH_FILES = 1 << 20, 32
CLEAN, FOUND, ERROR = 0, 1, 2
SKIPPED = -1  # the size a worker reports for what it does not scan
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    path: str
    name: str
    kind: str  # yara or hash
    rule_id: str
    member: str = ""  # inside an archive: the member's name (nested members joined with "!")

    @property
    def where(self) -> str:
        return f"{self.path}!{self.member}" if self.member else self.path

    def to_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "member": self.member,
            "name": self.name,
            "kind": self.kind,
            "rule_id": self.rule_id,
        }


@dataclass(slots=True, kw_only=True)
class ScanReport:
    files: int = 0
    bytes: int = 0
    detections: list[Detection] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """As clamscan: something found is 1 even if some paths failed; otherwise any error is 2."""
        if self.detections:
            return FOUND
        return ERROR if self.errors else CLEAN

    def to_dict(self) -> dict[str, Any]:
        """What ``overt scan --json`` prints."""
        return {
            "files": self.files,
            "bytes": self.bytes,
            "detections": [d.to_dict() for d in self.detections],
            "errors": [{"path": p, "error": why} for p, why in self.errors],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """What a worker needs, extracted once by the parent from a verified database: no archive to re-read."""

    compiled: bytes | None
    sources: dict[str, str]
    hash_lines: str
    hash_sizes: frozenset[int]  # the file sizes hash signatures name: only such files are hashed

    @classmethod
    def of(cls, db: Database) -> Payload:
        lines = db.hash_lines()
        return cls(
            compiled=db.compiled,
            sources=db.yara_sources if db.compiled is None else {},
            hash_lines="\n".join(lines),
            hash_sizes=frozenset(int(line.split(":", 2)[1]) for line in lines),
        )


class Engine:
    """A loaded database: compiled YARA rules plus a size-indexed hash table."""

    def __init__(self, payload: Payload) -> None:
        if payload.compiled is not None:
            self.rules = yara_x.Rules.deserialize_from(io.BytesIO(payload.compiled))
        else:
            self.rules = compile_sources(payload.sources)
        self.meta_ids: dict[str, str] = {}
        for r in self.rules:
            meta = dict(r.metadata)
            self.meta_ids[r.identifier] = str(meta.get("id", r.identifier))
        self.scanner = yara_x.Scanner(self.rules)
        self.hash_sizes = payload.hash_sizes
        self._hash_lines = payload.hash_lines
        self._by_size: dict[int, dict[int, dict[str, str]]] | None = None

    @property
    def by_size(self) -> dict[int, dict[int, dict[str, str]]]:
        """Hash signatures by file size, then digest length (the algorithm), then digest; built when the first
        file of a listed size turns up."""
        if self._by_size is None:
            self._by_size = {}
            for line in self._hash_lines.splitlines():
                digest, size, name = line.split(":")[:3]
                self._by_size.setdefault(int(size), {}).setdefault(len(digest), {})[digest] = name
        return self._by_size

    def _yara(self, path: str, results: yara_x.ScanResults, member: str = "") -> list[Detection]:
        return [
            Detection(
                path=path,
                name=m.identifier,
                kind="yara",
                rule_id=self.meta_ids.get(m.identifier, m.identifier),
                member=member,
            )
            for m in results.matching_rules
        ]

    def scan_file(self, path: str, size: int) -> list[Detection]:
        """Scan a file, and each member when it is an archive. A small file is read whole with one open; a
        large one is mapped by yara-x, unless it is an archive to unpack or a hash signature names its size."""
        with open(path, "rb") as f:
            data = f.read() if size <= READ_WHOLE else f.read(unpack.SNIFF)
            archive = size <= unpack.MAX_ARCHIVE and unpack.kind(data[: unpack.SNIFF]) is not None
            if size > READ_WHOLE:
                if not archive and size not in self.hash_sizes:
                    return self._yara(path, self.scanner.scan_file(path))
                data += f.read()
        found = self.scan_bytes(path, data)
        if archive:
            for member, blob in unpack.members(data, unpack.Budget()):
                found += self.scan_bytes(path, blob, member=member)
        return found

    def scan_bytes(self, path: str, data: bytes, *, member: str = "") -> list[Detection]:
        found = self._yara(path, self.scanner.scan(data), member)
        if len(data) not in self.hash_sizes:
            return found
        # Only the algorithms some signature of this size uses.
        for length, sigs in self.by_size.get(len(data), {}).items():
            name = sigs.get(_HASHES[length](data).hexdigest())
            if name is not None:
                found.append(Detection(path=path, name=name, kind="hash", rule_id=name, member=member))
        return found


_HASHES = {32: hashlib.md5, 40: hashlib.sha1, 64: hashlib.sha256}


def iter_files(paths: Sequence[Path]) -> Iterator[Path]:
    for p in paths:
        if not p.exists():
            continue
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    yield Path(root) / f
        else:
            yield p


_engine: Engine | None = None
_engine_error = ""


def _load(payload: Payload) -> None:
    # An initializer that raises breaks the whole pool; report the error for every file instead.
    global _engine, _engine_error
    try:
        _engine = Engine(payload)
    except Exception as e:
        _engine, _engine_error = None, f"cannot load the database: {e}"


_claimed: Any = None  # the pool's shared count of claimed work units (a multiprocessing.Value)


def _init(payload_file: str, claimed: Any) -> None:
    """Pool initializer: load the payload our parent wrote into its private (0700) directory."""
    global _engine, _engine_error, _claimed
    _claimed = claimed
    try:
        with open(payload_file, "rb") as f:
            payload = pickle.load(f)
    except Exception as e:
        _engine, _engine_error = None, f"cannot load the database: {e}"
        return
    _load(payload)


def _scan_one(path: str, direct: bool = False) -> tuple[str, int, list[Detection], str]:
    """Scan one file. As clamscan: a path named on the command line (``direct``) is followed if it is a
    symbolic link, and is an error if it is not a regular file; inside a directory, symbolic links and
    special files are skipped."""
    if _engine is None:
        return path, 0, [], _engine_error or "no database loaded"
    try:
        st = os.stat(path) if direct else os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            if direct:
                return path, 0, [], "not a supported file type (not a regular file)"
            return path, SKIPPED, [], ""
        size = st.st_size
        if size > MAX_FILE:
            return path, 0, [], f"larger than {MAX_FILE} bytes, not scanned"
        return path, size, _engine.scan_file(path, size), ""
    except (OSError, yara_x.ScanError) as e:
        return path, 0, [], str(getattr(e, "strerror", None) or e)
    except Exception as e:  # one odd file must not cost the whole scan; it is an error, exit status 2
        return path, 0, [], f"internal error: {type(e).__name__}: {e}"


Result = tuple[int, tuple[str, int, list[Detection], str]]  # file number, then what _scan_one says


def _drain(work_file: str) -> list[Result]:
    """Claim work units one after another until none is left; the results go back in one message."""
    with open(work_file, "rb") as f:
        units: list[list[tuple[int, str, bool]]] = pickle.load(f)
    out: list[Result] = []
    while True:
        with _claimed.get_lock():
            k = _claimed.value
            _claimed.value = k + 1
        if k >= len(units):
            return out
        out.extend((i, _scan_one(path, direct)) for i, path, direct in units[k])


def _batches(files: Sequence[Path], direct: set[Path]) -> list[list[tuple[int, str, bool]]]:
    """Work units: the files numbered in order, largest first, cut into batches of about BATCH_BYTES or
    BATCH_FILES. Large files spread over the workers first and the last units are small, so no worker idles
    while another finishes a big one; small files share a unit, so claiming one costs little."""
    sized = []
    for i, f in enumerate(files):
        try:
            size = f.lstat().st_size
        except OSError:
            size = 0  # the worker reports the error
        sized.append((size, i, str(f), f in direct))
    sized.sort(key=lambda t: (-t[0], t[1]))
    batches: list[list[tuple[int, str, bool]]] = []
    batch: list[tuple[int, str, bool]] = []
    held = 0
    for size, i, path, named in sized:
        batch.append((i, path, named))
        held += size
        if held >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            batches.append(batch)
            batch, held = [], 0
    if batch:
        batches.append(batch)
    return batches


def _ready(_: int) -> bool:
    return _engine is not None or bool(_engine_error)


class ScanPool:
    """Worker processes with the database loaded, ready to scan (what a scanning daemon keeps running).

    A scan hands every worker the same list of work units; each claims the next unit from a shared counter
    until none is left (work stealing), and sends its results back once. The parent only waits: it has no
    per-file messages to handle, so the workers keep every core.
    """

    def __init__(self, db_bytes: bytes, *, jobs: int | None = None) -> None:
        payload = Payload.of(read_database(db_bytes))  # a malformed database fails here, clearly
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        # spawn, not fork: the parent may hold yara-x (Rust) threads, and a forked child can deadlock on their locks.
        ctx = multiprocessing.get_context("spawn")
        self.claimed = ctx.Value("q", 0)
        # The payload goes through a file, not the spawn pipe: a pipe hands megabytes to one starting worker
        # after another, while every worker reads a file at once. The private directory stays until close().
        self.tmp = tempfile.TemporaryDirectory(prefix="overt-scan-")
        payload_file = Path(self.tmp.name) / "payload"
        payload_file.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        # An executor rather than multiprocessing.Pool: when a worker dies (a crash in a parser, the OOM
        # killer), the pool breaks and says so, where Pool would replace the worker and wait forever for its
        # results.
        self.pool = ProcessPoolExecutor(
            self.jobs, mp_context=ctx, initializer=_init, initargs=(str(payload_file), self.claimed)
        )
        list(self.pool.map(_ready, range(self.jobs)))  # returns once the workers have loaded the database
        self.scans = 0

    def scan(self, paths: Sequence[Path], *, progress: Progress | None = None) -> ScanReport:
        return self.scan_files(paths, list(iter_files(paths)), progress=progress)

    def scan_files(
        self, paths: Sequence[Path], files: Sequence[Path], *, progress: Progress | None = None
    ) -> ScanReport:
        """Scan ``files`` (already listed from ``paths``); the report keeps their order. ``progress`` is called
        with (files started, files) while the workers run. If a worker dies, every file whose result was lost
        is reported as an error (exit status 2), and the pool cannot scan again."""
        units = _batches(files, set(paths))
        self.scans += 1
        work_file = Path(self.tmp.name) / f"work-{self.scans}"
        work_file.write_bytes(pickle.dumps(units, protocol=pickle.HIGHEST_PROTOCOL))
        self.claimed.value = 0  # no scan is running: the last one's workers have all returned
        try:
            pending = [self.pool.submit(_drain, str(work_file)) for _ in range(self.jobs)]
        except BrokenProcessPool:
            pending = []
        if progress is not None:
            started = list(itertools.accumulate(len(u) for u in units))
            while wait(pending, timeout=0.1).not_done:
                k = min(self.claimed.value, len(units))
                progress(started[k - 1] if k else 0, len(files))
        wait(pending)
        work_file.unlink()
        done: list[Result] = []
        failure = "the pool was already broken"
        for future in pending:
            exc = future.exception()
            if exc is None:
                done.extend(future.result())
            else:
                failure = str(exc) or type(exc).__name__
        if progress is not None:
            progress(len(files), len(files))
        done.sort(key=lambda r: r[0])
        report = _missing(paths)
        _collect(report, (result for _, result in done))
        if len(done) < len(files):
            returned = {i for i, _ in done}
            lost = [str(f) for i, f in enumerate(files) if i not in returned]
            report.errors.extend((path, f"not scanned: a scan worker failed ({failure})") for path in lost)
        return report

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.tmp.cleanup()

    def __enter__(self) -> ScanPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan_paths(
    db_bytes: bytes, paths: Sequence[Path], *, jobs: int | None = None, progress: Progress | None = None
) -> ScanReport:
    """Scan files and directories with ``jobs`` processes (default: every core)."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    files = list(iter_files(paths))
    if jobs == 1 or len(files) < 2:
        _load(Payload.of(read_database(db_bytes)))
        named = set(paths)
        report = _missing(paths)
        results = []
        for n, f in enumerate(files):
            if progress is not None:
                progress(n, len(files))
            results.append(_scan_one(str(f), f in named))
        if progress is not None:
            progress(len(files), len(files))
        _collect(report, results)
        return report
    with ScanPool(db_bytes, jobs=jobs) as pool:
        return pool.scan_files(paths, files, progress=progress)


def _missing(paths: Sequence[Path]) -> ScanReport:
    """A report that starts with an error for each path that does not exist."""
    return ScanReport(errors=[(str(p), "no such file or directory") for p in paths if not p.exists()])


def _collect(report: ScanReport, results: Iterable[tuple[str, int, list[Detection], str]]) -> None:
    for path, size, found, error in results:
        if error:
            report.errors.append((path, error))
            continue
        if size == SKIPPED:
            continue
        report.files += 1
        report.bytes += size
        report.detections.extend(found)
