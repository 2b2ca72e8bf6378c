"""``overt residency admin-key new``, ``approve`` and ``access-log`` as a customer runs them: the files, the
outputs, the exit codes (0 verified, 1 a violation, 2 bad input) and clean errors."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

from overt.attest.dsse import Envelope
from overt.home import Home
from overt.residency.accesslog import AccessEntry, ensure_access_log, record
from tests.cli.test_cli import overt

AT = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)


def run_json(*args: str) -> dict:
    r = overt(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def refused(code: int, *args: str) -> str:
    r = overt(*args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr
    return r.stderr


def staff_access(tenant: str, approval: bytes | None, **changes: object) -> AccessEntry:
    fields: dict[str, object] = {
        "time": AT,
        "jurisdiction": "CH",
        "tenant": tenant,
        "actor": "ana@vendor.example",
        "actor_country": "CH",
        "reason": "support-ticket",
        "resource": "telemetry:detections",
        "outcome": "granted",
        "approval": None if approval is None else Envelope.from_bytes(approval),
    }
    fields.update(changes)
    return AccessEntry(**fields)  # type: ignore[arg-type]


def test_admin_key_approve_and_access_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    H = ("--home", str(home))
    assert overt("init", *H).returncode == 0
    assert overt("keys", "generate", "--role", "release", *H).returncode == 0
    assert overt("residency", "registry", "init", *H).returncode == 0

    # The customer makes its admin key; the vendor gets the public half.
    key = tmp_path / "admin.pem"
    r = overt("residency", "admin-key", "new", "--out", str(key))
    assert r.returncode == 0, r.stderr
    assert f"wrote the private key {key} (mode 0600) and the public key {key}.pub" in r.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "exists already" in refused(2, "residency", "admin-key", "new", "--out", str(key))
    pub = f"{key}.pub"
    create = ("residency", "tenant", "create")
    acme = run_json(*create, "Acme", "--country", "DE", "--admin-key", pub, *H)["id"]
    other = run_json("residency", "admin-key", "new", "--out", str(tmp_path / "globex.pem"))
    globex = run_json(*create, "Globex", "--country", "FR", "--admin-key", other["public_key"], *H)["id"]

    # The customer approves one access, with no home.
    approval = tmp_path / "approval.json"
    approve = ("residency", "approve", "--key", str(key), "--tenant", acme, "--actor", "ana@vendor.example")
    approve += ("--actor-country", "CH", "--reason", "support-ticket", "--resource", "telemetry:detections")
    r = overt(*approve, "--not-before", "2026-12-01T10:00:00Z", "--hours", "8", "--out", str(approval))
    assert r.returncode == 0, r.stderr
    assert "lets ana@vendor.example (CH) read telemetry:detections of " + acme in r.stdout
    assert "from 2026-12-01T10:00:00Z until 2026-12-01T18:00:00Z" in r.stdout
    assert "an approval lasts at most 168 hours" in refused(2, *approve, "--hours", "720")
    assert "at most 7 days; this one would last 30 days" in refused(
        2, *approve, "--not-before", "2026-12-01T10:00:00Z", "--until", "2026-12-31T10:00:00Z"
    )
    assert "exclude each other" in refused(2, *approve, "--hours", "1", "--until", "2026-12-31T10:00:00Z")
    bad_reason = [a if a != "support-ticket" else "curiosity" for a in approve]
    assert "not one of incident-response" in refused(2, *bad_reason)

    # The vendor logs that access, and a refused one.
    h = Home(home)
    record(h, "CH", staff_access(acme, approval.read_bytes()))
    record(h, "CH", staff_access(acme, None, outcome="refused", refusal="no approval was presented"))
    log = str(home / "public" / "logs" / "access-ch")
    vkey = (home / "public" / "logs" / "access-ch" / "vkey").read_text().strip()
    check = (
        "residency",
        "access-log",
        acme,
        "--log",
        log,
        "--vkey",
        vkey,
        "--state",
        str(tmp_path / "state"),
    )
    r = overt(*check, "--admin-key", pub)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "ok  log signature (" in r.stdout and "/access/CH)" in r.stdout
    assert "ok  inclusion of each of the tenant's 2 entries" in r.stdout
    assert "carries an approval signed by admin key" in r.stdout
    assert f"2 entries about {acme} in the access log of CH" in r.stdout
    assert "entry 1 refused: no approval was presented" in r.stdout
    assert r.stdout.rstrip().endswith(
        "verified, except 1 check not run (the '--' lines above): not all verified"
    )
    report = run_json(*check, "--admin-key", pub)
    assert report["ok"] and [e["outcome"] for e in report["entries"]] == ["granted", "refused"]
    assert report["previous_size"] == 2 and "consistency with trusted size 2" in report["checks"]
    assert report["complete"] is True and overt(*check, "--admin-key", pub).stdout.rstrip().endswith(
        "\nall verified"
    )
    unkeyed = overt(*check)  # without the customer's admin key, the approvals are not checked: it says so
    assert unkeyed.returncode == 0 and "--  not checked: the approvals' signatures" in unkeyed.stdout
    assert unkeyed.stdout.rstrip().endswith("not all verified")
    assert run_json(*check)["complete"] is False
    assert run_json(*check[:2], globex, *check[3:])["entries"] == []  # Globex sees none of Acme's

    # A grant the vendor appended without an approval: a violation, exit 1.
    ensure_access_log(h, "CH").append(staff_access(acme, None).to_bytes())
    r = overt(*check, "--admin-key", pub)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "VIOLATION entry 2: access granted without an approval" in r.stdout
    assert "NOT all verified: 1 violation, 0 unreadable" in r.stdout and "all verified\n" not in r.stdout

    # Bad input: exit 2, one clean line.
    assert "tenant id" in refused(2, *check[:2], "acme", *check[3:])
    assert "refusing to take trust roots from the log" in refused(
        2, "residency", "access-log", acme, "--log", log
    )
    assert "not a PEM public key" in refused(2, *check, "--admin-key", str(key))
