"""The demo's directory: a new or empty one is used, anything else is refused before a file is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from overt.demo import run_demo
from overt.demo.context import prepare_root
from overt.errors import UsageError


def test_a_new_or_empty_directory_is_used(tmp_path: Path) -> None:
    assert prepare_root(tmp_path / "new" / "demo") == tmp_path / "new" / "demo"
    (tmp_path / "empty").mkdir()
    assert prepare_root(tmp_path / "empty").is_dir()


def test_a_relative_directory_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert prepare_root(Path("d")) == tmp_path / "d"  # re-check commands work from any directory


def test_a_directory_with_anything_in_it_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "conveyor").mkdir()
    (tmp_path / "conveyor" / "overt.db").write_bytes(b"a previous demo")
    with pytest.raises(UsageError, match=r"is not empty.*Remove .* or choose another --home"):
        run_demo(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["conveyor", "overt.db"]


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        prepare_root(tmp_path / "f")
