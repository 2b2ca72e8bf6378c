"""``overt keys`` and ``overt attest`` as a user runs them, including the HSM path and clean errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli.test_cli import overt
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement, vsa_statement


def run_json(*args: str) -> dict:
    r = overt(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_keys_and_attest_flow(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    H = ("--home", home)
    assert overt("init", *H, "--jurisdiction", "CH").returncode == 0
    builder = run_json("keys", "generate", "--role", "builder", *H)["generated"]
    assert builder["jurisdiction"] == "CH" and builder["storage"] == "file2" and builder["status"] == "active"
    auditor = run_json("keys", "generate", "--role", "auditor", "--type", "ecdsa", "--valid-days", "30", *H)[
        "generated"
    ]
    assert auditor["scheme"] == "ecdsa-sha2-nistp256" and auditor["valid_until"]
    listing = run_json("keys", "list", *H)["keys"]
    assert sorted((k["role"], k["jurisdiction"]) for k in listing) == [
        ("auditor", "CH"),
        ("builder", "CH"),
        ("log", "CH"),
    ]
    r = overt("keys", "list", *H)
    assert "builder" in r.stdout and "CH" in r.stdout
    # The first release key registers the conveyor's own builder id (log entry 0); any other builder id is
    # registered, exactly, by a new registry version the release key signs (log entry 1).
    release = run_json("keys", "generate", "--role", "release", *H)
    own = "https://overt.example/conveyor/v1?jurisdiction=CH"
    assert release["builder_registry"] == {
        "version": 1,
        "builders": [{"id": own, "jurisdiction": "CH"}],
        "log_index": 0,
    }
    added = run_json("keys", "builders", "add", SAMPLE_BUILDER_ID, *H)
    assert added["version"] == 2 and added["log_index"] == 1
    assert {b["id"] for b in run_json("keys", "builders", "list", *H)["builders"]} == {own, SAMPLE_BUILDER_ID}

    good, foreign = tmp_path / "good.json", tmp_path / "foreign.json"
    good.write_bytes(provenance_statement("CH").to_bytes())
    foreign.write_bytes(provenance_statement("US").to_bytes())
    env = tmp_path / "env.json"
    signed = run_json("attest", "sign", str(good), "--role", "builder", "--out", str(env), *H)
    assert signed["log_index"] == 2 and signed["checkpoint_published"]
    keyfile = Path(home) / "public" / "keys" / f"{builder['keyid']}.json"
    verified = run_json("attest", "verify", str(env), "--key", str(keyfile))
    assert verified["keyids"] == [builder["keyid"]]
    assert verified["statement"]["predicateType"] == "https://slsa.dev/provenance/v1"
    # k-of-n: the auditor's key did not sign, so 2 of 2 fails.
    r = overt(
        "attest",
        "verify",
        str(env),
        "--key",
        str(keyfile),
        "--key",
        str(Path(home) / "public" / "keys" / f"{auditor['keyid']}.json"),
        "--threshold",
        "2",
    )
    assert r.returncode == 1 and "1 valid signature" in r.stderr and "Traceback" not in r.stderr

    # A foreign-jurisdiction request is refused, cleanly, and the refusal is logged.
    r = overt("attest", "sign", str(foreign), "--role", "builder", *H)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "outside the key's jurisdiction CH" in r.stderr and "refusal_logged_at: 3" in r.stderr
    # A second, different request (an identical one within the same second would be the same log entry:
    # the log deduplicates, so it would answer the first refusal's index).
    foreign_ru = tmp_path / "foreign-ru.json"
    foreign_ru.write_bytes(provenance_statement("RU").to_bytes())
    r = overt("attest", "sign", str(foreign_ru), "--role", "builder", *H, "--json")
    err = json.loads(r.stderr)
    assert err["error"] == "PolicyError" and err["evidence"]["refusal_logged_at"] == 4, r.stderr

    rotated = run_json("keys", "rotate", "--role", "builder", "--reason", "test", *H)
    assert rotated["old"]["status"] == "rotated" and rotated["old"]["rotated_to"] == rotated["new"]["keyid"]
    assert rotated["new"]["introduced_by"] == rotated["rotation_log_index"] == 5

    # The auditor's pinned policy: the home's own, as an outsider would receive it out of band.
    pinned = ("--policy", str(Path(home) / "log-policy"))
    audit = run_json("keys", "audit", builder["keyid"][:12], *H, *pinned)
    assert [(e["index"], e["kind"]) for e in audit["entries"]] == [
        (2, "signed"),
        (3, "refused"),
        (4, "refused"),
        (5, "signed"),
    ]
    assert all(e["inclusion_verified"] for e in audit["entries"])
    assert audit["entries"][3]["predicate_type"] == "https://overt.dev/attestation/key-rotation/v1"
    # An outsider audits from the published key file and the public log directory alone.
    outsider = run_json("keys", "audit", str(keyfile), "--log", str(Path(home) / "public" / "log"), *pinned)
    assert outsider["entries"] == audit["entries"]
    r = overt("keys", "audit", builder["keyid"][:12], *H, *pinned)
    assert r.returncode == 0 and "refused" in r.stdout

    vsa = tmp_path / "vsa.json"
    vsa.write_bytes(vsa_statement().to_bytes())
    assert overt("attest", "sign", str(vsa), "--key", auditor["keyid"], *H).returncode == 0


def test_keys_errors_are_clean(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    overt("init", "--home", home)
    cases = [
        (("keys", "generate", "--role", "janitor"), "unknown role"),
        (("keys", "generate", "--role", "log"), "overt init"),
        (("keys", "generate", "--role", "builder", "--jurisdiction", "Swiss"), "ISO 3166"),
        (("keys", "generate", "--role", "builder", "--type", "rsa"), "unsupported key type"),
        (("keys", "rotate"), "exactly one"),
        (("keys", "rotate", "--role", "auditor"), "no active auditor key"),
        (("keys", "audit", "zz"), "keyid"),
        (("keys", "import", "--role", "builder", "--uri", "gcpkms:x"), "file2: or hsm:"),
        (("keys", "import", "--role", "builder", "--uri", f"file2:{tmp_path}/missing.pem"), "cannot read"),
        (("keys", "generate", "--role", "builder", "--hsm"), "no PKCS#11 module"),
    ]
    for args, message in cases:
        r = overt(*args, "--home", home)
        assert r.returncode != 0, args
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"_type": "nope"}')
    # No builder key to refuse with, so nothing is logged: a malformed request, a usage error.
    r = overt("attest", "sign", str(bad), "--role", "builder", "--home", home)
    assert r.returncode == 2 and "_type" in r.stderr and "Traceback" not in r.stderr
    r = overt("attest", "verify", str(bad), "--key", str(bad))
    assert r.returncode == 2 and "DSSE envelope" in r.stderr


def test_import_a_pem_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    home = str(tmp_path / "home")
    overt("init", "--home", home)
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    got = run_json("keys", "import", "--role", "release", "--uri", f"file2:{pem}", "--home", home)["imported"]
    assert got["role"] == "release" and got["scheme"] == "ecdsa-sha2-nistp256"
    r = overt("keys", "import", "--role", "release", "--uri", f"file2:{pem}", "--home", home)
    assert r.returncode == 2 and "already in the registry" in r.stderr


def test_hsm_keys_from_the_cli(tmp_path: Path, softhsm) -> None:
    home = str(tmp_path / "home")
    r = overt(
        "init",
        "--home",
        home,
        "--hsm-module",
        softhsm.module,
        "--hsm-token",
        softhsm.token,
        "--log-key",
        "hsm",
    )
    assert r.returncode == 0, r.stderr
    assert "(hsm)" in r.stdout
    gen = run_json("keys", "generate", "--role", "builder", "--hsm", "--type", "ecdsa", "--home", home)[
        "generated"
    ]
    assert gen["storage"] == "hsm"
    assert overt("keys", "generate", "--role", "release", "--hsm", "--home", home).returncode == 0
    assert overt("keys", "builders", "add", SAMPLE_BUILDER_ID, "--home", home).returncode == 0
    good = tmp_path / "good.json"
    good.write_bytes(provenance_statement("CH").to_bytes())
    signed = run_json("attest", "sign", str(good), "--role", "builder", "--home", home)
    assert signed["checkpoint_published"]
    rotated = run_json("keys", "rotate", "--role", "builder", "--home", home)
    assert rotated["new"]["storage"] == "hsm"
    assert os.environ["SOFTHSM2_CONF"]  # the subprocesses found the session token through it
