"""The scanner: EICAR (generated here, never stored) and Debian's clamav-testfiles, detected by ``overt scan``
and by ``clamscan -d`` on the same built database, the same files either way; every core; clamscan's exit codes."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from overt.avdb import unpack
from overt.avdb.package import build_database, read_database
from overt.avdb.scan import BATCH_BYTES, BATCH_FILES, CLEAN, ERROR, FOUND, ScanPool, _batches, scan_paths
from tests.avdb.samples import EICAR_RULE, eicar, hdb, ruleset
from tests.conftest import require, which

TESTFILES = Path("/usr/share/clamav-testfiles")
CLAMSCAN_WHOLE_FILES = [
    "--no-summary",
    "--scan-archive=no",
    "--scan-pdf=no",
    "--scan-ole2=no",
    "--scan-html=no",
    "--scan-mail=no",
    "--scan-pe=no",
]


def database(
    extra_hdb: tuple[str, ...] | list[str] = (), extra_hsb: tuple[str, ...] | list[str] = ()
) -> bytes:
    e = eicar()
    files = {
        "yara/eicar.yar": EICAR_RULE,
        "hashes/eicar.hdb": hdb([f"{hashlib.md5(e).hexdigest()}:{len(e)}:Overt.Test.EICAR-HDB", *extra_hdb]),
    }
    if extra_hsb:
        files["hashes/more.hsb"] = hdb(list(extra_hsb))
    return build_database(ruleset(files, strict=True), name="t", version=1, compiled=None)


def files_dir(tmp_path: Path) -> Path:
    d = tmp_path / "files"
    (d / "sub").mkdir(parents=True)
    (d / "eicar.com").write_bytes(eicar())
    (d / "sub" / "eicar-copy.txt").write_bytes(eicar())
    (d / "readme.txt").write_text("nothing to see\n")
    (d / "sub" / "data.bin").write_bytes(bytes(range(256)) * 10)
    return d


def test_eicar_is_found_by_rules_and_hashes(tmp_path):
    report = scan_paths(database(), [files_dir(tmp_path)], jobs=1)
    found = {(Path(d.path).name, d.name, d.kind) for d in report.detections}
    assert found == {
        ("eicar.com", "EICAR_Test_File", "yara"),
        ("eicar.com", "Overt.Test.EICAR-HDB", "hash"),
        ("eicar-copy.txt", "EICAR_Test_File", "yara"),
        ("eicar-copy.txt", "Overt.Test.EICAR-HDB", "hash"),
    }
    assert report.files == 4 and report.exit_code == FOUND
    assert {d.rule_id for d in report.detections if d.kind == "yara"} == {"OVT-0001"}


def test_every_core_gives_the_same_answer(tmp_path):
    d = files_dir(tmp_path)
    for i in range(40):
        (d / f"clean-{i}.txt").write_text(f"file {i}\n" * (i * 40_000 if i % 9 == 0 else 1))
    (d / "unreadable").symlink_to(d / "gone")
    one = scan_paths(database(), [d], jobs=1)
    many = scan_paths(database(), [d], jobs=4)
    # The same detections in the same (walk) order, although workers take the largest files first.
    assert [(x.path, x.name) for x in one.detections] == [(x.path, x.name) for x in many.detections]
    assert one.files == many.files == 44 and one.bytes == many.bytes


def test_work_units_cover_every_file_once_largest_first(tmp_path):
    sizes = [10, 5 << 20, 300, 1 << 20, 9 << 20] + [1] * 130
    files = []
    for i, size in enumerate(sizes):
        f = tmp_path / f"f{i:03d}"
        f.write_bytes(b"x" * size)
        files.append(f)
    files.append(tmp_path / "missing")
    batches = _batches(files, set())
    flat = [i for batch in batches for i, _, _ in batch]
    assert sorted(flat) == list(range(len(files)))
    assert flat[:4] == [4, 1, 3, 2]  # 9 MiB, 5 MiB, 1 MiB, 300 bytes
    assert [len(b) for b in batches[:2]] == [1, 1]  # each big file is a unit of its own
    assert all(len(b) <= BATCH_FILES for b in batches)
    size = dict(enumerate([*sizes, 0]))
    assert all(sum(size[i] for i, _, _ in b[:-1]) < BATCH_BYTES for b in batches)


def test_exit_codes(tmp_path):
    clean = tmp_path / "clean.txt"
    clean.write_text("ok\n")
    assert scan_paths(database(), [clean]).exit_code == CLEAN
    report = scan_paths(database(), [tmp_path / "missing"])
    assert report.exit_code == ERROR and report.files == 0


CASES = {  # what is named on the command line; clamscan's exit code for each, checked below when it is here
    "symlink to an infected file": (["lnk"], FOUND),
    "that symlink and a directory (in parallel)": (["lnk", "d"], FOUND),
    "a FIFO and a clean directory (in parallel)": (["fifo", "d"], ERROR),
    "directory holding only a symlink": (["d"], CLEAN),
    "infected file and a missing path": (["eicar.com", "missing"], FOUND),
    "a FIFO": (["fifo"], ERROR),
    "a character device": (["/dev/zero"], ERROR),
    "a missing path": (["missing"], ERROR),
}


@pytest.mark.parametrize("case", CASES)
def test_command_line_paths_and_exit_codes_follow_clamscan(tmp_path, case):
    """clamscan follows a symbolic link named on the command line and skips those inside a directory; a special
    file named is an error (2); something found is 1 even when another path failed."""
    (tmp_path / "eicar.com").write_bytes(eicar())
    (tmp_path / "lnk").symlink_to("eicar.com")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "lnk").symlink_to("../eicar.com")
    os.mkfifo(tmp_path / "fifo")
    names, expected = CASES[case]
    paths = [Path(n) if n.startswith("/") else tmp_path / n for n in names]
    for jobs in (1, 2):
        assert scan_paths(database(), paths, jobs=jobs).exit_code == expected, (case, jobs)
    clamscan = which("clamscan")
    if clamscan is not None:
        e = eicar()
        (tmp_path / "t.hdb").write_text(f"{hashlib.md5(e).hexdigest()}:{len(e)}:Overt.Test.EICAR-HDB\n")
        args = [clamscan, "--no-summary", "-d", str(tmp_path / "t.hdb"), *map(str, paths)]
        assert subprocess.run(args, capture_output=True, timeout=120).returncode == expected, case


def test_clamscan_loads_our_hash_signatures_and_finds_the_same_files(tmp_path):
    clamscan = which("clamscan")
    require(clamscan is not None, "ClamAV not installed (Debian package clamav)")
    require(TESTFILES.is_dir(), "clamav-testfiles not installed (Debian package clamav-testfiles)")
    hsb = []
    hdb_extra = []
    for name, alg in (
        ("clam.exe", "md5"),
        ("clam.pdf", "sha256"),
        ("clam.ole.doc", "sha1"),
        ("clam.zip", "sha256"),
    ):
        data = (TESTFILES / name).read_bytes()
        line = f"{hashlib.new(alg, data).hexdigest()}:{len(data)}:Overt.Test.{name.replace('.', '_')}"
        (hdb_extra if alg == "md5" else hsb).append(line)
    data = database(hdb_extra, hsb)
    db = read_database(data)
    dbdir = tmp_path / "db"
    dbdir.mkdir()
    for path, content in db.files.items():
        if path.startswith("clamav/"):
            (dbdir / Path(path).name).write_bytes(content)
    scan_dir = tmp_path / "scan"
    shutil.copytree(TESTFILES, scan_dir / "testfiles")
    shutil.copytree(files_dir(tmp_path), scan_dir / "mine")

    ours = scan_paths(data, [scan_dir])
    our_hash_hits = {
        (Path(d.path).relative_to(scan_dir).as_posix(), d.name)
        for d in ours.detections
        if d.kind == "hash" and not d.member
    }
    args = (
        [clamscan, *CLAMSCAN_WHOLE_FILES, "-r"]
        + [f"-d{p}" for p in sorted(dbdir.iterdir())]
        + [str(scan_dir)]
    )
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # clamscan: 1 = virus found
    theirs = set()
    for line in proc.stdout.splitlines():
        if line.endswith(" FOUND"):
            path, name = line[: -len(" FOUND")].rsplit(": ", 1)
            theirs.add((Path(path).relative_to(scan_dir).as_posix(), name.removesuffix(".UNOFFICIAL")))
    assert theirs == our_hash_hits
    assert {p for p, _ in theirs} == {
        "testfiles/clam.exe",
        "testfiles/clam.pdf",
        "testfiles/clam.ole.doc",
        "testfiles/clam.zip",
        "mine/eicar.com",
        "mine/sub/eicar-copy.txt",
    }
    # Archives: with its archive unpackers on (its other parsers still off), clamscan finds clam.exe inside
    # more formats than overt unpacks (7z, rar, cab, arj, cpio, bzip2, ...). Where the outer file is a zip,
    # tar or gzip, both find the same files; clam.zip also by its member.
    archives = subprocess.run(
        [clamscan, *[a for a in CLAMSCAN_WHOLE_FILES if a != "--scan-archive=no"], "-r"]
        + [f"-d{p}" for p in sorted(dbdir.iterdir())]
        + [str(scan_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    theirs_unpacked = {
        Path(line.rsplit(": ", 1)[0]).relative_to(scan_dir).as_posix()
        for line in archives.stdout.splitlines()
        if line.endswith(" FOUND")
    }
    ours_unpacked = {Path(d.path).relative_to(scan_dir).as_posix() for d in ours.detections}
    # Python's zipfile reads neither PKWARE implode nor deflate64 members.
    unreadable = {"testfiles/clam.impl.zip", "testfiles/clam.d64.zip"}
    ours_formats = {
        p for p in theirs_unpacked - unreadable if unpack.kind((scan_dir / p).read_bytes()[: unpack.SNIFF])
    }
    assert ours_formats >= {
        "testfiles/clam.zip",
        "testfiles/clam.tar.gz",
        "testfiles/clam.bz2.zip",
        "testfiles/clam_cache_emax.tgz",  # eight levels: gzip, tar, gzip, tar, ...
    }
    assert not unreadable & ours_unpacked
    assert ours_formats <= ours_unpacked <= theirs_unpacked
    members = {(Path(d.path).name, d.member, d.name) for d in ours.detections if d.member}
    assert ("clam.zip", "clam.exe", "Overt.Test.clam_exe") in members
    assert ("clam.tar.gz", "(gzip)!clam.exe", "Overt.Test.clam_exe") in members


@pytest.mark.parametrize("jobs", [1, 2])
def test_eicar_detection_through_the_cli(tmp_path, jobs, av_installed):
    agent, files = av_installed
    from tests.cli.test_cli import overt

    r = overt("scan", str(files), "--agent", str(agent), "--jobs", str(jobs))
    assert r.returncode == 1, r.stderr
    assert f"{files / 'eicar.com'}: EICAR_Test_File FOUND" in r.stdout
    assert "Infected files: 2" in r.stdout
    r = overt("scan", str(files / "readme.txt"), "--agent", str(agent), "--json")
    assert r.returncode == 0 and '"detections": []' in r.stdout
    # clamscan: no database, or any error before scanning, is 2 (never 1, "found").
    r = overt("scan", str(files), "--agent", str(tmp_path / "no-agent"))
    assert r.returncode == 2 and "no verified database is installed" in r.stderr
    tampered = tmp_path / "tampered-agent"
    shutil.copytree(agent, tampered)
    (db,) = (tampered / "avdb").glob("*.avdb")
    db.write_bytes(db.read_bytes() + b"\0")
    r = overt("scan", str(files), "--agent", str(tampered))
    assert r.returncode == 2 and "does not match the digest" in r.stderr and "Traceback" not in r.stderr
    archive = tmp_path / "archives" / "a.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x/eicar.com", eicar())
    r = overt("scan", str(archive), "--agent", str(agent), "--jobs", str(jobs))
    assert r.returncode == 1 and f"{archive}!x/eicar.com: EICAR_Test_File FOUND" in r.stdout
    r = overt("scan", str(archive.parent), "--agent", str(agent), "--json")
    got = json.loads(r.stdout)["detections"]
    assert {(d["path"], d["member"], d["name"]) for d in got} >= {
        (str(archive), "x/eicar.com", "EICAR_Test_File")
    }


@pytest.fixture
def av_installed(tmp_path, sandbox):
    from overt.avdb.install import install
    from overt.home import Home
    from overt.keys.registry import KeyRecord, Role
    from overt.keys.signers import generate_file_key
    from overt.tlog.client import LogClient, directory_fetcher
    from tests.avdb.test_release import do_release, tree
    from tests.samples import register_builders

    h = Home.init(tmp_path / "home")
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC) - timedelta(minutes=1)
    for role, kt in ((Role.BUILDER, "ed25519"), (Role.AUDITOR, "ecdsa")):
        uri, key = generate_file_key(h.paths.keys, kt)
        h.registry.save(
            KeyRecord.create(key, role=role, jurisdiction="CH", valid_from=start, valid_until=None, uri=uri)
        )
    register_builders(h)
    e = eicar()
    released = do_release(
        h,
        tree(
            tmp_path,
            {
                "yara/eicar.yar": EICAR_RULE,
                "h/e.hdb": hdb([f"{hashlib.md5(e).hexdigest()}:{len(e)}:Overt.Test.EICAR-HDB"]),
            },
        ),
        1,
    )
    agent = tmp_path / "agent"
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    install(
        agent,
        released.path.read_bytes(),
        released.provenance.entry,
        [builder.key],
        log=LogClient(directory_fetcher(h.log.paths.public), h.log.policy()),
    )
    return agent, files_dir(tmp_path)


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_reaches_every_file(tmp_path, jobs):
    d = files_dir(tmp_path)
    for i in range(30):
        (d / f"clean-{i}.txt").write_text(f"file {i}\n")
    seen: list[tuple[int, int]] = []
    report = scan_paths(database(), [d], jobs=jobs, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][1] == report.files == 34
    assert all(a <= b <= 34 for (a, _), (b, _) in itertools.pairwise(seen))
    assert seen[-1] == (34, 34)


def test_a_worker_that_dies_gives_errors_not_a_hang(tmp_path):
    d = files_dir(tmp_path)
    with ScanPool(database(), jobs=2) as pool:
        os.kill(pool.pool.submit(os.getpid).result(), signal.SIGKILL)
        for _ in range(3000):  # until the executor has noticed (the other worker may answer meanwhile)
            try:
                pool.pool.submit(os.getpid).result()
            except BrokenProcessPool:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the executor never noticed its dead worker")
        report = pool.scan([d])
    assert report.exit_code == ERROR and report.files == 0
    assert {e for _, e in report.errors} == {
        "not scanned: a scan worker failed (the pool was already broken)"
    }
    assert len(report.errors) == 4


def test_an_unexpected_failure_on_one_file_is_an_error_for_that_file(tmp_path, monkeypatch):
    from overt.avdb import scan

    real = scan.Engine.scan_file

    def flaky(self, path, size):
        if path.endswith("readme.txt"):
            raise ValueError("parser bug")
        return real(self, path, size)

    monkeypatch.setattr(scan.Engine, "scan_file", flaky)
    report = scan_paths(database(), [files_dir(tmp_path)], jobs=1)  # in process, so the patch applies
    assert report.errors == [
        (str(tmp_path / "files" / "readme.txt"), "internal error: ValueError: parser bug")
    ]
    assert report.files == 3 and report.exit_code == FOUND  # as clamscan: found wins over an error
