"""tlog-tiles arithmetic and codecs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import FormatError
from overt.tlog.tiles import (
    decode_bundle,
    decode_tile,
    encode_bundle,
    encode_index,
    entries_path,
    tile_path,
    tile_width,
    tiles_for_size,
)


def test_index_encoding() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert encode_index(1000) == "x001/000"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 5, 17) == "tile/2/005.p/17"
    assert entries_path(7, 3) == "tile/entries/007.p/3"


def test_tree_of_70000() -> None:
    tiles = list(tiles_for_size(70_000))
    level0 = [t for t in tiles if t[0] == 0]
    assert sum(1 for t in level0 if t[2] == 256) == 273
    assert [t[2] for t in level0 if t[2] != 256] == [112]
    level1 = [t for t in tiles if t[0] == 1]
    assert [t[2] for t in level1] == [256, 17]
    assert [t[2] for t in tiles if t[0] == 2] == [1]
    assert max(t[0] for t in tiles) == 2


def test_tree_of_256() -> None:
    assert list(tiles_for_size(256)) == [(0, 0, 256), (1, 0, 1)]
    assert tile_width(0, 1, 256) == 0


@given(st.lists(st.binary(max_size=600), max_size=40))
def test_bundle_round_trip(entries: list[bytes]) -> None:
    assert decode_bundle(encode_bundle(entries), len(entries)) == entries


@given(st.binary(max_size=600))
def test_fuzz_bundle_and_tile_decoding(data: bytes) -> None:
    try:
        entries = decode_bundle(data)
        assert encode_bundle(entries) == data
    except FormatError:
        pass
    try:
        assert b"".join(decode_tile(data, len(data) // 32)) == data
    except FormatError:
        assert len(data) % 32


def test_wrong_width_rejected() -> None:
    with pytest.raises(FormatError):
        decode_bundle(encode_bundle([b"a", b"b"]), 3)
    with pytest.raises(FormatError):
        decode_tile(b"\x00" * 64, 3)
