"""Database packages: byte-identical across separate processes, compiled rules only when provably deterministic,
hash files that ClamAV reads, tamper detection, and rule parsing errors."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.avdb.compile import compile_in_sandbox, compiled_if_deterministic
from overt.avdb.package import COMPILED, build_database, read_database, serialise
from overt.errors import BuildError, FormatError, VerificationError
from tests.avdb.samples import EICAR_RULE, hdb, rule, ruleset

TREE = {
    "yara/eicar.yar": EICAR_RULE,
    "yara/more.yar": rule("Dropper_X", "OVT-0002", '    $a = "evil-dropper-marker"', "$a")
    + rule("Dropper_Y", "OVT-0003", "    $b = { 6A 40 68 00 30 00 00 6A 14 }", "$b"),
    "hashes/main.hdb": hdb(["44d88612fea8a8f36de82e1278abb02f:68:Overt.Test.EICAR-HDB"]),
    "hashes/main.hsb": hdb(
        ["275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:68:Overt.Test.EICAR-HSB"]
    ),
}

BUILD_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from overt.avdb.compile import compiled_if_deterministic
from overt.avdb.package import build_database
from tests.avdb.samples import ruleset
from tests.avdb.test_package import TREE
rules = ruleset(TREE, strict=True)
data = build_database(rules, name="t", version=3, compiled=compiled_if_deterministic(dict(rules.yara_files)))
Path(sys.argv[1]).write_bytes(data)
"""


def test_same_rules_same_database_in_separate_processes(tmp_path, sandbox):
    root = str(Path(__file__).resolve().parents[2])
    outs = []
    for n in (1, 2):
        out = tmp_path / f"db{n}"
        env = {"PYTHONHASHSEED": str(n * 7919), "PATH": "/usr/bin:/bin"}
        subprocess.run(
            [sys.executable, "-c", BUILD_SCRIPT.format(root=root), str(out)], check=True, env=env, cwd=root
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    db = read_database(outs[0])
    assert db.name == "t" and db.version == 3 and db.compiled is not None
    assert [r["id"] for r in db.manifest["rules"]] == [
        "OVT-0001",
        "OVT-0002",
        "OVT-0003",
        "Overt.Test.EICAR-HDB",
        "Overt.Test.EICAR-HSB",
    ]


def test_yara_x_serialisation_is_deterministic_across_sandboxes(sandbox):
    """The finding that decides whether databases carry compiled rules (see overt.avdb.compile): two sandboxed
    compilations agree, and agree with the in-process compiler an endpoint runs when it applies a delta."""
    sources = dict(ruleset(TREE, strict=True).yara_files)
    assert compiled_if_deterministic(sources) == serialise(sources)
    assert compiled_if_deterministic({}) is None


def test_the_compiler_runs_in_the_sandbox(sandbox, monkeypatch):
    """A rule tree the sandboxed compiler rejects fails the build with the compiler's message; the sandbox has
    no network and no host paths (the compiler sees only /build and the yara-x package)."""
    import overt.avdb.compile as compile_mod

    with pytest.raises(BuildError, match="step 1 failed") as e:
        compile_in_sandbox({"bad.yar": "rule broken { condition: nope }"})
    assert "unknown identifier" in e.value.evidence["log"]
    probe = (
        "import os, socket\n"
        "assert not os.path.exists('/work') and not os.path.exists('/root'), 'host paths visible'\n"
        "assert os.getcwd() == '/build' and os.getuid() == 1000\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "    raise SystemExit('network reachable')\n"
        "except OSError:\n"
        "    pass\n"
    )
    monkeypatch.setattr(compile_mod, "SCRIPT", probe + compile_mod.SCRIPT)
    sources = dict(ruleset(TREE, strict=True).yara_files)
    assert compile_in_sandbox(sources) == serialise(sources)


def test_contents_and_clamav_files():
    rules = ruleset(TREE, strict=True)
    db = read_database(build_database(rules, name="t", version=1, compiled=None))
    assert COMPILED not in db.files and db.manifest["compiled"] is False
    assert db.files["clamav/t.hdb"] == b"44d88612fea8a8f36de82e1278abb02f:68:Overt.Test.EICAR-HDB\n"
    assert b"#" not in db.files["clamav/t.hsb"]
    assert set(db.yara_sources) == {"yara/eicar.yar", "yara/more.yar"}
    assert db.rules().by_id().keys() == rules.by_id().keys()


def test_tampering_is_detected():
    import gzip
    import io
    import tarfile

    data = build_database(ruleset(TREE, strict=True), name="t", version=1, compiled=None)
    raw = io.BytesIO(gzip.decompress(data))
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=raw) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for m in src.getmembers():
            content = src.extractfile(m).read() if m.isfile() else b""
            if m.name == "clamav/t.hdb":
                content = content.replace(b"44d8", b"0000")
                m.size = len(content)
            dst.addfile(m, io.BytesIO(content) if m.isfile() else None)
    with pytest.raises(VerificationError, match="does not match its manifest"):
        read_database(gzip.compress(out.getvalue()))
    with pytest.raises(FormatError):
        read_database(b"not a database")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"r.yar": "rule x { condition: }"}, "does not compile"),
        ({"r.yar": 'rule x { meta: id = "a" condition: true }'}, "lacks metadata"),
        ({"r.yar": EICAR_RULE, "s.yar": EICAR_RULE.replace("EICAR_Test_File", "Other")}, "used twice"),
        ({"h.hdb": hdb(["zz:68:X"])}, "not an MD5"),
        (
            {"h.hdb": hdb(["275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:68:X"])},
            "put sha256 in a .hsb",
        ),
        ({"h.hdb": hdb(["44d88612fea8a8f36de82e1278abb02f:big:X"])}, "not a number"),
        ({"h.hdb": hdb(["44d88612fea8a8f36de82e1278abb02f:68:bad name"])}, "signature name"),
        ({"h.hdb": "44d88612fea8a8f36de82e1278abb02f:68:X\n"}, "metadata headers"),
        ({"README": "nothing"}, "no YARA rule"),
    ],
)
def test_bad_rule_trees(files, message):
    with pytest.raises(FormatError, match=message):
        ruleset(files, strict=True)


@settings(max_examples=60)
@given(st.text(max_size=200))
def test_fuzz_rule_sources(text):
    with contextlib.suppress(FormatError):
        ruleset({"r.yar": text}, strict=True)
    with contextlib.suppress(FormatError):
        ruleset({"h.hdb": text}, strict=True)


@settings(max_examples=40)
@given(st.binary(max_size=400))
def test_fuzz_database_bytes(data):
    with contextlib.suppress(FormatError, VerificationError):
        read_database(data)
