"""The sandbox and the conveyor on real builds: isolation, gcc reproducibility, a build that embeds the time,
normalisation verdicts, provenance content, and every failure path logging nothing as a success."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from overt.attest.dsse import Envelope
from overt.attest.provenance import Provenance
from overt.attest.verify import verify_statement
from overt.build.compare import EQUIVALENT, IDENTICAL
from overt.build.environment import DPKG_STATUS
from overt.errors import BuildError, ConfigError, ReproducibilityError, VerificationError
from tests.build.helpers import current_builder, escrow_tree, log_size, run
from tests.conftest import require

PROBE = r"""
import json, os, socket, pathlib
out = {"env": dict(os.environ), "cwd": os.getcwd(), "uid": os.getuid(), "umask": oct(os.umask(0o022))}
for path in ("/usr/bin/x", "/toolchain/tool.txt", "/etc/hostname-x"):
    try:
        open(path, "w").close(); out[path] = "writable"
    except OSError as e:
        out[path] = e.errno
out["tool"] = open("/toolchain/tool.txt").read()
out["host_dirs"] = [p for p in ("/work", "/root", "/home", "/opt", "/var") if os.path.exists(p)]
out["var"] = [str(p) for p in pathlib.Path("/var").glob("*/*")] + os.listdir("/var/lib") if os.path.exists("/var") else []
try:
    socket.create_connection(("1.1.1.1", 80), timeout=3); out["net"] = "reached"
except OSError as e:
    out["net"] = str(e)
out["ifaces"] = sorted(os.listdir("/sys/class/net")) if os.path.exists("/sys/class/net") else []
pathlib.Path("out").mkdir(); pathlib.Path("out/probe.json").write_text(json.dumps(out, sort_keys=True))
"""


def test_sandbox_isolation(conveyor, sandbox, tmp_path):
    tool = tmp_path / "tool.txt"
    tool.write_text("toolchain input\n")
    import hashlib

    builder = current_builder(conveyor)
    tool_entry, _ = conveyor.escrow.add_input(
        tool.read_bytes(), name="tool.txt", service=conveyor.signing_service(), key=builder
    )
    sha = hashlib.sha256(tool.read_bytes()).hexdigest()
    assert tool_entry.sha256 == sha
    recipe = f"""
[build]
steps = [["python3", "probe.py"]]
outputs = ["out/probe.json"]
[build.env]
TZ = "Europe/Zurich"
SOURCE_DATE_EPOCH = 1700000000
[[toolchain]]
name = "tool.txt"
sha256 = "{sha}"
"""
    entry = escrow_tree(conveyor, tmp_path, {"probe.py": PROBE}, recipe)
    report = run(conveyor, entry)
    probe = json.loads(report.outputs[0].path.read_text())
    assert probe["cwd"] == "/build" and probe["uid"] == 1000 and probe["umask"] == "0o22"
    assert probe["env"] == {
        "HOME": "/tmp/home",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PWD": "/build",
        "PYTHONHASHSEED": "0",
        "SOURCE_DATE_EPOCH": "1700000000",
        "TZ": "Europe/Zurich",
    }
    assert probe["/usr/bin/x"] in (13, 30) and probe["/toolchain/tool.txt"] in (13, 30)  # EACCES or EROFS
    assert probe["tool"] == "toolchain input\n"
    # Of the host's /var, only the dpkg database (read-only, for Debian tooling and the recorded environment).
    assert probe["host_dirs"] == (["/var"] if DPKG_STATUS.is_file() else [])
    assert probe["var"] == (["/var/lib/dpkg", "dpkg"] if DPKG_STATUS.is_file() else [])
    assert probe["net"] != "reached" and probe["ifaces"] in ([], ["lo"])


C_PROGRAM = r"""
#include <stdio.h>
int main(void) { printf("hello from overt\n"); return 0; }
"""


def test_gcc_build_reproduces_under_check(conveyor, sandbox, tmp_path):
    require(shutil.which("gcc") is not None, "gcc not installed (Debian package gcc)")
    recipe = """
[build]
steps = ["mkdir -p out", "gcc -O2 -g -o out/hello hello.c", "./out/hello > out/hello.txt"]
outputs = ["out/hello", "out/hello.txt"]
"""
    entry = escrow_tree(conveyor, tmp_path, {"hello.c": C_PROGRAM}, recipe)
    report = run(conveyor, entry, check=True)
    assert report.verdict is not None and report.verdict.verdict == IDENTICAL
    assert {o.name for o in report.outputs} == {"out/hello", "out/hello.txt"}
    assert (report.directory / "out" / "hello.txt").read_text() == "hello from overt\n"


def test_build_time_embedding_fails_check_with_a_diffoscope_report(conveyor, sandbox, tmp_path):
    require(
        shutil.which("diffoscope") is not None, "diffoscope not installed (Debian package diffoscope-minimal)"
    )
    recipe = """
[build]
steps = ["mkdir -p out", "echo version 1.0 > out/info.txt", "date -u +built-at-%Y-%m-%dT%H:%M:%S.%N >> out/info.txt"]
outputs = ["out/info.txt"]
"""
    entry = escrow_tree(conveyor, tmp_path, {"README": "x\n"}, recipe)
    before = log_size(conveyor)
    with pytest.raises(ReproducibilityError, match=r"out/info\.txt differs") as e:
        run(conveyor, entry, check=True)
    report = (Path(e.value.evidence["directory"]) / "diffoscope.txt").read_text()
    assert (
        "info.txt" in report
        and "built-at-" in report
        and "version 1.0" not in report.replace("version 1.0\n", "")
    )
    assert log_size(conveyor) == before  # nothing signed, nothing logged


ZIP_WITH_TIME = r"""
import time, zipfile, pathlib
pathlib.Path("out").mkdir()
with zipfile.ZipFile("out/app.zip", "w") as z:
    z.writestr(zipfile.ZipInfo("app.txt", time.localtime()[:6]), "same content\n")
"""


@pytest.mark.parametrize("normalize", [False, True])
def test_normalisation_only_when_asked_and_never_called_identical(conveyor, sandbox, tmp_path, normalize):
    recipe = '[build]\nsteps = [["python3", "mkzip.py"]]\noutputs = ["out/app.zip"]\n'
    if normalize:
        recipe += '[normalize]\nformats = ["zip"]\n'
    entry = escrow_tree(conveyor, tmp_path, {"mkzip.py": ZIP_WITH_TIME}, recipe, name=f"zip-{normalize}")
    if not normalize:
        with pytest.raises(ReproducibilityError):
            run(conveyor, entry, check=True)
        return
    report = run(conveyor, entry, check=True)
    assert report.verdict is not None and report.verdict.verdict == EQUIVALENT
    assert report.verdict.normalised == ("out/app.zip",)
    prov = Provenance.from_statement(
        verify_statement(report.signed.envelope, [current_builder(conveyor).key])
    )
    assert prov.build_definition.internal_parameters["reproducibility"] == EQUIVALENT


def test_provenance_fields(conveyor, sandbox, tmp_path):
    recipe = '[build]\nsteps = ["mkdir -p out && cp data.txt out/"]\noutputs = ["out/data.txt"]\n'
    entry = escrow_tree(conveyor, tmp_path, {"data.txt": "payload\n"}, recipe)
    report = run(conveyor, entry, check=True)
    builder = current_builder(conveyor)
    logged = Envelope.from_bytes((report.directory / "provenance.dsse.json").read_bytes())
    st = verify_statement(logged, [builder.key])
    assert [(s.name, dict(s.digest)) for s in st.subject] == [
        ("out/data.txt", {"sha256": report.outputs[0].sha256})
    ]
    prov = Provenance.from_statement(st)
    ext = prov.build_definition.external_parameters
    assert ext["source"]["digest"] == {"sha256": entry.sha256, "dirHash": entry.dir_hash}
    assert ext["recipe"]["steps"] == [["/bin/sh", "-e", "-c", "mkdir -p out && cp data.txt out/"]]
    assert prov.run_details.builder.id == "https://overt.example/conveyor/v1?jurisdiction=CH"
    assert prov.build_definition.internal_parameters["jurisdiction"] == "CH"
    assert prov.run_details.metadata.invocation_id and prov.run_details.metadata.started_on
    source, *others = prov.build_definition.resolved_dependencies
    assert source.digest["sha256"] == entry.sha256
    # No toolchain input: besides the source, only the host's environment (when it has a dpkg database).
    assert [d.name for d in others] == (["environment:debian"] if DPKG_STATUS.is_file() else [])
    # The escrow was logged before the build's provenance.
    assert entry.log_index < report.signed.receipt.index


@pytest.mark.parametrize(
    ("files", "recipe", "error", "message"),
    [
        (
            {},
            '[build]\nsteps = ["exit 3"]\noutputs = ["x"]\n',
            BuildError,
            "step 1 failed with exit status 3",
        ),
        ({}, '[build]\nsteps = ["true"]\noutputs = ["dist/*.whl"]\n', BuildError, "matched no file"),
        (
            {},
            '[build]\nsteps = ["sleep 30"]\noutputs = ["x"]\ntimeout = 1\n',
            BuildError,
            "timed out after 1 s",
        ),
        (
            {"net.py": "import urllib.request\nurllib.request.urlopen('http://1.1.1.1/', timeout=5)\n"},
            '[build]\nsteps = [["python3", "net.py"]]\noutputs = ["x"]\n',
            BuildError,
            "step 1 failed",
        ),
        (
            {},
            '[build]\nsteps = ["head -c 3000 /dev/zero > big"]\noutputs = ["big"]\nmax_output_bytes = 1000\n',
            BuildError,
            "output limit|exit status",
        ),
        (
            {},
            '[build]\nsteps = ["true"]\noutputs = ["x"]\n[[toolchain]]\nname = "t"\nsha256 = "'
            + "ab" * 32
            + '"\n',
            ConfigError,
            "not in escrow",
        ),
    ],
    ids=[
        "failing-step",
        "missing-output",
        "timeout",
        "network",
        "output-limit",
        "unknown-input",
    ],
)
def test_bad_builds_log_nothing(conveyor, sandbox, tmp_path, files, recipe, error, message):
    entry = escrow_tree(conveyor, tmp_path, files or {"README": "x\n"}, recipe)
    before = log_size(conveyor)
    with pytest.raises(error, match=message) as e:
        run(conveyor, entry)
    if "net.py" in files:
        assert "Network is unreachable" in e.value.evidence["log"]
    assert log_size(conveyor) == before
    assert not (conveyor.paths.public / "builds").exists() or not any(
        (conveyor.paths.public / "builds").iterdir()
    )


def test_tampered_toolchain_input_is_refused(conveyor, sandbox, tmp_path):
    import hashlib

    builder = current_builder(conveyor)
    data = b"pinned tool\n"
    tool, _ = conveyor.escrow.add_input(data, name="tool", service=conveyor.signing_service(), key=builder)
    recipe = f'[build]\nsteps = ["true"]\noutputs = ["x"]\n[[toolchain]]\nname = "tool"\nsha256 = "{hashlib.sha256(data).hexdigest()}"\n'
    entry = escrow_tree(conveyor, tmp_path, {"README": "x\n"}, recipe)
    (conveyor.escrow.directory / tool.sha256).write_bytes(b"swapped tool\n")
    before = log_size(conveyor)
    with pytest.raises(VerificationError, match="does not match its digest"):
        run(conveyor, entry)
    assert log_size(conveyor) == before


def test_sandbox_dies_with_its_parent(sandbox, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    build_dir = tmp_path / "b"
    build_dir.mkdir()
    token = f"sleep {1000 + os.getpid() % 50000}"  # unique, so leftovers of other runs cannot interfere
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from overt.build.sandbox import run_steps; "
            f"run_steps([['/bin/sh', '-c', 'touch started; exec {token}']], build_dir=Path({str(build_dir)!r}), "
            f"toolchain={{}}, env={{}}, timeout=600, max_output_bytes=1<<20, log_path=Path({str(tmp_path / 'log')!r}))",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not (build_dir / "started").exists():
            assert time.monotonic() < deadline, "the sandboxed step never started"
            time.sleep(0.05)
        assert subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 0
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 10
        while subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "the sandbox outlived its parent"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()


def test_clear_error_without_bubblewrap(monkeypatch, tmp_path):
    from overt.build import sandbox as sb

    monkeypatch.setattr(sb, "_checked", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="bubblewrap is not installed: apt-get install bubblewrap"):
        sb.check_sandbox()
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ConfigError, match=r"user namespaces blocked.*No permissions"):
        sb.check_sandbox()


def test_auditors_fetch_escrow_over_plain_http(conveyor, tmp_path):
    import hashlib

    import httpx

    from overt.server.log import create_app
    from overt.server.runner import BackgroundServer

    entry = escrow_tree(
        conveyor, tmp_path, {"a.txt": "audit me\n"}, '[build]\nsteps = ["true"]\noutputs = ["a.txt"]\n'
    )
    with BackgroundServer(create_app(conveyor)) as srv, httpx.Client() as http:
        got = http.get(f"{srv.url}/escrow/{entry.sha256}")
        meta = http.get(f"{srv.url}/escrow/{entry.sha256}.json").json()
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == entry.sha256
    assert meta["dirHash"] == entry.dir_hash and meta["log_index"] == entry.log_index


def test_check_really_varies_directory_order(conveyor, sandbox, tmp_path):
    """A build that lists a directory unsorted must fail --check: the second run creates files in reverse."""
    require(
        Path("/dev/shm").is_dir(), "no /dev/shm tmpfs: directory order follows creation order only on tmpfs"
    )
    recipe = (
        '[build]\nsteps = ["mkdir -p out", "ls -f src > out/listing.txt"]\noutputs = ["out/listing.txt"]\n'
    )
    files = {f"src/file{i}.txt": f"{i}\n" for i in range(8)}
    entry = escrow_tree(conveyor, tmp_path, files, recipe)
    with pytest.raises(ReproducibilityError, match=r"out/listing\.txt differ"):
        run(conveyor, entry, check=True)
    sorted_recipe = recipe.replace("ls -f src", "ls src")
    report = run(conveyor, escrow_tree(conveyor, tmp_path, files, sorted_recipe, name="sorted"), check=True)
    assert report.verdict is not None and report.verdict.verdict == IDENTICAL
