"""Canonical snapshots: determinism, normalisation, dirHash against the spec's shell pipeline, unsafe input."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import FormatError, UsageError
from overt.source.escrow import extract, read_directory, read_source, snapshot_files
from overt.source.snapshot import DIR, FILE, SYMLINK, SnapshotFile, canonical_tar, dir_hash, read_tar


def tree(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "README.md").write_text("hello\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o700)
    (root / "link").symlink_to("src/pkg/__init__.py")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    return root


def test_same_tree_same_bytes_whatever_the_host_metadata(tmp_path):
    a = tree(tmp_path / "a")
    b = tree(tmp_path / "b")
    (b / "README.md").touch()  # another mtime
    (b / "src" / "pkg" / "__init__.py").chmod(0o600)  # other permission bits (not exec)
    ta, tb = canonical_tar(read_directory(a)), canonical_tar(read_directory(b))
    assert ta == tb
    assert canonical_tar(list(reversed(read_directory(a)))) == ta
    with tarfile.open(fileobj=io.BytesIO(ta)) as t:
        members = t.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    modes = {m.name: m.mode for m in members}
    assert modes["run.sh"] == 0o755 and modes["README.md"] == 0o644 and modes["src"] == 0o755
    assert ".git" not in modes and ".git/HEAD" not in modes
    assert {m.mtime for m in members} == {315532800}
    assert next(m for m in members if m.name == "link").linkname == "src/pkg/__init__.py"


def test_dir_hash_matches_the_in_toto_shell_definition(tmp_path):
    files = read_directory(tree(tmp_path / "a"))
    out = tmp_path / "x"
    out.mkdir()
    extract(canonical_tar(files), out)
    shell = "find . -type f | cut -c3- | LC_ALL=C sort | xargs -r sha256sum | sha256sum | cut -f1 -d' '"
    expected = subprocess.run(
        ["sh", "-c", shell], cwd=out, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert dir_hash(files) == expected


def test_tarball_keeps_published_mtimes_and_strips_the_top_directory():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data, mtime in (
            ("pkg-1.0/a.py", b"a", 1_650_000_000),
            ("pkg-1.0/sub/b.py", b"b", 1_650_000_100),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uid, info.uname = len(data), mtime, 1234, "alice"
            t.addfile(info, io.BytesIO(data))
    files = {f.path: f for f in read_tar(buf.getvalue(), strip_top=True)}
    assert set(files) == {"a.py", "sub", "sub/b.py"}
    assert files["a.py"].mtime == 1_650_000_000 and files["sub/b.py"].mtime == 1_650_000_100
    assert files["sub"].kind == DIR
    again = snapshot_files(canonical_tar(list(files.values())))
    assert {f.path: (f.mtime, f.data) for f in again} == {f.path: (f.mtime, f.data) for f in files.values()}


def _tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "kind", "link"),
    [
        ("../evil", tarfile.REGTYPE, ""),
        ("/etc/passwd", tarfile.REGTYPE, ""),
        ("a/../../b", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("link", tarfile.SYMTYPE, "../../outside"),
        ("dev", tarfile.CHRTYPE, ""),
        ("fifo", tarfile.FIFOTYPE, ""),
        ("hard", tarfile.LNKTYPE, "a"),
    ],
)
def test_unsafe_archives_are_refused(name, kind, link):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    with pytest.raises(FormatError):
        read_tar(_tar_with(info), strip_top=False)


def test_a_source_that_is_a_device_or_holds_a_fifo_is_refused_unread(tmp_path):
    """A source is a directory or a regular file (a tarball): /dev/zero would be read without end (the CLI
    cases read it in a bounded process; here the harmless /dev/null stands for every device)."""
    with pytest.raises(UsageError, match=r"^/dev/null is not a regular file \(it is a character device\)$"):
        read_source(Path("/dev/null"))
    (tmp_path / "README").write_text("x\n")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(FormatError, match="pipe is neither a file, a directory nor a symlink"):
        read_source(tmp_path)


def test_duplicate_paths_and_bad_entries():
    f = SnapshotFile(path="a", kind=FILE, data=b"x")
    with pytest.raises(FormatError, match="twice"):
        canonical_tar([f, f])
    for bad in ("", "a//b", "./a", "a/", "a\\b"):
        with pytest.raises(FormatError):
            SnapshotFile(path=bad, kind=FILE)
    SnapshotFile(path="d/link", kind=SYMLINK, target="../x")
    with pytest.raises(FormatError):
        SnapshotFile(path="d/link", kind=SYMLINK, target="../../x")


@given(st.binary(max_size=2048))
def test_fuzz_archives_only_format_errors(data):
    with contextlib.suppress(FormatError):
        read_tar(data, strip_top=True)


names = st.lists(st.text("abc/.", min_size=1, max_size=8), min_size=1, max_size=6, unique=True)


@given(names, st.data())
def test_fuzz_member_names(member_names, data):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for n in member_names:
            info = tarfile.TarInfo(n)
            payload = data.draw(st.binary(max_size=4))
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    try:
        files = read_tar(buf.getvalue(), strip_top=False)
    except FormatError:
        return
    # Whatever was accepted must round-trip through the canonical tar.
    again = snapshot_files(canonical_tar(files))
    assert {f.path for f in again} == {f.path for f in files}


@given(st.binary(max_size=300))
def test_fuzz_escrow_metadata(data):
    from overt.source.escrow import EscrowEntry

    with contextlib.suppress(FormatError):
        EscrowEntry.from_bytes(data)


@given(
    st.dictionaries(
        st.sampled_from(["sha256", "kind", "name", "size", "log_index", "files", "dirHash", "escrowed_at"]),
        st.none()
        | st.booleans()
        | st.integers(-3, 10**6)
        | st.text(max_size=8)
        | st.sampled_from(["source", "input"]),
        max_size=8,
    )
)
def test_fuzz_escrow_metadata_json(obj):
    import json

    from overt.source.escrow import EscrowEntry

    with contextlib.suppress(FormatError):
        entry = EscrowEntry.from_bytes(json.dumps(obj).encode())
        assert EscrowEntry.from_bytes(json.dumps(entry.to_dict()).encode()) == entry
