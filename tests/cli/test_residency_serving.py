"""One ``overt serve --telemetry-only`` process per region beside the one serving the log,
``overt residency store list --events`` showing what each store holds, tenant by tenant, and ``overt
serve`` refusing to start with a store that is not its jurisdiction's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from overt.home import Home
from overt.residency.config import JurisdictionConfig, add_jurisdiction, root_of
from overt.residency.stores import open_store
from overt.residency.telemetry import parse_batch
from tests.cli.test_cli import overt
from tests.residency.world import World, batch, make_world, send


@contextmanager
def serving(w: World, *args: str) -> Iterator[dict[str, Any]]:
    """``overt serve --port 0 --json ARGS`` on the world's home; its start line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "overt", "serve", "--port", "0", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OVERT_HOME": str(w.home.path)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def events(w: World) -> dict[str, dict[str, int]]:
    listed = overt("residency", "store", "list", "--home", str(w.home.path), "--events", "--json")
    assert listed.returncode == 0, listed.stderr
    return {j["jurisdiction"]: j["events"] for j in json.loads(listed.stdout)["jurisdictions"]}


def test_regional_telemetry_processes_run_beside_the_log_server(conveyor: Home) -> None:
    w = make_world(conveyor)
    acme, samba = w.tenants["acme"].id, w.tenants["samba"].id
    with (
        serving(w) as log,
        serving(w, "--telemetry-only", "--jurisdiction", "CH") as ch,
        serving(w, "--telemetry-only", "--jurisdiction", "BR") as br,
    ):
        assert ch["telemetry"] == ["CH"] and br["telemetry"] == ["BR"] and "public" not in ch
        assert send(ch["url"], w.token("acme"), batch("batch-0001", 4)).json()["jurisdiction"] == "CH"
        assert send(br["url"], w.token("samba"), batch("batch-0001", 2)).json()["jurisdiction"] == "BR"
        misrouted = send(ch["url"], w.token("samba"), batch("batch-0002", 2))
        assert misrouted.status_code == 421, misrouted.text
        # The regional processes serve telemetry alone: no write API, no log files.
        assert httpx.post(f"{ch['url']}/add", content=b"x", timeout=30).status_code == 404
        assert httpx.get(f"{ch['url']}/log/checkpoint", timeout=30).status_code == 404
        # The log server still writes the log, which the others never locked.
        assert httpx.post(f"{log['url']}/add", content=b"an entry", timeout=60).status_code == 200
    assert events(w) == {"BR": {samba: 2}, "CH": {acme: 4}}


def test_store_list_events_shows_a_tenants_data_found_outside_its_home(conveyor: Home) -> None:
    w = make_world(conveyor)
    acme = w.tenants["acme"].id
    assert events(w) == {"BR": {}, "CH": {}}
    raw = batch("batch-0009", 3)
    with open_store(
        Home(w.home.path), "BR"
    ) as store:  # written around the router, as a bug or an operator would
        store.write_batch(acme, parse_batch(raw), raw)
    assert events(w) == {"BR": {acme: 3}, "CH": {}}
    plain = overt("residency", "store", "list", "--home", str(w.home.path), "--json")
    assert all("events" not in j for j in json.loads(plain.stdout)["jurisdictions"])  # only on request


def test_telemetry_only_needs_a_jurisdiction_with_a_store(conveyor: Home) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "overt", "serve", "--port", "0", "--telemetry-only"],
        capture_output=True,
        text=True,
        env={**os.environ, "OVERT_HOME": str(conveyor.path)},
        timeout=60,
    )
    assert r.returncode == 2 and "no jurisdiction has a store" in r.stderr and "Traceback" not in r.stderr


def test_serve_refuses_to_start_with_a_store_that_is_not_its_own(conveyor: Home) -> None:
    """Two stores swapped on disk: each is stamped for the other, so neither jurisdiction is served; nor is
    one holding data without a stamp. A store unreachable at start is refused the same way."""
    w = make_world(conveyor)
    ch, br = root_of(w.home, "CH") / "store.db", root_of(w.home, "BR") / "store.db"
    swap = ch.with_name("swap.db")
    ch.rename(swap)
    br.rename(ch)
    swap.rename(br)

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "overt", "serve", "--port", "0", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "OVERT_HOME": str(w.home.path)},
            timeout=60,
        )

    for args, j in [((), "BR"), (("--telemetry-only", "--jurisdiction", "CH"), "CH")]:
        r = serve(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        (line,) = r.stderr.strip().splitlines()  # one line, for the operator: it names the store
        assert line.startswith(f"error: cannot serve {j}: the telemetry store at ")
        assert "belongs to jurisdiction" in line
    assert not (w.home.path / "log.server").exists()


def test_serve_refuses_to_start_with_an_unreachable_postgres_store(conveyor: Home) -> None:
    w = make_world(conveyor, configs={"CH": JurisdictionConfig()})
    add_jurisdiction(
        w.home, "BR", JurisdictionConfig(store="postgres", postgres_dsn="postgresql://127.0.0.1:1/x")
    )
    r = subprocess.run(
        [sys.executable, "-m", "overt", "serve", "--port", "0", "--telemetry-only"],
        capture_output=True,
        text=True,
        env={**os.environ, "OVERT_HOME": str(w.home.path)},
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: cannot serve BR: ")
