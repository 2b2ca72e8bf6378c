"""Archive members for the scanner: zip, tar and gzip, nested, bounded; damaged archives never raise."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.avdb import unpack
from overt.avdb.scan import scan_paths
from tests.avdb.samples import eicar
from tests.avdb.test_scan import database


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_formats_and_nesting():
    inner = zip_of({"dropper/eicar.com": eicar(), "readme.txt": b"hello"})
    outer = gzip.compress(tar_of({"inner.zip": inner, "notes.txt": b"notes"}), mtime=0)
    got = dict(unpack.members(outer, unpack.Budget()))
    assert set(got) == {
        "(gzip)",
        "(gzip)!inner.zip",
        "(gzip)!inner.zip!dropper/eicar.com",
        "(gzip)!inner.zip!readme.txt",
        "(gzip)!notes.txt",
    }
    assert got["(gzip)!inner.zip!dropper/eicar.com"] == eicar()
    assert unpack.kind(b"plain text") is None
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        assert dict(unpack.members(zip_of({"a": b"x" * 100}, method), unpack.Budget())) == {"a": b"x" * 100}


def test_limits_stop_bombs(monkeypatch):
    monkeypatch.setattr(unpack, "MAX_MEMBER", 1 << 20)
    zeros = b"\0" * (2 << 20)
    budget = unpack.Budget()
    assert list(unpack.members(zip_of({"bomb": zeros, "after": b"x"}), budget)) == []
    assert budget.exceeded == ["bomb"]
    budget = unpack.Budget()
    assert list(unpack.members(gzip.compress(zeros), budget)) == []
    assert budget.exceeded == ["(gzip)"]
    budget = unpack.Budget(members=3)
    assert len(list(unpack.members(zip_of({f"m{i}": b"x" for i in range(5)}), budget))) == 3
    budget = unpack.Budget(bytes=250)
    assert [n for n, _ in unpack.members(tar_of({"a": b"x" * 200, "b": b"y" * 100}), budget)] == ["a"]
    assert budget.exceeded == ["b"]


def test_nesting_stops_at_the_depth_limit():
    data = eicar()
    for level in range(unpack.MAX_DEPTH + 3):
        data = zip_of({f"level{level}.zip": data})
    names = [n for n, _ in unpack.members(data, unpack.Budget())]
    assert len(names) == unpack.MAX_DEPTH and not any(n.endswith("!level0.zip") for n in names)


def test_damaged_encrypted_and_unsupported_members_are_skipped():
    whole = tar_of({"first": b"1" * 600, "second": b"2" * 600})
    # Truncated inside the second member: the first still comes out.
    assert [n for n, _ in unpack.members(whole[:1200], unpack.Budget())] == ["first"]
    assert list(unpack.members(zip_of({"a": b"abc"})[:30], unpack.Budget())) == []
    assert list(unpack.members(b"\x1f\x8b" + b"\0" * 40, unpack.Budget())) == []
    # Mark the first member encrypted (general-purpose flag bit 0, in its local and its central header): it
    # needs a password, so it is skipped.
    data = bytearray(zip_of({"secret": b"ciphertext", "plain": b"plain"}))
    data[6] |= 0x1
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
    assert [n for n, _ in unpack.members(bytes(data), unpack.Budget())] == ["plain"]


@settings(max_examples=300)
@given(st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b""]), st.binary(max_size=600))
def test_fuzz_members_never_raise_and_stay_in_budget(magic, body):
    data = magic + body
    if not magic and len(data) > 262:
        data = data[:257] + b"ustar" + data[262:]
    budget = unpack.Budget(bytes=1 << 16, members=50)
    got = list(unpack.members(data, budget))
    assert sum(len(b) for _, b in got) <= 1 << 16 and len(got) <= 50


def test_a_member_without_a_name():
    """Found by fuzzing: zipfile's is_dir() fails on an empty member name."""
    data = bytearray(zip_of({"a": b"payload"}))
    data[26:28] = b"\0\0"  # the local header's name length, then its one-byte name
    del data[30]
    c = data.index(b"PK\x01\x02")
    data[c + 28 : c + 30] = b"\0\0"  # likewise in the central directory
    del data[c + 46]
    e = data.index(b"PK\x05\x06")  # the end record: central directory size and offset, one byte less each
    for at in (e + 12, e + 16):
        data[at : at + 4] = (int.from_bytes(data[at : at + 4], "little") - 1).to_bytes(4, "little")
    assert list(unpack.members(bytes(data), unpack.Budget())) == [("", b"payload")]


SEEDS = [
    zip_of({"a/b.txt": b"hello" * 50, "c": b"x" * 300}),
    zip_of({"a": b"y" * 500}, zipfile.ZIP_BZIP2),
    zip_of({"a": b"y" * 500}, zipfile.ZIP_LZMA),
    gzip.compress(tar_of({"a": b"1" * 700, "b/c": b"2" * 100}), mtime=0),
    zip_of({"in.zip": zip_of({"x": b"z" * 100})}),
]


@settings(max_examples=300)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255), st.integers(0, 3)), max_size=6),
)
def test_fuzz_damaged_archives(seed, edits):
    data = bytearray(seed)
    for pos, byte, op in edits:
        at = pos % len(data)
        if op == 0:
            data[at] = byte
        elif op == 1:
            del data[at : at + byte % 16 + 1]
        else:
            data[at:at] = bytes([byte]) * (byte % 8 + 1)
        if not data:
            return
    budget = unpack.Budget(bytes=1 << 16, members=50)
    assert sum(len(b) for _, b in unpack.members(bytes(data), budget)) <= 1 << 16


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_scanner_finds_eicar_inside_archives(tmp_path: Path, jobs):
    (tmp_path / "a.zip").write_bytes(zip_of({"x/eicar.com": eicar()}))
    (tmp_path / "b.tar.gz").write_bytes(gzip.compress(tar_of({"eicar.com": eicar()}), mtime=0))
    (tmp_path / "c.zip").write_bytes(zip_of({"clean.txt": b"nothing here"}))
    report = scan_paths(database(), [tmp_path], jobs=jobs)
    found = {(Path(d.path).name, d.member, d.name) for d in report.detections}
    assert found == {
        ("a.zip", "x/eicar.com", "EICAR_Test_File"),
        ("a.zip", "x/eicar.com", "Overt.Test.EICAR-HDB"),
        ("b.tar.gz", "(gzip)!eicar.com", "EICAR_Test_File"),
        ("b.tar.gz", "(gzip)!eicar.com", "Overt.Test.EICAR-HDB"),
    }
    assert {d.where for d in report.detections if d.kind == "yara"} == {
        f"{tmp_path / 'a.zip'}!x/eicar.com",
        f"{tmp_path / 'b.tar.gz'}!(gzip)!eicar.com",
    }
    assert report.files == 3
