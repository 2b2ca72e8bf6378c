"""``overt residency store add|list``, ``backup``, ``send`` and ``aggregates`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from overt.home import Home
from overt.residency.config import JurisdictionConfig, root_of
from overt.server.log import LOG_LIMITS, create_app, edge_limits
from overt.server.runner import BackgroundServer
from tests.cli.test_cli import overt
from tests.residency.world import batch, make_world


def test_store_add_list_backup_send_and_aggregates(conveyor: Home, tmp_path: Path) -> None:
    w = make_world(conveyor, tenants=(("acme", "DE"), ("samba", "BR")), configs={"CH": JurisdictionConfig()})
    home = ("--home", str(w.home.path))
    added = overt("residency", "store", "add", "BR", *home, "--json")
    assert added.returncode == 0, added.stderr
    assert (
        json.loads(added.stdout)["access_log"] == "access-br"
        and json.loads(added.stdout)["store"] == "sqlite"
    )
    assert overt("residency", "store", "add", "BR", *home).returncode == 0  # idempotent
    other = overt(
        "residency", "store", "add", "BR", "--store", "postgres", "--dsn", "postgresql://x/y", *home
    )
    assert other.returncode == 2 and "already configured" in other.stderr
    listed = json.loads(overt("residency", "store", "list", *home, "--json").stdout)
    assert [(j["jurisdiction"], j["status"]) for j in listed["jurisdictions"]] == [
        ("BR", "ready"),
        ("CH", "ready"),
    ]

    token = tmp_path / "acme.token"
    token.write_text(w.token("acme") + "\n")
    sent_file = tmp_path / "batch.json"
    sent_file.write_bytes(batch("batch-0001", 7))
    w.home = Home(w.home.path)
    with BackgroundServer(create_app(w.home), limits=edge_limits(w.home, LOG_LIMITS)) as srv:
        sent = overt("residency", "send", str(sent_file), "--url", srv.url, "--token-file", str(token))
        assert sent.returncode == 0, sent.stderr
        assert f"batch batch-0001: 7 events stored in CH for tenant {w.tenants['acme'].id}" in sent.stdout
        again = overt(
            "residency", "send", str(sent_file), "--url", srv.url, "--token-file", str(token), "--json"
        )
        assert json.loads(again.stdout)["duplicate"] is True
        agg = overt("residency", "aggregates", "--url", srv.url, "--token-file", str(token), "--json",
                    "--since", "2026-12-01", "--until", "2026-12-01")  # fmt: skip
        assert agg.returncode == 0 and sum(a["events"] for a in json.loads(agg.stdout)["aggregates"]) == 7
        bad = tmp_path / "bad.token"
        bad.write_text("ovt_0123456789abcdef_" + "A" * 43)
        refused = overt("residency", "send", str(sent_file), "--url", srv.url, "--token-file", str(bad))
        assert refused.returncode == 1 and "401" in refused.stderr

    inside = root_of(w.home, "CH") / "backups" / "b1"
    done = overt("residency", "backup", "CH", "--to", str(inside), *home, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] == 7 and (inside / "store.db").exists()
    outside = overt("residency", "backup", "CH", "--to", str(root_of(w.home, "BR") / "b"), *home)
    assert outside.returncode == 1 and "in the root of jurisdiction BR" in outside.stderr


def test_backup_of_a_code_that_is_no_country_or_has_no_store_says_so(conveyor: Home) -> None:
    w = make_world(conveyor, tenants=(), configs={"CH": JurisdictionConfig()})
    into_ch = str(root_of(w.home, "CH") / "q")  # a folder that would do for CH's own backup
    for code, says in [
        ("XX", "jurisdiction 'XX' is not a place data can be stored: it must be an assigned ISO 3166-1"),
        ("MX", "jurisdiction MX has no telemetry store in this home (those configured: CH)"),
    ]:
        r = overt("residency", "backup", code, "--to", into_ch, "--home", str(w.home.path))
        assert r.returncode == 2 and says in r.stderr, r.stderr
        assert "root" not in r.stderr  # nothing about CH's root: the code is what is wrong
    assert not (root_of(w.home, "CH") / "q").exists()
