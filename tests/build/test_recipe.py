"""overt.toml: what a good recipe parses to, a clear error for every broken one, and fuzzing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.build.outputs import PUBLISHED_BESIDE
from overt.build.recipe import RESERVED_OUTPUTS, is_posix_tz, parse_recipe, validate_recipe
from overt.errors import FormatError

SHA = "7661029dedadd456c1d94e0a4765222447f00808bb1fcc767e4270a883ba8b4c"
GOOD = f"""
[build]
steps = ["mkdir -p dist", ["python3", "-c", "print(1)"]]
outputs = ["dist/*.whl"]
timeout = 120

[build.env]
TZ = "America/Los_Angeles"
SOURCE_DATE_EPOCH = "unset"
PYTHONPATH = "/toolchain/flit.whl"

[[toolchain]]
name = "flit.whl"
sha256 = "{SHA}"

[normalize]
formats = ["zip"]
"""


def test_good_recipe():
    r = parse_recipe(GOOD.encode())
    assert r.steps == (("/bin/sh", "-e", "-c", "mkdir -p dist"), ("python3", "-c", "print(1)"))
    assert r.outputs == ("dist/*.whl",)
    assert r.env == {"TZ": "America/Los_Angeles", "PYTHONPATH": "/toolchain/flit.whl"}
    assert r.pinned == ("TZ", "buildPath") and r.umask is None and not r.vary_build_path
    assert r.source_date_epoch == "unset" and r.timeout == 120 and r.normalize == ("zip",)
    assert r.toolchain[0].name == "flit.whl" and r.toolchain[0].mount == "/toolchain/flit.whl"
    assert r.to_dict()["toolchain"] == [{"name": "flit.whl", "sha256": SHA}]


def test_defaults():
    r = parse_recipe(b'[build]\nsteps = ["true"]\noutputs = ["x"]\n')
    assert r.env == {} and r.pinned == ("buildPath",)
    assert r.source_date_epoch == "latest-mtime" and r.toolchain == () and r.normalize == ()
    assert (
        parse_recipe(
            b'[build]\nsteps = ["true"]\noutputs = ["x"]\nenv = {SOURCE_DATE_EPOCH = 1700000000}\n'
        ).source_date_epoch
        == "1700000000"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[build\n", "not valid TOML"),
        ("", "missing \\[build\\]"),
        ('[build]\noutputs = ["x"]\n', "steps must be a non-empty"),
        ('[build]\nsteps = []\noutputs = ["x"]\n', "steps must be a non-empty"),
        ('[build]\nsteps = [[]]\noutputs = ["x"]\n', "steps\\[0\\]"),
        ('[build]\nsteps = [3]\noutputs = ["x"]\n', "steps\\[0\\]"),
        ('[build]\nsteps = ["true"]\n', "outputs"),
        ('[build]\nsteps = ["true"]\noutputs = ["/etc/passwd"]\n', "inside /build"),
        ('[build]\nsteps = ["true"]\noutputs = ["../x"]\n', "inside /build"),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\ntimeout = 0\n', "timeout"),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\ntimeout = "1h"\n', "timeout"),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\nshell = "bash"\n',
            "unknown key\\(s\\) shell in \\[build\\]",
        ),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\n[extra]\n', "unknown key\\(s\\) extra"),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\nenv = {HOME = "/root"}\n', "set by the sandbox"),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\nenv = {"1X" = "a"}\n', "not a valid environment"),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\nenv = {TZ = 5}\n', "must be a string"),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\nenv = {SOURCE_DATE_EPOCH = "yesterday"}\n',
            "SOURCE_DATE_EPOCH",
        ),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\n[[toolchain]]\nname = "a/b"\nsha256 = "'
            + SHA
            + '"\n',
            "plain file name",
        ),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\n[[toolchain]]\nname = "a"\nsha256 = "abc"\n',
            "64 lowercase hex",
        ),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\n[[toolchain]]\nname = "a"\nsha256 = "'
            + SHA
            + '"\nurl = "http://x"\n',
            "unknown key",
        ),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\n[[toolchain]]\nname = "a"\nsha256 = "'
            + SHA
            + '"\n[[toolchain]]\nname = "a"\nsha256 = "'
            + SHA
            + '"\n',
            "share a name",
        ),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\n[normalize]\nformats = ["rar"]\n', "normalize.formats"),
        (b"\xff".decode("latin-1"), "TOML"),
        (
            '[build]\nsteps = ["echo a\\u0000b > x"]\noutputs = ["x"]\n',
            r"steps\[0\] contains a NUL character",
        ),
        (
            '[build]\nsteps = ["true", ["echo", "a\\u0000b"]]\noutputs = ["x"]\n',
            r"steps\[1\] contains a NUL character, which no command can take",
        ),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\nenv = {FOO = "a\\u0000b"}\n',
            "build.env.FOO contains a NUL character, which no environment can hold",
        ),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x\\u0000"]\n',
            "contains a NUL character, which no file name can",
        ),
        (
            '[build]\nsteps = ["true"]\noutputs = ["build.log"]\n',
            "'build.log' has the name of a file the conveyor",
        ),
        ('[build]\nsteps = ["true"]\noutputs = ["./provenance.dsse.json"]\n', "publishes beside the outputs"),
        (
            '[build]\nsteps = ["true"]\noutputs = ["x"]\nenv = {TZ = "CET-1CEST,M3"}\n',
            "or be a POSIX TZ string",
        ),
    ],
)
def test_broken_recipes(text, message):
    with pytest.raises(FormatError, match=message):
        parse_recipe(text.encode())


@given(st.text(max_size=300))
def test_fuzz_text(text):
    with contextlib.suppress(FormatError):
        parse_recipe(text.encode())


@given(st.binary(max_size=200))
def test_fuzz_bytes(data):
    with contextlib.suppress(FormatError):
        parse_recipe(data)


toml_values = st.recursive(
    st.booleans() | st.integers(-5, 10**6) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3),
    max_leaves=6,
)


@given(
    st.dictionaries(
        st.sampled_from(["steps", "outputs", "env", "timeout", "max_output_bytes"]), toml_values, max_size=5
    )
)
def test_fuzz_structure(build):
    import json

    lines = ["[build]"] + [f"{k} = {json.dumps(v)}" for k, v in build.items()]
    with contextlib.suppress(FormatError):
        parse_recipe("\n".join(lines).encode())


def test_unknown_timezone_is_refused():
    from overt.build.recipe import validate_recipe

    good = b'[build]\nsteps = ["true"]\noutputs = ["x"]\n[build.env]\nTZ = "Europe/London"\n'
    assert validate_recipe(good).env["TZ"] == "Europe/London"
    with pytest.raises(FormatError, match=r"'Europe/Londn' is not a zone.*did you mean Europe/London\?"):
        validate_recipe(good.replace(b"London", b"Londn"))
    for table in (b"zone1970.tab", b"../../etc/passwd", b"/etc/localtime"):
        with pytest.raises(FormatError, match="TZ"):
            validate_recipe(good.replace(b"Europe/London", table))


def test_outputs_in_directories_may_carry_the_reserved_names():
    r = parse_recipe(b'[build]\nsteps = ["true"]\noutputs = ["out/build.log", "*.log"]\n')
    assert r.outputs == ("out/build.log", "*.log")  # the build refuses a top-level match of *.log
    assert set(RESERVED_OUTPUTS) == set(PUBLISHED_BESIDE)


@pytest.mark.parametrize(
    "tz",
    [
        "CET-1CEST",
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "<+0330>-3:30",
        "EST5",
        "EST5EDT4,J60/2,300",
        "EST5EDT,M3.2.0/-1,M11.1.0/26",
        "UTC0",
        "XYZ-24",
    ],
)
def test_a_posix_tz_string_is_accepted(tz):
    """POSIX TZ strings need no zoneinfo file: the C library reads them itself (POSIX.1-2024 §8.3)."""
    assert is_posix_tz(tz)
    recipe = f'[build]\nsteps = ["true"]\noutputs = ["x"]\n[build.env]\nTZ = "{tz}"\n'.encode()
    assert validate_recipe(recipe, zoneinfo=Path("/nonexistent")).env["TZ"] == tz


@pytest.mark.parametrize(
    "tz",
    [
        "UTC",  # a zone name, not a POSIX string: std needs an offset
        "Europe/Zurich",
        "<A>1",  # a name of fewer than three characters
        "XYZ-25",  # offsets are 0 to 24 hours
        "EST5:60",
        "EST5E",
        "EST5EDT,M13.1.0,M11.1.0",
        "EST5EDT,M3.6.0,M11.1.0",
        "EST5EDT,M3.2.7,M11.1.0",
        "EST5EDT,J0,J365",
        "EST5EDT,366,1",
        "EST5EDT,M3.2.0",
        "EST5EDT,M3.2.0/168,M11.1.0",
        "EST5EDT,",
        "CET-1CEST,M3.5.0,M10.5.0/3x",
    ],
)
def test_a_malformed_posix_tz_string_is_not_one(tz):
    assert not is_posix_tz(tz)


def test_a_tz_that_is_neither_zone_nor_posix_string_says_so_truly():
    recipe = b'[build]\nsteps = ["true"]\noutputs = ["x"]\n[build.env]\nTZ = "CET1"\n'
    assert validate_recipe(recipe).env["TZ"] == "CET1"
    with pytest.raises(FormatError, match=r"'EST5E' is not a zone .* nor a POSIX TZ string") as e:
        validate_recipe(recipe.replace(b"CET1", b"EST5E"))
    assert "silently use UTC" not in str(e.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("umask = 22", "build.umask must be octal digits in a string"),
        ('umask = "0888"', "build.umask"),
        ('vary_build_path = "yes"', "vary_build_path must be true or false"),
    ],
)
def test_pins_are_checked(line, message):
    with pytest.raises(FormatError, match=message):
        parse_recipe(f'[build]\nsteps = ["true"]\noutputs = ["x"]\n{line}\n'.encode())


def test_pins():
    r = parse_recipe(
        b'[build]\nsteps = ["true"]\noutputs = ["x"]\numask = "0002"\nvary_build_path = true\n'
        b'[build.env]\nLANG = "C.UTF-8"\n'
    )
    assert r.umask == 0o002 and r.pinned == ("locale", "umask")
    assert r.to_dict()["umask"] == "0002" and r.to_dict()["varyBuildPath"] is True


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("[build]\nsteps = 3\n", "steps must be a non-empty"),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\n[build.env]\nTZ = "Europe/Londn"\n', "not a zone"),
        ('[build]\nsteps = ["echo a\\u0000b > x"]\noutputs = ["x"]\n', "NUL"),
        ('[build]\nsteps = [["echo", "a\\u0000b"]]\noutputs = ["x"]\n', "NUL"),
        ('[build]\nsteps = ["true"]\noutputs = ["x"]\n[build.env]\nFOO = "a\\u0000b"\n', "NUL"),
        ('[build]\nsteps = ["echo a > build.log"]\noutputs = ["build.log"]\n', "publishes beside"),
        ('[build]\nsteps = ["true"]\noutputs = ["provenance.dsse.json"]\n', "publishes beside"),
    ],
    ids=[
        "broken",
        "unknown-tz",
        "nul-in-a-shell-step",
        "nul-in-argv",
        "nul-in-env",
        "build.log",
        "provenance",
    ],
)
def test_a_broken_recipe_is_refused_before_escrow(conveyor, tmp_path, recipe, message):
    from tests.build.helpers import escrow_tree, log_size

    before = log_size(conveyor)
    with pytest.raises(FormatError, match=message):
        escrow_tree(conveyor, tmp_path, {"README": "x\n"}, recipe)
    assert log_size(conveyor) == before
    assert conveyor.escrow.entries() == []
    assert not conveyor.escrow.directory.exists() or not any(conveyor.escrow.directory.iterdir())
