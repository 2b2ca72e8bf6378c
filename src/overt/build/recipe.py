"""``overt.toml``: the build recipe at the root of an escrowed source. Parsed strictly.

::

    [build]
    steps = [["python3", "-c", "from flit_core import buildapi; buildapi.build_wheel('dist')"]]
    outputs = ["dist/*.whl"]          # globs relative to /build; each must match at least one file
    timeout = 600                     # wall-time seconds for all steps together
    max_output_bytes = 268435456      # largest file the build may write, and all outputs together
    umask = "0022"                    # pins the umask (default: not pinned, --check varies it)
    vary_build_path = false           # true: --check may build at another path than /build

    [build.env]                       # the sandbox starts from an empty environment
    TZ = "UTC"                        # pins TZ: a zone of the zoneinfo database or a POSIX TZ string
    LC_ALL = "C.UTF-8"                # LANG or any LC_* pins the locale (default: not pinned)
    SOURCE_DATE_EPOCH = "unset"       # "unset", "latest-mtime" (default: newest file of the source) or seconds
    PYTHONPATH = "/toolchain/flit_core-3.6.0-py3-none-any.whl"   # any other variable, passed as is

    [[toolchain]]                     # pinned inputs, resolved from escrow by digest, mounted read-only at
    name = "flit_core-3.6.0-py3-none-any.whl"   # /toolchain/<name>
    sha256 = "7661029dedadd456c1d94e0a4765222447f00808bb1fcc767e4270a883ba8b4c"

    [normalize]                       # only if asked: rewrite archive metadata in the outputs
    formats = ["zip", "tar", "gzip"]

A step is an argv list, or a string run with ``/bin/sh -e -c``. PATH, HOME and PYTHONHASHSEED are set by the
sandbox (:mod:`overt.build.sandbox`); PATH may be overridden here. What the recipe does not pin (TZ, locale,
umask, and the build path if it allows) gets a default in a single build and is varied by ``--check``
(:mod:`overt.build.run`); docs/recipes.md is the reference.

:func:`parse_recipe` is pure. :func:`validate_recipe` adds the one check that reads the disk: that a TZ which
is not a POSIX TZ string (``CET-1CEST,M3.5.0,M10.5.0/3``, read by the C library itself) names a zone of the
zoneinfo database the sandbox sees (``/usr/share/zoneinfo``, mounted with ``/usr``), since an unknown zone
name silently means UTC to the C library.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from overt.errors import FormatError

RECIPE_FILE = "overt.toml"
SDE_UNSET = "unset"
SDE_LATEST_MTIME = "latest-mtime"
NORMALIZE_FORMATS = ("zip", "tar", "gzip")
FIXED_ENV = ("HOME", "PYTHONHASHSEED")
ZONEINFO = Path("/usr/share/zoneinfo")
# What a recipe may pin; --check varies the rest (docs/recipes.md).
TZ, LOCALE, UMASK, BUILD_PATH = "TZ", "locale", "umask", "buildPath"
_TZ_NAME = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
# The parts of a POSIX TZ string (POSIX.1-2024 §8.3, TZ):
# std offset [dst [offset] [,start[/time],end[/time]]].
_TZ_ABBR = re.compile(r"[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>")
_TZ_HMS = re.compile(r"[+-]?(\d{1,3})(?::(\d{1,2}))?(?::(\d{1,2}))?")
_TZ_DATE = re.compile(r"J(\d{1,3})|(\d{1,3})|M(\d{1,2})\.(\d)\.(\d)")
# Files the conveyor publishes at the top of public/builds/<build-id>/ beside the outputs (overt.build.outputs
# refuses an output a glob matches there at build time; a recipe naming one outright is refused at escrow).
RESERVED_OUTPUTS = ("provenance.dsse.json", "build.log", "environment.json")
_POSIX_TZ_EXAMPLE = "CET-1CEST,M3.5.0,M10.5.0/3"
_UMASK = re.compile(r"0?[0-7]{3}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOOL_NAME = re.compile(r"[A-Za-z0-9._+-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolchainInput:
    name: str
    sha256: str

    @property
    def mount(self) -> str:
        return f"/toolchain/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    steps: tuple[tuple[str, ...], ...]
    outputs: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    source_date_epoch: str = SDE_LATEST_MTIME
    toolchain: tuple[ToolchainInput, ...] = ()
    normalize: tuple[str, ...] = ()
    timeout: int = 600
    max_output_bytes: int = 256 << 20
    umask: int | None = None
    vary_build_path: bool = False

    @property
    def locale_env(self) -> dict[str, str]:
        """The locale variables the recipe sets (LANG and LC_*): any of them pins the locale."""
        return {k: v for k, v in sorted(self.env.items()) if k == "LANG" or k.startswith("LC_")}

    @property
    def pinned(self) -> tuple[str, ...]:
        """Which of TZ, locale, umask and build path the recipe pins; ``--check`` varies the others."""
        pins = {
            TZ: TZ in self.env,
            LOCALE: bool(self.locale_env),
            UMASK: self.umask is not None,
            BUILD_PATH: not self.vary_build_path,
        }
        return tuple(name for name, pinned in pins.items() if pinned)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as the provenance's externalParameters record it."""
        return {
            "steps": [list(s) for s in self.steps],
            "outputs": list(self.outputs),
            "env": dict(sorted(self.env.items())),
            "sourceDateEpoch": self.source_date_epoch,
            "toolchain": [{"name": t.name, "sha256": t.sha256} for t in self.toolchain],
            "normalize": list(self.normalize),
            "timeout": self.timeout,
            "maxOutputBytes": self.max_output_bytes,
            "umask": None if self.umask is None else f"{self.umask:04o}",
            "varyBuildPath": self.vary_build_path,
        }


def _unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise FormatError(f"{RECIPE_FILE}: unknown key(s) {', '.join(extra)} in {where}")


def _int(table: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise FormatError(f"{RECIPE_FILE}: build.{key} must be an integer from {lo} to {hi}")
    return value


def _steps(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list) or not value:
        raise FormatError(f"{RECIPE_FILE}: build.steps must be a non-empty array of steps")
    out = []
    for i, step in enumerate(value):
        if isinstance(step, str) and step.strip():
            argv: tuple[str, ...] = ("/bin/sh", "-e", "-c", step)
        elif isinstance(step, list) and step and all(isinstance(a, str) for a in step) and step[0]:
            argv = tuple(step)
        else:
            raise FormatError(
                f"{RECIPE_FILE}: build.steps[{i}] must be a command string or a non-empty argv array"
            )
        if any("\x00" in a for a in argv):
            # exec passes each argument as a C string: a NUL would end it, so the step could never run.
            raise FormatError(
                f"{RECIPE_FILE}: build.steps[{i}] contains a NUL character, which no command can take"
            )
        out.append(argv)
    return tuple(out)


def _outputs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(g, str) and g for g in value):
        raise FormatError(f"{RECIPE_FILE}: build.outputs must be a non-empty array of glob patterns")
    for g in value:
        if "\x00" in g:
            raise FormatError(
                f"{RECIPE_FILE}: output glob {g!r} contains a NUL character, which no file name can"
            )
        if g.startswith("/") or ".." in g.split("/"):
            raise FormatError(f"{RECIPE_FILE}: output glob {g!r} must stay inside /build")
        if PurePosixPath(g).as_posix() in RESERVED_OUTPUTS:
            raise FormatError(
                f"{RECIPE_FILE}: output {g!r} has the name of a file the conveyor publishes beside the "
                f"outputs ({', '.join(RESERVED_OUTPUTS)}); write it into a directory (e.g. out/) instead"
            )
    return tuple(value)


def _env(value: Any) -> tuple[dict[str, str], str]:
    if not isinstance(value, dict):
        raise FormatError(f"{RECIPE_FILE}: build.env must be a table")
    env: dict[str, str] = {}
    sde = SDE_LATEST_MTIME
    for k, v in value.items():
        if not _ENV_NAME.fullmatch(k):
            raise FormatError(f"{RECIPE_FILE}: {k!r} is not a valid environment variable name")
        if k in FIXED_ENV:
            raise FormatError(f"{RECIPE_FILE}: build.env.{k} is set by the sandbox and cannot be changed")
        if k == "SOURCE_DATE_EPOCH":
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                sde = str(v)
            elif v in (SDE_UNSET, SDE_LATEST_MTIME) or (isinstance(v, str) and v.isdigit()):
                sde = v
            else:
                raise FormatError(
                    f"{RECIPE_FILE}: SOURCE_DATE_EPOCH must be 'unset', 'latest-mtime' or a number of seconds"
                )
            continue
        if not isinstance(v, str):
            raise FormatError(f"{RECIPE_FILE}: build.env.{k} must be a string")
        if "\x00" in v:
            # The environment is passed as C strings: a NUL would cut the value short.
            raise FormatError(
                f"{RECIPE_FILE}: build.env.{k} contains a NUL character, which no environment can hold"
            )
        if k == "TZ" and not (_zone_shaped(v) or is_posix_tz(v)):
            raise FormatError(
                f"{RECIPE_FILE}: build.env.TZ = {v!r} must name a zone of the zoneinfo database, "
                f"such as UTC or Europe/Zurich, or be a POSIX TZ string such as {_POSIX_TZ_EXAMPLE}"
            )
        env[k] = v
    return env, sde


def _umask(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _UMASK.fullmatch(value):
        raise FormatError(f'{RECIPE_FILE}: build.umask must be octal digits in a string, such as "0022"')
    return int(value, 8)


def _bool(table: dict[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise FormatError(f"{RECIPE_FILE}: build.{key} must be true or false")
    return value


def _toolchain(value: Any) -> tuple[ToolchainInput, ...]:
    if not isinstance(value, list):
        raise FormatError(f"{RECIPE_FILE}: toolchain must be an array of tables ([[toolchain]])")
    out = []
    for i, t in enumerate(value):
        if not isinstance(t, dict):
            raise FormatError(f"{RECIPE_FILE}: toolchain[{i}] must be a table")
        _unknown(t, {"name", "sha256"}, f"toolchain[{i}]")
        name, sha = t.get("name"), t.get("sha256")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name) or name in (".", ".."):
            raise FormatError(f"{RECIPE_FILE}: toolchain[{i}].name must be a plain file name")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha.removeprefix("sha256:")):
            raise FormatError(f"{RECIPE_FILE}: toolchain[{i}].sha256 must be 64 lowercase hex digits")
        out.append(ToolchainInput(name=name, sha256=sha.removeprefix("sha256:")))
    if len({t.name for t in out}) != len(out):
        raise FormatError(f"{RECIPE_FILE}: two toolchain inputs share a name")
    return tuple(out)


def parse_recipe(data: bytes) -> Recipe:
    """Parse and validate ``overt.toml``; every problem is a FormatError naming the key."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise FormatError(f"{RECIPE_FILE} is not valid TOML: {e}") from e
    _unknown(doc, {"build", "toolchain", "normalize"}, "the top level")
    build = doc.get("build")
    if not isinstance(build, dict):
        raise FormatError(f"{RECIPE_FILE}: missing [build] table")
    _unknown(
        build,
        {"steps", "outputs", "env", "timeout", "max_output_bytes", "umask", "vary_build_path"},
        "[build]",
    )
    env, sde = _env(build.get("env", {}))
    normalize = doc.get("normalize", {})
    if not isinstance(normalize, dict):
        raise FormatError(f"{RECIPE_FILE}: [normalize] must be a table")
    _unknown(normalize, {"formats"}, "[normalize]")
    formats = normalize.get("formats", [])
    if not isinstance(formats, list) or not all(f in NORMALIZE_FORMATS for f in formats):
        raise FormatError(f"{RECIPE_FILE}: normalize.formats may list only {', '.join(NORMALIZE_FORMATS)}")
    return Recipe(
        steps=_steps(build.get("steps")),
        outputs=_outputs(build.get("outputs")),
        env=env,
        source_date_epoch=sde,
        toolchain=_toolchain(doc.get("toolchain", [])),
        normalize=tuple(dict.fromkeys(formats)),
        timeout=_int(build, "timeout", 600, 1, 86_400),
        max_output_bytes=_int(build, "max_output_bytes", 256 << 20, 1, 1 << 40),
        umask=_umask(build.get("umask")),
        vary_build_path=_bool(build, "vary_build_path"),
    )


def _zone_shaped(name: str) -> bool:
    """Whether ``name`` can be a zone of the zoneinfo database: a relative path without ``..``."""
    return bool(_TZ_NAME.fullmatch(name)) and ".." not in name.split("/")


def _hms_within(m: re.Match[str] | None, hours: int) -> bool:
    return m is not None and int(m[1]) <= hours and all(int(x) <= 59 for x in (m[2], m[3]) if x)


def _date_valid(m: re.Match[str] | None) -> bool:
    if m is None:
        return False
    if m[1] is not None:  # Jn: the Julian day 1..365, never counting February 29
        return 1 <= int(m[1]) <= 365
    if m[2] is not None:  # n: the zero-based day 0..365, counting February 29
        return int(m[2]) <= 365
    month, week, day = int(m[3]), int(m[4]), int(m[5])  # Mm.w.d
    return 1 <= month <= 12 and 1 <= week <= 5 and day <= 6


def is_posix_tz(value: str) -> bool:
    """Whether ``value`` is a POSIX TZ string (POSIX.1-2024 §8.3, TZ), which the C library reads without the
    zoneinfo database: ``std offset [dst [offset] [,start[/time],end[/time]]]``, such as
    ``CET-1CEST,M3.5.0,M10.5.0/3``.

    Offsets are hours 0 to 24, rule times -167 to 167 hours; names are three or more letters, or ``<...>``.
    """
    pos = 0

    def take(pattern: re.Pattern[str]) -> re.Match[str] | None:
        nonlocal pos
        m = pattern.match(value, pos)
        if m is not None:
            pos = m.end()
        return m

    def literal(text: str) -> bool:
        nonlocal pos
        if value.startswith(text, pos):
            pos += len(text)
            return True
        return False

    if not take(_TZ_ABBR) or not _hms_within(take(_TZ_HMS), 24):
        return False
    if pos < len(value):
        if not take(_TZ_ABBR):
            return False
        if pos < len(value) and value[pos] != "," and not _hms_within(take(_TZ_HMS), 24):
            return False
        if pos < len(value):
            for _ in ("start", "end"):  # ,date[/time] twice
                if not literal(",") or not _date_valid(take(_TZ_DATE)):
                    return False
                if literal("/") and not _hms_within(take(_TZ_HMS), 167):
                    return False
    return pos == len(value)


def known_zone(name: str, *, zoneinfo: Path = ZONEINFO) -> bool:
    """Whether ``name`` is a zone of the zoneinfo database at ``zoneinfo`` (a TZif file, not a table)."""
    if not _zone_shaped(name):
        return False
    try:
        with (zoneinfo / name).open("rb") as f:
            return f.read(4) == b"TZif"
    except OSError:
        return False


def _zone_names(zoneinfo: Path) -> list[str]:
    return [p.relative_to(zoneinfo).as_posix() for p in zoneinfo.rglob("*") if p.is_file()]


def validate_recipe(data: bytes, *, zoneinfo: Path = ZONEINFO) -> Recipe:
    """:func:`parse_recipe`, then check TZ against the zoneinfo database the sandbox sees."""
    recipe = parse_recipe(data)
    tz = recipe.env.get("TZ")
    if tz is not None and not is_posix_tz(tz) and not known_zone(tz, zoneinfo=zoneinfo):
        close = difflib.get_close_matches(tz, _zone_names(zoneinfo), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise FormatError(
            f"{RECIPE_FILE}: build.env.TZ = {tz!r} is not a zone of the zoneinfo database ({zoneinfo}) "
            f"nor a POSIX TZ string such as {_POSIX_TZ_EXAMPLE}: the C library would not read it as the "
            f"zone meant{hint}"
        )
    return recipe
