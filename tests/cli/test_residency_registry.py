"""``overt residency registry|tenant|token`` as a user runs them: the outputs, the exit codes, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from overt.home import Home
from overt.residency.tenants import open_directory
from tests.cli.test_cli import overt


def run_json(*args: str) -> dict:
    r = overt(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def refused(code: int, *args: str) -> str:
    r = overt(*args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr
    return r.stderr


def test_registry_tenant_and_token_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    H = ("--home", str(home))
    assert overt("init", *H).returncode == 0
    assert overt("keys", "generate", "--role", "release", *H).returncode == 0  # log entry 0: builder registry
    pem = tmp_path / "admin.pub"
    pem.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    assert "no jurisdiction registry yet" in refused(
        2, "residency", "tenant", "create", "Acme", "--country", "DE", "--admin-key", str(pem), *H
    )

    # The registry: v1 is the promise, v2 moves Brazil.
    r = overt("residency", "registry", "init", *H)
    assert r.returncode == 0, r.stderr
    assert "issued jurisdiction registry v1, signed by the release key and logged at index 1" in r.stdout
    assert (
        "CH: 37 countries" in r.stdout
        and "every other country (212 of 249): its own jurisdiction" in r.stdout
    )
    shown = run_json("residency", "registry", "show", *H)
    assert shown["version"] == 1 and shown["default"] == "self" and shown["log_index"] == 1
    assert shown["jurisdictions"]["BR"] == "BR" and shown["jurisdictions"]["NO"] == "CH"
    assert len(shown["jurisdictions"]) == 249
    assert "there is no earlier one" in refused(2, "residency", "registry", "diff", *H)
    assert "upper case: BR" in refused(2, "residency", "registry", "set", "br=CH", *H)
    assert "two-letter" in refused(2, "residency", "registry", "set", "BR=Switzerland", *H)
    assert "move no country" in refused(2, "residency", "registry", "set", "DE=CH", *H)
    assert "the jurisdiction that jurisdiction registry v1 gives it" in refused(
        2, "residency", "registry", "set", "DE=CH", *H
    )
    assert "BR is assigned twice (CH, IN)" in refused(2, "residency", "registry", "set", "BR=CH", "BR=IN", *H)
    assert "assigned twice" in refused(2, "residency", "registry", "set", "BR=CH", "BR=CH", *H)
    assert "already" in refused(2, "residency", "registry", "init", *H)
    issued = run_json("residency", "registry", "set", "BR=CH", *H)
    assert issued["version"] == 2 and issued["checkpoint_published"] is True
    assert issued["diff"]["moved"] == [{"country": "BR", "from": "BR", "to": "CH"}]
    assert run_json("residency", "registry", "diff", *H) == issued["diff"]
    assert run_json("residency", "registry", "diff", "2", "1", *H)["moved"] == [
        {"country": "BR", "from": "CH", "to": "BR"}
    ]
    r = overt("residency", "registry", "diff", "1", "2", *H)
    assert r.returncode == 0 and "1 country moved" in r.stdout and "Brazil" in r.stdout
    assert run_json("residency", "registry", "show", "--version", "1", *H)["jurisdictions"]["BR"] == "BR"
    assert "no jurisdiction registry v7" in refused(2, "residency", "registry", "show", "--version", "7", *H)

    # Tenants: homed by the current version; names once; countries as codes.
    create = ("residency", "tenant", "create")
    acme = run_json(*create, "Acme", "--country", "BR", "--admin-key", str(pem), *H)
    assert (acme["jurisdiction"], acme["registry_version"], acme["status"]) == ("CH", 2, "active")
    r = overt(*create, "Globex", "--country", "CN", "--admin-key", str(pem), *H)
    assert r.returncode == 0 and "from CN, homed in CN by jurisdiction registry v2, active" in r.stdout
    assert "logged at index" in r.stdout
    assert "exists already" in refused(2, *create, "ACME", "--country", "DE", "--admin-key", str(pem), *H)
    assert "not an officially assigned" in refused(
        2, *create, "X", "--country", "XX", "--admin-key", str(pem), *H
    )
    assert "upper case: DE" in refused(2, *create, "X", "--country", "de", "--admin-key", str(pem), *H)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    assert "not a PEM public key" in refused(
        2, *create, "X", "--country", "DE", "--admin-key", str(garbage), *H
    )
    listing = run_json("residency", "tenant", "list", *H)["tenants"]
    assert [(t["name"], t["jurisdiction"]) for t in listing] == [("Acme", "CH"), ("Globex", "CN")]

    # Tokens: shown once, rotated, revoked.
    token = run_json("residency", "token", "create", "Acme", *H)
    assert token["tenant"] == acme["id"] and token["token"].startswith(f"ovt_{token['token_id']}_")
    r = overt("residency", "token", "create", acme["id"], *H)
    assert r.returncode == 0 and "it is shown only now" in r.stdout
    second = r.stdout.splitlines()[1]
    rotation = run_json("residency", "token", "rotate", "Acme", *H)
    assert {t["token_id"] for t in rotation["revoked"]} == {token["token_id"], second[4:20]}
    shown = run_json("residency", "tenant", "show", "Acme", *H)
    assert len(shown["tokens"]) == 3 and token["token"] not in json.dumps(shown)
    new = rotation["new"]
    r = overt("residency", "token", "revoke", new["token_id"], *H)
    assert r.returncode == 0 and "it authenticates no more" in r.stdout
    r = overt("residency", "token", "revoke", new["token_id"], *H)
    assert r.returncode == 0 and "was revoked already" in r.stdout
    assert "no API token" in refused(2, "residency", "token", "revoke", "0123456789abcdef", *H)

    # A registry file put back from an older version: refused (exit 1) by every command that needs it.
    public = home / "public" / "residency" / "registry"
    (public / "registry.dsse.json").write_bytes((public / "v1.dsse.json").read_bytes())
    assert "holds jurisdiction registry v1, but the newest" in refused(1, "residency", "registry", "show", *H)
    assert "is v2" in refused(1, *create, "Initech", "--country", "BR", "--admin-key", str(pem), *H)
    assert "is v2" in refused(1, "residency", "registry", "set", "IN=CH", *H)
    assert [t.name for t in open_directory(Home(home)).tenants()] == ["Acme", "Globex"]
