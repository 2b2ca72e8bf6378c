"""The build environment is an input the provenance names: the dpkg status parser (fuzzed), the canonical
document and its digest, the comparison a rebuilder reports, and the dpkg files the sandbox provides."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.attest.provenance import Provenance
from overt.attest.verify import verify_statement
from overt.build.environment import (
    DPKG_STATUS,
    ENVIRONMENT_FILE,
    ENVIRONMENT_NAME,
    Environment,
    Package,
    compare_environments,
    current_environment,
    parse_status,
)
from overt.build.outputs import PUBLISHED_BESIDE
from overt.build.run import run_and_compare
from overt.build.sandbox import run_steps
from overt.errors import FormatError
from tests.build.helpers import current_builder, escrow_tree, run
from tests.conftest import require

names = st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,20}", fullmatch=True)
versions = st.from_regex(r"([0-9]{1,2}:)?[0-9][0-9A-Za-z.+~]{0,8}(-[0-9A-Za-z.+~]{1,6})?", fullmatch=True)
arches = st.sampled_from(["amd64", "arm64", "i386", "all", "riscv64"])
packages = st.builds(Package, name=names, version=versions, architecture=arches)


def _environment(pkgs: list[Package], architecture: str = "amd64") -> Environment:
    unique = {p.key: p for p in pkgs if p.name != "dpkg"}
    dpkg = Package(name="dpkg", version="1.21.22", architecture=architecture)
    return Environment.of(architecture=architecture, packages=[dpkg, *unique.values()])


environments = st.builds(_environment, st.lists(packages, max_size=12), arches.filter(lambda a: a != "all"))


def _stanza(p: Package, *, state: str = "installed", case: bool = False, extra: bool = True) -> bytes:
    fields = [
        ("Package", p.name),
        ("Status", f"install ok {state}"),
        ("Architecture", p.architecture),
        ("Version", p.version),
    ]
    if extra:
        fields += [("Description", "a tool\n several lines\n .\n  - indented\n \xff\xfe not UTF-8")]
        fields += [("Depends", "libc6 (>= 2.36)")]
    lines = [f"{k.upper() if case else k}: {v}" for k, v in fields]
    return "\n".join(lines).encode("latin-1") + b"\n"


def _status(env: Environment, *, gone: list[Package] | None = None, seed: int = 0) -> bytes:
    stanzas = [_stanza(p, case=i % 3 == seed % 3, extra=i % 2 == 0) for i, p in enumerate(env.packages)]
    stanzas += [_stanza(p, state="config-files") for p in gone or []]
    stanzas.reverse()  # dpkg's order is not the document's
    return (b"\n" if seed % 2 else b" \t\n").join(stanzas)


# -- the status file -----------------------------------------------------------------------------------------


def test_this_hosts_status_file_reads_as_dpkg_query_lists_it():
    require(DPKG_STATUS.is_file() and shutil.which("dpkg-query") is not None, "no dpkg database on this host")
    env = parse_status(DPKG_STATUS.read_bytes())
    fmt = "${db:Status-Status} ${Package} ${Version} ${Architecture}\n"
    query = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True, check=True).stdout
    listed = sorted(
        tuple(line.split()[1:])
        for line in query.splitlines()
        if line.split()[0] not in ("not-installed", "config-files")
    )
    assert sorted((p.name, p.version, p.architecture) for p in env.packages) == listed
    native = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    assert env.architecture == native.stdout.strip()


@settings(max_examples=150)
@given(environments, st.lists(packages, max_size=3), st.integers(0, 5))
def test_a_status_file_parses_to_the_packages_it_installs(env, gone, seed):
    gone = [p for p in gone if p.key not in {q.key for q in env.packages}]
    gone = list({p.key: p for p in gone}.values())
    assert parse_status(_status(env, gone=gone, seed=seed)) == env


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_an_environment_or_a_format_error(data):
    try:
        env = parse_status(data)
    except FormatError:
        return
    assert Environment.from_bytes(env.to_bytes()) == env


@settings(max_examples=300)
@given(environments, st.data())
def test_a_damaged_status_file_gives_an_environment_or_a_format_error(env, data):
    status = bytearray(_status(env))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(status)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from([b"\n", b" ", b":", b"\xff", b"A", b"\t", b"#", b"\r"]))
        if op == "insert":
            status[at:at] = byte
        elif op == "delete":
            del status[at : at + 1]
        else:
            status[at : at + 1] = byte
    try:
        damaged = parse_status(bytes(status))
    except FormatError:
        return
    assert Environment.from_bytes(damaged.to_bytes()) == damaged


DPKG = b"Package: dpkg\nStatus: install ok installed\nVersion: 1.21.22\nArchitecture: amd64\n"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (b" continued\n" + DPKG, "line 1: a continuation line outside any field"),
        (DPKG + b"no colon here\n", "line 5: not a 'Field: value' line"),
        (DPKG + b"package: dpkg\n", "field package given twice"),
        (DPKG + b"\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n", "line 6 has no Package"),
        (DPKG + b"\nPackage: x1\nVersion: 1\nArchitecture: all\n", "line 6 has no Status"),
        (DPKG + b"\nPackage: x1\nStatus: install ok sideways\nVersion: 1\n", "is not a dpkg status"),
        (DPKG + b"\nPackage: X_1\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n", "not a Debian package name"),
        (DPKG + b"\nPackage: x1\nStatus: install ok installed\nVersion: 1 2\nArchitecture: all\n", "not a Debian version"),
        (DPKG + b"\nPackage: x1\nStatus: install ok installed\nVersion: 1\n", "has no Architecture"),
        (DPKG + b"\nPackage: x1\nStatus: install ok installed\nVersion: 1\n 2\nArchitecture: all\n", "Version is not one ASCII line"),
        (DPKG + b"\nPackage: x1\nStatus: install ok installed\nVersion: 1\xff\nArchitecture: all\n", "Version is not one ASCII line"),
        (DPKG + b"\n" + DPKG, "no (or more than one) installed dpkg"),
        (DPKG + b"\n" + DPKG.replace(b": dpkg", b": dpkg-dev") * 2, "line 10: field Package given twice"),
        (DPKG + (b"\n" + DPKG.replace(b": dpkg", b": dpkg-dev")) * 2, "dpkg-dev:amd64 is listed twice"),
        (DPKG.replace(b"installed", b"config-files"), "names no native architecture"),
        (b"", "names no native architecture"),
    ],
)  # fmt: skip
def test_what_dpkg_would_not_write_is_refused_with_its_reason(status, message):
    with pytest.raises(FormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_status(status)


def test_removed_packages_with_only_config_files_are_not_part_of_the_environment():
    status = DPKG + b"\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n"
    status += b"\nPackage: purged\nStatus: purge ok not-installed\n"
    status += b"\nPackage: half\nStatus: install reinstreq half-configured\nVersion: 2\nArchitecture: amd64\n"
    assert [p.name for p in parse_status(status).packages] == ["dpkg", "half"]


def test_the_host_environment_is_read_once_and_again_when_dpkg_changes_it(tmp_path):
    status = tmp_path / "status"
    assert current_environment(status) is None  # no dpkg database: no environment, not an empty one
    status.write_bytes(DPKG)
    first = current_environment(status)
    assert first is not None and current_environment(status) is first
    new = tmp_path / "status-new"
    new.write_bytes(
        DPKG + b"\nPackage: gcc-12\nStatus: install ok installed\nVersion: 12.2.0-14\nArchitecture: amd64\n"
    )
    os.replace(new, status)  # as dpkg does
    second = current_environment(status)
    assert second is not None and [p.name for p in second.packages] == ["dpkg", "gcc-12"]
    status.write_bytes(b"garbage\n")
    with pytest.raises(FormatError, match=f"{status}: dpkg status line 1"):
        current_environment(status)


# -- the document --------------------------------------------------------------------------------------------


@given(environments)
def test_the_document_round_trips_and_its_digest_is_its_sha256(env):
    data = env.to_bytes()
    assert Environment.from_bytes(data) == env
    assert Environment.from_bytes(data).to_bytes() == data
    assert env.sha256 == hashlib.sha256(data).hexdigest()
    assert env.descriptor().digest == {"sha256": env.sha256}


@given(environments, st.randoms())
def test_the_document_does_not_depend_on_the_order_packages_are_found_in(env, random):
    shuffled = list(env.packages)
    random.shuffle(shuffled)
    assert Environment.of(architecture=env.architecture, packages=shuffled).to_bytes() == env.to_bytes()


def test_only_the_canonical_document_is_accepted():
    env = _environment([Package(name="gcc-12", version="12.2.0-14", architecture="amd64")])
    obj = json.loads(env.to_bytes())
    assert env.to_bytes().startswith(
        b'{"architecture":"amd64","packages":[{"architecture":"amd64","name":"dpkg"'
    )
    unsorted = dict(obj, packages=list(reversed(obj["packages"])))
    cases = [
        ("not in canonical form", json.dumps(obj, indent=1).encode()),
        ("not in canonical form", json.dumps(unsorted, sort_keys=True, separators=(",", ":")).encode()),
        ("exactly the fields", json.dumps(dict(obj, extra=1)).encode()),
        ("has type", json.dumps(dict(obj, type="https://example.com/other")).encode()),
        ("not a Debian version", env.to_bytes().replace(b"12.2.0-14", b"12 2")),
        ("listed twice", env.to_bytes().replace(b'"dpkg"', b'"gcc-12"')),
        ("not valid JSON", env.to_bytes()[:-1]),
    ]
    for message, data in cases:
        with pytest.raises(FormatError, match=message):
            Environment.from_bytes(data)


# -- comparison ----------------------------------------------------------------------------------------------


def _pkg(spec: str) -> Package:
    name, version, arch = spec.split()
    return Package(name=name, version=version, architecture=arch)


def test_a_rebuilder_is_told_which_packages_differ():
    recorded = _environment(
        [_pkg("gcc-12 12.2.0-14 amd64"), _pkg("make 4.3-4.1 amd64"), _pkg("perl 5.36.0-7 amd64")]
    )
    own = _environment(
        [_pkg("gcc-12 12.2.0-15 amd64"), _pkg("perl 5.36.0-7 amd64"), _pkg("zstd 1.5.4 amd64")]
    )
    diff = compare_environments(recorded=recorded, own=own)
    assert not diff.same and diff.architecture is None
    assert [(c.name, c.recorded.version, c.own.version) for c in diff.changed] == [
        ("gcc-12", "12.2.0-14", "12.2.0-15")
    ]
    assert diff.removed == (_pkg("make 4.3-4.1 amd64"),) and diff.added == (_pkg("zstd 1.5.4 amd64"),)
    assert diff.text() == (
        "environment differs: gcc-12 12.2.0-14 vs 12.2.0-15; make:amd64 4.3-4.1 recorded, not installed here; "
        "zstd:amd64 1.5.4 installed here, not recorded"
    )
    assert diff.to_dict()["changed"][0]["own"] == {
        "name": "gcc-12",
        "version": "12.2.0-15",
        "architecture": "amd64",
    }
    assert (diff.recorded_sha256, diff.own_sha256) == (recorded.sha256, own.sha256)


def test_architectures_and_multiarch_packages_are_compared_per_architecture():
    recorded = _environment(
        [_pkg("python3 3.11.2-1 amd64"), _pkg("libc6 2.36-9 amd64"), _pkg("libc6 2.36-9 i386")]
    )
    own = _environment([_pkg("python3 3.11.2-1 arm64"), _pkg("libc6 2.36-9 arm64")], architecture="arm64")
    diff = compare_environments(recorded=recorded, own=own)
    assert diff.architecture == ("amd64", "arm64")
    assert [c.text() for c in diff.changed] == [
        "dpkg 1.21.22 (amd64) vs 1.21.22 (arm64)",
        "python3 3.11.2-1 (amd64) vs 3.11.2-1 (arm64)",
    ]
    assert {p.architecture for p in diff.removed} == {"amd64", "i386"} and diff.added == (
        _pkg("libc6 2.36-9 arm64"),
    )
    assert diff.text().startswith("environment differs: architecture amd64 vs arm64; dpkg 1.21.22 (amd64) vs")
    assert diff.text().endswith("; and 1 more")


@given(environments, environments)
def test_the_difference_is_empty_exactly_when_the_documents_are_equal_and_accounts_for_every_package(a, b):
    diff = compare_environments(recorded=a, own=b)
    empty = not (diff.added or diff.removed or diff.changed or diff.architecture)
    assert diff.same == empty == (a.to_bytes() == b.to_bytes())
    own = {p.key for p in a.packages} - {p.key for p in diff.removed} - {c.recorded.key for c in diff.changed}
    own |= {p.key for p in diff.added} | {c.own.key for c in diff.changed}
    assert own == {p.key for p in b.packages}
    assert compare_environments(recorded=a, own=a).text() == "environment identical"


# -- the sandbox and the provenance --------------------------------------------------------------------------


def _in_sandbox(tmp_path: Path, command: str) -> str:
    """What ``command`` prints in the build sandbox (with a sandbox of its own, fresh build directory)."""
    build = Path(tempfile.mkdtemp(dir=tmp_path, prefix="sandboxed-"))
    step = ["sh", "-c", f"{{ {command} ; }} > out.txt"]
    run_steps([step], build_dir=build, toolchain={}, env={}, timeout=60, max_output_bytes=1 << 20,
              log_path=build.with_suffix(".log"))  # fmt: skip
    return (build / "out.txt").read_text()


def test_dpkg_buildflags_gives_the_hosts_flags_inside_the_sandbox(sandbox, tmp_path):
    tool = shutil.which("dpkg-buildflags")
    require(tool is not None, "dpkg-buildflags not installed (Debian package dpkg-dev)")
    assert tool is not None
    here = tmp_path / "host"
    here.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(here)}
    host = subprocess.run(
        [tool, "--get", "CFLAGS"], cwd=here, env=env, capture_output=True, text=True, check=True
    )
    flags = host.stdout.replace(str(here), "/build").strip()
    assert "-O2" in flags  # a CFLAGS without -O2 would mean the host's own dpkg-dev is unconfigured
    assert _in_sandbox(tmp_path, "dpkg-buildflags --get CFLAGS").strip() == flags


def test_the_recorded_environment_is_the_dpkg_database_the_build_sees(sandbox, tmp_path):
    require(DPKG_STATUS.is_file(), "no dpkg database on this host")
    inside = _in_sandbox(tmp_path, "sha256sum /var/lib/dpkg/status && ls /etc/dpkg /etc/ld.so.conf.d | wc -l")
    digest, _, count = inside.partition("  /var/lib/dpkg/status\n")
    assert digest == hashlib.sha256(DPKG_STATUS.read_bytes()).hexdigest()
    assert int(count) > 2
    assert _in_sandbox(tmp_path, "touch /var/lib/dpkg/x 2>&1 || echo refused").strip().endswith("refused")


RECIPE = '[build]\nsteps = ["mkdir -p out && cp data.txt out/"]\noutputs = ["out/data.txt"]\n'


def test_the_provenance_names_the_environment_published_beside_the_build(conveyor, sandbox, tmp_path):
    env = current_environment()
    require(env is not None, "no dpkg database on this host")
    assert env is not None and ENVIRONMENT_FILE in PUBLISHED_BESIDE
    entry = escrow_tree(conveyor, tmp_path, {"data.txt": "payload\n"}, RECIPE)
    report = run(conveyor, entry)
    prov = Provenance.from_statement(
        verify_statement(report.signed.envelope, [current_builder(conveyor).key])
    )
    (dep,) = [d for d in prov.build_definition.resolved_dependencies if d.name == ENVIRONMENT_NAME]
    published = (report.directory / ENVIRONMENT_FILE).read_bytes()
    assert dep.digest == {"sha256": hashlib.sha256(published).hexdigest()} == {"sha256": env.sha256}
    assert dep.uri == ENVIRONMENT_FILE and dep.annotations["packages"] == len(env.packages) > 0
    assert Environment.from_bytes(published) == env
    assert report.to_dict()["environment"] == env.sha256
    (out,) = report.outputs
    assert (report.directory / out.name).read_bytes() == b"payload\n"  # recorded beside, not in, the outputs


def test_run_and_compare_reports_how_its_environment_differs_from_a_recorded_one(conveyor, sandbox, tmp_path):
    own = current_environment()
    require(own is not None, "no dpkg database on this host")
    assert own is not None
    first = own.packages[0]
    older = Package(name=first.name, version=first.version + "~old1", architecture=first.architecture)
    recorded = Environment.of(architecture=own.architecture, packages=[older, *own.packages[1:]])
    entry = escrow_tree(conveyor, tmp_path, {"data.txt": "payload\n"}, RECIPE)
    for work in ("work", "work-same"):
        (tmp_path / work).mkdir()
    result = run_and_compare(
        conveyor.escrow, entry.sha256, workdir=tmp_path / "work", recorded_environment=recorded
    )
    diff = result.environment_difference
    assert diff is not None and result.environment == own
    assert diff.text() == f"environment differs: {first.name} {first.version}~old1 vs {first.version}"
    assert result.to_dict()["environment"]["difference"]["text"] == diff.text()
    same = run_and_compare(
        conveyor.escrow, entry.sha256, workdir=tmp_path / "work-same", recorded_environment=own
    )
    assert same.environment_difference is not None and same.environment_difference.same
