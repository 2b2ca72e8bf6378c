"""The views ``overt init --json``, ``overt version --json`` and the exit-2 "not published" error print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import overt
from overt import VersionInfo
from overt.home import Home, HomeInit, Unpublished, UnpublishedAppends
from overt.keys.registry import Role
from overt.tlog.note import parse_ed25519_vkey


def test_an_initialised_home_as_data(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "h", origin="init.overt.example/log", jurisdiction="DE")
    out = HomeInit.of(home, created=True).to_dict()
    (log_key,) = [r for r in home.registry.records() if r.role is Role.LOG]
    vkey = (tmp_path / "h" / "public" / "log" / "vkey").read_text().strip()
    assert out == {
        "home": str(tmp_path / "h"),
        "created": True,
        "origin": "init.overt.example/log",
        "vkey": vkey,
        "jurisdiction": "DE",
        "log_keyid": log_key.keyid,
        "log_key_storage": log_key.uri.split(":", 1)[0],
    }
    assert parse_ed25519_vkey(out["vkey"]).name == "init.overt.example/log"
    assert out["vkey"] == home.log.signer().verifier().vkey()  # the key that signs the log
    again = HomeInit.of(Home.init(tmp_path / "h", origin="other.example/log"), created=False).to_dict()
    assert again == {**out, "created": False}  # an existing home is left as it was
    assert json.loads(json.dumps(out)) == out


def test_the_version_view() -> None:
    assert VersionInfo().to_dict() == {"version": overt.__version__}


def test_unpublished_appends_name_every_index_and_the_last_reason() -> None:
    appends = UnpublishedAppends(
        entries=(
            Unpublished(index=3, reason="the log server at http://x: 503"),
            Unpublished(index=5, reason="the witness quorum 'all' is not met (w1: down)"),
        )
    )
    assert appends.to_dict() == {
        "error": "UnpublishedError",
        "message": "not published: log entries 3, 5 are appended, but no published checkpoint covers them yet "
        "(the witness quorum 'all' is not met (w1: down)); nobody can verify them until 'overt log publish' "
        "succeeds",
        "indices": [3, 5],
    }
    assert appends.message == appends.to_dict()["message"]
    one = UnpublishedAppends(entries=(Unpublished(index=7, reason="the witness quorum 'all' is not met"),))
    assert one.to_dict()["indices"] == [7]
    assert one.message.startswith(
        "not published: log entry 7 is appended, but no published checkpoint covers it"
    )
    with pytest.raises(ValueError, match="at least one"):
        UnpublishedAppends(entries=())
