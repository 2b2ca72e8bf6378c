"""A delta is decompressed under a bound: a small file that expands without limit (an xz bomb) is malformed,
not an allocation of gigabytes."""

from __future__ import annotations

import lzma

import pytest

from overt.avdb import delta
from overt.errors import FormatError


def test_a_delta_that_expands_past_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delta, "MAX_DELTA_TEXT", 1 << 20)  # the real bound is 256 MiB; the same code path
    bomb = lzma.compress(b"{}\0" + b"\0" * (2 << 20), preset=0)
    assert len(bomb) < 4096
    with pytest.raises(FormatError, match="expands past"):
        delta.Delta.from_bytes(bomb)


def test_a_truncated_or_padded_delta_stream_is_refused() -> None:
    whole = lzma.compress(b"{}\0")
    with pytest.raises(FormatError, match="not a delta"):
        delta.Delta.from_bytes(whole[:-4])
    with pytest.raises(FormatError, match="not a delta"):
        delta.Delta.from_bytes(whole + b"junk")
