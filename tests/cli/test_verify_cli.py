"""``overt verify FILE --provenance P --key K --policy TRUST``: digest, signatures and log inclusion in one step.

A real home signs the sample provenance (subject ``tomli-2.0.1-py3-none-any.whl``, sha256 of ``b"wheel"``)
with its builder key; the envelope is logged. Each failing case breaks exactly one of the three checks and
asserts that only that one is reported FAILED and named in the error, with exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import overt
from tests.samples import SAMPLE_BUILDER_ID, provenance_statement, vsa_statement

WHEEL = "tomli-2.0.1-py3-none-any.whl"


def _json(*args: str) -> dict:
    r = overt(*args, "--json")
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("verify")
    home, other = root / "home", root / "other"
    H = ("--home", str(home))
    _json("init", *H)
    _json("init", "--home", str(other))
    keyid = _json("keys", "generate", "--role", "builder", *H)["generated"]["keyid"]
    _json("keys", "generate", "--role", "release", *H)
    _json("keys", "builders", "add", SAMPLE_BUILDER_ID, *H)
    auditor = _json("keys", "generate", "--role", "auditor", *H)["generated"]["keyid"]
    statement = root / "statement.json"
    statement.write_bytes(provenance_statement("CH").to_bytes())
    envelope = root / "provenance.dsse.json"
    index = _json("attest", "sign", str(statement), "--role", "builder", "--out", str(envelope), *H)[
        "log_index"
    ]
    artifact = root / WHEEL
    artifact.write_bytes(b"wheel")
    return {
        "home": str(home),
        "artifact": str(artifact),
        "envelope": str(envelope),
        "index": str(index),
        "key": str(home / "public" / "keys" / f"{keyid}.json"),
        "auditor_key": str(home / "public" / "keys" / f"{auditor}.json"),
        "policy": str(home / "log-policy"),
        "other_policy": str(other / "log-policy"),
        "log": str(home / "public" / "log"),
        "root": str(root),
    }


def verify(s: dict[str, str], *extra: str, artifact: str | None = None, envelope: str | None = None):
    return overt(
        "verify",
        artifact or s["artifact"],
        "--provenance",
        envelope or s["envelope"],
        "--log",
        s["log"],
        *extra,
    )


def statuses(r) -> dict[str, str]:
    return {c["check"]: c["status"] for c in json.loads(r.stdout)["checks"]}


def test_all_three_checks_are_proved(signed: dict[str, str]) -> None:
    r = verify(signed, "--key", signed["key"], "--policy", signed["policy"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["PROVED", "artifact:"],
        ["PROVED", "signatures:"],
        ["PROVED", "log:"],
    ]
    assert f"is subject {WHEEL} of the provenance" in lines[0]
    assert f"the provenance is entry {signed['index']}, inclusion verified" in lines[2]
    assert r.stderr == ""
    r = verify(
        signed, "--key", signed["key"], "--policy", signed["policy"], "--index", signed["index"], "--json"
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["subject"] == WHEEL and report["builder_id"] == SAMPLE_BUILDER_ID
    assert report["log"]["index"] == int(signed["index"]) and report["keyids"] == [Path(signed["key"]).stem]
    assert statuses(r) == {"artifact": "proved", "signatures": "proved", "log": "proved"}


def test_the_subject_is_found_by_digest_under_any_file_name(signed: dict[str, str]) -> None:
    renamed = Path(signed["root"]) / "downloaded.bin"
    renamed.write_bytes(b"wheel")
    r = verify(signed, "--key", signed["key"], "--policy", signed["policy"], "--json", artifact=str(renamed))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["subject"] == WHEEL


def _fails_only(r, check: str) -> None:
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert statuses(r) == {
        name: "failed" if name == check else "proved" for name in ("artifact", "signatures", "log")
    }
    assert json.loads(r.stderr)["message"].endswith(f"the {check} check failed")


def test_another_artifact_of_the_same_name_fails_the_artifact_check(signed: dict[str, str]) -> None:
    other = Path(signed["root"]) / "elsewhere" / WHEEL
    other.parent.mkdir(exist_ok=True)
    other.write_bytes(b"a wheel with a backdoor")
    r = verify(signed, "--key", signed["key"], "--policy", signed["policy"], "--json", artifact=str(other))
    _fails_only(r, "artifact")
    detail = next(c["detail"] for c in json.loads(r.stdout)["checks"] if c["check"] == "artifact")
    assert f"in the provenance {WHEEL} has sha256 " in detail
    # In human output: the FAILED line on stdout, and one error line naming the check on stderr.
    r = verify(signed, "--key", signed["key"], "--policy", signed["policy"], artifact=str(other))
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].startswith("FAILED  artifact: ")
    assert r.stderr.splitlines() == [f"error: {other} is not verified: the artifact check failed"]


def test_a_key_that_did_not_sign_fails_the_signature_check(signed: dict[str, str]) -> None:
    r = verify(signed, "--key", signed["auditor_key"], "--policy", signed["policy"], "--json")
    _fails_only(r, "signatures")
    both = ("--key", signed["key"], "--key", signed["auditor_key"], "--threshold", "2")
    r = verify(signed, *both, "--policy", signed["policy"], "--json")
    _fails_only(r, "signatures")
    assert "1 valid signature(s) by distinct trusted keys; 2 required" in r.stdout


def test_an_envelope_that_is_not_the_logged_bytes_fails_the_log_check(signed: dict[str, str]) -> None:
    """Re-serialised, the envelope still carries valid signatures, but those are not the bytes in the log."""
    pretty = Path(signed["root"]) / "pretty.dsse.json"
    pretty.write_text(json.dumps(json.loads(Path(signed["envelope"]).read_text()), indent=2))
    r = verify(signed, "--key", signed["key"], "--policy", signed["policy"], "--json", envelope=str(pretty))
    _fails_only(r, "log")


@pytest.mark.parametrize("index", ["0", "1000"])
def test_a_wrong_index_fails_the_log_check(signed: dict[str, str], index: str) -> None:
    r = verify(signed, "--key", signed["key"], "--policy", signed["policy"], "--index", index, "--json")
    _fails_only(r, "log")


def test_another_logs_policy_fails_the_log_check(signed: dict[str, str]) -> None:
    r = verify(signed, "--key", signed["key"], "--policy", signed["other_policy"], "--json")
    _fails_only(r, "log")
    assert "the log's checkpoint: note carries no valid signature" in r.stdout


def test_every_failed_check_is_named(signed: dict[str, str]) -> None:
    other = Path(signed["root"]) / "unrelated"
    other.write_bytes(b"unrelated")
    r = verify(
        signed, "--key", signed["auditor_key"], "--policy", signed["other_policy"], artifact=str(other)
    )
    assert r.returncode == 1
    assert [line.split()[:2] for line in r.stdout.splitlines()[:3]] == [
        ["FAILED", "artifact:"],
        ["FAILED", "signatures:"],
        ["FAILED", "log:"],
    ]
    assert r.stderr.strip().endswith("the artifact, signatures and log checks failed")


def test_what_cannot_be_checked_is_a_usage_error(signed: dict[str, str]) -> None:
    statement = Path(signed["root"]) / "vsa.json"
    statement.write_bytes(vsa_statement().to_bytes())
    vsa = Path(signed["root"]) / "vsa.dsse.json"
    _json("attest", "sign", str(statement), "--role", "auditor", "--out", str(vsa), "--home", signed["home"])
    pinned = ("--key", signed["key"], "--policy", signed["policy"])
    for extra, envelope, message in [
        (("--key", signed["key"]), None, "refusing to take trust roots from the log"),
        (pinned, signed["artifact"], "DSSE envelope"),
        (pinned, str(vsa), "not SLSA Provenance v1"),
        ((*pinned, "--threshold", "2"), None, "exceeds the 1"),
    ]:
        r = verify(signed, *extra, envelope=envelope)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("error: ") and message in r.stderr and "Traceback" not in r.stderr
