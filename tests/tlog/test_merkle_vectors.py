"""Every transparency-dev/merkle inclusion and consistency probe, negative cases included."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from overt.errors import FormatError, VerificationError
from overt.tlog.merkle import verify_consistency, verify_inclusion

ROOT = Path(__file__).parent.parent / "vectors" / "merkle"


def _b64(v: str | None) -> bytes:
    return base64.b64decode(v or "")


def _cases(kind: str) -> list[Path]:
    return sorted((ROOT / kind).rglob("*.json"))


def test_vector_counts() -> None:
    # Guard against silently testing nothing if the vectors move.
    assert len(_cases("inclusion")) > 80
    assert len(_cases("consistency")) > 90


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v["proof"] or []]
    args = (v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), proof, _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises((VerificationError, FormatError)):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v["proof"] or []]
    args = (v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)
    if v["wantErr"]:
        with pytest.raises((VerificationError, FormatError)):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
