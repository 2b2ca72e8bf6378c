"""The README's commands, run as a user pastes them.

The fenced ``bash``/``sh`` blocks of "Quick start" and of "Using it" are each run as one script with
``bash -euo pipefail``, in the README's order, in an empty directory, with the venv's ``overt`` first on PATH.
The scripts start their servers (``overt serve``, ``overt witness serve``) in the background and stop them
on exit; the test also ends the script's whole process group. After each script, a few outcomes are checked
here, on the files the commands wrote and with overt's own verifiers: the offline proof verifies under the
pinned policy with the witness's cosignature, the build's published output is its provenance's subject, the
endpoint holds the newest database, and the scans found what they had to. Two printed lines are checked too:
``overt log add`` saying it went through the running server, and the quick start's clamscan-style FOUND line.

The scripts build in the bubblewrap sandbox: without one the test skips (fails under CI=true), as the other
build tests do. Nothing is fetched: the scripts make their inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

from overt.attest import Envelope, Statement
from overt.avdb import installed
from overt.tlog import Policy, TlogProof, verify_tlog_proof

README = Path(__file__).parents[1] / "README.md"
FENCE = re.compile(r"^```(?:bash|sh)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SCRIPT_TIMEOUT = 600  # seconds; a server that never names its URL fails the script long before (timeout 30)

# Every command "Using it" documented before it became a script: each must still be shown, and run.
USING_IT_COMMANDS = (
    "overt init",
    "overt log add",
    "overt log proof",
    "overt serve",
    "overt witness init",
    "overt witness add-log",
    "overt witness serve",
    "overt log policy",
    "overt log publish",
    "overt log fsck",
    "overt log recover",
    "overt log verify",
    "overt verify",
    "overt keys generate",
    "overt keys builders list",
    "overt keys builders add",
    "overt keys builders remove",
    "overt keys import",
    "overt keys list",
    "overt attest sign",
    "overt attest verify",
    "overt keys rotate",
    "overt keys audit",
    "overt source input",
    "overt source add",
    "overt source show",
    "overt source diff",
    "overt build",
    "overt avdb audit",
    "overt avdb waive",
    "overt avdb build",
    "overt avdb diff",
    "overt avdb delta",
    "overt avdb install",
    "overt scan",
    "overt tuf init",
    "overt release",
    "overt tuf timestamp",
    "overt tuf status",
    "overt tuf add-verdict",
    "overt agent init",
    "overt agent update",
    "overt agent status",
    "overt auditor init",
    "overt auditor rebuild",
    "overt auditor monitor",
)


def section_script(heading: str) -> str:
    """The fenced shell blocks of the README section ``## heading``, joined in order into one script."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"README.md has no section '## {heading}'"
    blocks = FENCE.findall(match.group(1))
    assert blocks, f"README.md section '{heading}' has no bash or sh block"
    return "\n".join(blocks)


def run_script(script: str, cwd: Path) -> str:
    """Run ``script`` as ``bash -euo pipefail`` in ``cwd``; return its output, failing the test on exit != 0."""
    (cwd / "readme.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("OVERT_HOME", "OVERT_AGENT_DIR")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log = cwd / "readme.log"
    with log.open("wb") as out:
        # Output to a file, not a pipe: a background server would hold a pipe open after the script ends.
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "readme.sh"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code: int | str = proc.wait(timeout=SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = f"nothing: it still ran after {SCRIPT_TIMEOUT} s"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # whatever the script left running
            proc.wait()
    output = log.read_text(errors="replace")
    assert code == 0, f"the README script exited {code}; its output:\n{output}"
    return output


def published_build(home: Path) -> tuple[Path, Statement]:
    """The one build under ``home``'s public/builds/, and the statement of its provenance."""
    (build_dir,) = (home / "public" / "builds").iterdir()
    envelope = Envelope.from_bytes((build_dir / "provenance.dsse.json").read_bytes())
    return build_dir, Statement.from_bytes(envelope.payload)


def assert_subject(statement: Statement, build_dir: Path, name: str) -> None:
    (subject,) = statement.subject
    assert subject.name == name
    assert subject.digest["sha256"] == hashlib.sha256((build_dir / name).read_bytes()).hexdigest()


def test_quick_start_runs_as_written(tmp_path: Path, sandbox: None) -> None:
    output = run_script(section_script("Quick start"), tmp_path)
    root = tmp_path / "overt-quickstart"
    build_dir, statement = published_build(root / "home")
    assert_subject(statement, build_dir, "dist/hello.py")
    assert (build_dir / "dist" / "hello.py").read_text() == 'print("hello")\n'
    db = root / "home" / "public" / "avdb" / "overt" / "1.avdb"
    assert installed(root / "data" / "overt" / "agent") == db.read_bytes()
    assert "suspect.bin: Beta FOUND" in output  # clamscan's line: the scan's exit 1 was a detection


def test_using_it_runs_in_order_against_a_running_serve(tmp_path: Path, sandbox: None) -> None:
    script = section_script("Using it")
    missing = [c for c in USING_IT_COMMANDS if not re.search(rf"(?:^ *|; |&& ){c} ", script, re.MULTILINE)]
    assert not missing, f"'Using it' no longer runs {missing}"
    # The conveyor commands come after the log server starts, so that they go through it.
    assert script.index("\novert serve ") < script.index("\novert keys generate ")
    output = run_script(script, tmp_path)
    assert re.search(r"^appended through the log server at http://127\.0\.0\.1:\d+$", output, re.MULTILINE)

    # The offline proof of entry 3 verifies under the customer's policy, cosigned by the witness.
    policy = Policy.from_bytes((tmp_path / "log.policy").read_bytes())
    proof = TlogProof.from_bytes((tmp_path / "e3.tlog-proof").read_bytes())
    assert proof.index == 3
    assert verify_tlog_proof(proof, (tmp_path / "e3").read_bytes(), policy) == {"w1"}

    # The second snapshot was built and published; its provenance names the published output.
    build_dir, statement = published_build(tmp_path / "home")
    assert_subject(statement, build_dir, "dist/app.zip")
    with zipfile.ZipFile(build_dir / "dist" / "app.zip") as z:
        assert z.read("hello.py") == b'print("hello, world")\n'

    # The audit found the marking; after its waiver, version 7 reached the endpoint through the delta.
    assert json.loads((tmp_path / "audit.json").read_text())["unwaived"]
    db = tmp_path / "home" / "public" / "avdb" / "main" / "7.avdb"
    assert installed(tmp_path / "data" / "overt" / "agent") == db.read_bytes()
    scan = json.loads((tmp_path / "scan.json").read_text())
    assert [(Path(d["path"]).name, d["name"]) for d in scan["detections"]] == [("x.gz", "Dropper_Beta")]

    # The release is a TUF target named by its digest, and the stock client's metadata lists it.
    tuf = tmp_path / "home" / "public" / "tuf"
    app = (build_dir / "dist" / "app.zip").read_bytes()
    digest = hashlib.sha256(app).hexdigest()
    assert (tuf / "targets" / "products" / "app" / "1.1" / f"{digest}.app.zip").read_bytes() == app
    release = max((tuf / "metadata").glob("*.release.json"), key=lambda p: int(p.name.split(".")[0]))
    targets = json.loads(release.read_text())["signed"]["targets"]
    assert targets["products/app/1.1/app.zip"]["hashes"]["sha256"] == digest
    assert "avdb/main/7.avdb" in targets

    # The endpoint agent installed the release after every check, and says why it trusted it.
    status = json.loads((tmp_path / "status.json").read_text())
    (item,) = status["items"]
    record = item["installed"]
    assert item["intact"] is True and record["version"] == "1.1" and record["sha256"] == digest
    assert len(record["auditors"]) == 2 and record["target"] == "products/app/1.1/app.zip"
    installed_app = (
        tmp_path / "data" / "overt" / "agent" / "products" / "app" / "stable" / "current" / "app.zip"
    )
    assert installed_app.read_bytes() == app

    # Both auditors rebuilt the app from the escrow alone and PASSED it; the monitor alerted on the waiver.
    for n in (1, 2):
        home = tmp_path / f"auditor{n}"
        assert not (home / "overt.db").exists()
        (vsa,) = (home / "public" / "vsa").glob(
            f"{hashlib.sha256((build_dir / 'provenance.dsse.json').read_bytes()).hexdigest()}.dsse.json"
        )
        assert (
            Statement.from_bytes(Envelope.from_bytes(vsa.read_bytes()).payload).predicate[
                "verificationResult"
            ]
            == "PASSED"
        )
    alerts = json.loads((tmp_path / "alerts.json").read_text())
    assert "avdb-waiver" in {a["kind"] for a in alerts["alerts"]}, alerts


def test_residency_runs_as_written(tmp_path: Path) -> None:
    run_script(section_script("Customer data residency"), tmp_path)
    home = tmp_path / "rhome"
    assert (home / "public" / "residency" / "registry" / "registry.dsse.json").is_file()
    approval = json.loads((tmp_path / "approval.json").read_text())
    assert approval["payloadType"] == "application/vnd.overt.access-approval+json"
    token = json.loads((tmp_path / "token.json").read_text())
    assert token["token"].startswith("ovt_") and token["token"] not in (
        home / "residency" / "directory.db"
    ).read_bytes().decode("latin-1")
