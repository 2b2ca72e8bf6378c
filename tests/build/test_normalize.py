"""Normalisation rewrites archive metadata only, and the verdict keeps "identical" and "equivalent" apart."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from overt.build.compare import DIFFERENT, EQUIVALENT, IDENTICAL, compare_outputs
from overt.build.normalize import formats_for, normalize
from overt.build.outputs import Output
from overt.errors import FormatError


def make_zip(when: tuple[int, ...], content: bytes = b"data") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("pkg/a.txt", when), content)
    return buf.getvalue()


def make_targz(mtime: int, content: bytes = b"data") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("a.txt")
        info.size, info.mtime, info.uname = len(content), mtime, "builder"
        t.addfile(info, io.BytesIO(content))
    return gzip.compress(buf.getvalue(), mtime=mtime)


def test_formats_by_name():
    assert formats_for("x.whl") == ("zip",) and formats_for("x.tar.gz") == ("gzip", "tar")
    assert (
        formats_for("x.tgz") == ("gzip", "tar")
        and formats_for("x.gz") == ("gzip",)
        and formats_for("x.bin") == ()
    )


def test_zip_timestamps_normalise_but_contents_do_not():
    a, b = make_zip((2020, 1, 1, 0, 0, 0)), make_zip((2024, 5, 6, 7, 8, 10))
    assert a != b
    assert normalize("x.zip", a, ("zip",)) == normalize("x.zip", b, ("zip",))
    assert normalize("x.zip", a, ("zip",)) != normalize(
        "x.zip", make_zip((2020, 1, 1, 0, 0, 0), b"other"), ("zip",)
    )
    assert normalize("x.zip", a, ("tar",)) == a  # not asked for: untouched


def test_targz_and_gzip():
    a, b = make_targz(1_600_000_000), make_targz(1_700_000_000)
    assert normalize("x.tar.gz", a, ("gzip", "tar")) == normalize("x.tar.gz", b, ("gzip", "tar"))
    assert normalize("x.tar.gz", a, ("gzip",)) != normalize("x.tar.gz", b, ("gzip",))  # tar mtimes remain
    g1, g2 = gzip.compress(b"x", mtime=1), gzip.compress(b"x", mtime=2)
    assert normalize("x.gz", g1, ("gzip",)) == normalize("x.gz", g2, ("gzip",))
    with pytest.raises(FormatError):
        normalize("x.zip", b"not a zip", ("zip",))


def write(path: Path, data: bytes, *, name: str = "a.zip", executable: bool = False) -> tuple[Output, ...]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    return (Output(name=name, sha256=digest, size=len(data), executable=executable, path=path),)


def test_verdicts(tmp_path):
    same = write(tmp_path / "1" / "a.zip", make_zip((2020, 1, 1, 0, 0, 0)))
    same2 = write(tmp_path / "2" / "a.zip", make_zip((2020, 1, 1, 0, 0, 0)))
    later = write(tmp_path / "3" / "a.zip", make_zip((2024, 1, 1, 0, 0, 0)))
    assert compare_outputs(reference=same, varied=same2, normalize_formats=()).verdict == IDENTICAL
    v = compare_outputs(reference=same, varied=later, normalize_formats=("zip",))
    assert v.verdict == EQUIVALENT and v.normalised == ("a.zip",) and v.reproducible
    v = compare_outputs(reference=same, varied=later, normalize_formats=())
    assert v.verdict == DIFFERENT and v.differing == ("a.zip",) and not v.reproducible
    v = compare_outputs(reference=same, varied=(), normalize_formats=())
    assert v.verdict == DIFFERENT and v.missing == ("a.zip",) and v.differing == ()


def test_the_executable_bit_is_part_of_the_output(tmp_path):
    """Same bytes, one copy executable: not identical, and normalisation does not excuse it."""
    data = make_zip((2020, 1, 1, 0, 0, 0))
    plain = write(tmp_path / "1" / "a.zip", data)
    runnable = write(tmp_path / "2" / "a.zip", data, executable=True)
    for formats in ((), ("zip",)):
        v = compare_outputs(reference=plain, varied=runnable, normalize_formats=formats)
        assert v.verdict == DIFFERENT and v.differing == ("a.zip",)
