"""Run and compare: build an escrowed source in the sandbox, once or twice with variations, and compare. No keys.

1. resolve the source snapshot and every toolchain input from escrow by digest (never from the network),
   check each against its digest, and refuse anything whose escrow was not logged;
2. parse and validate ``overt.toml`` from the snapshot;
3. per run, materialise the snapshot in a fresh directory (on tmpfs when the caller's workdir is) and run the
   steps in the sandbox (:mod:`overt.build.sandbox`);
4. collect and hash the outputs (:mod:`overt.build.outputs`);
5. with ``check``, run again with variations and compare (:mod:`overt.build.compare`); when they differ, write
   diffoscope's report.

Every variation is applied inside the sandbox, where the build sees it, and only to what the recipe does not
pin: TZ, the locale (LANG and LC_ALL), the umask, and the build path if the recipe sets ``vary_build_path``.
The clock (libfaketime) and the directory creation order are always varied. A variation this host cannot apply
(no libfaketime, no second zone or locale installed) is left out, and the :class:`Variation` of each run records
exactly what that run had, so results and provenance never claim more than was varied.

Signing and publishing the result is :mod:`overt.build.publish`; an independent rebuilder runs this with its
own keys there.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overt.attest.statement import format_timestamp
from overt.build.compare import DiffoscopeReport, Verdict, compare_outputs, diffoscope_report
from overt.build.environment import (
    Environment,
    EnvironmentDifference,
    compare_environments,
    current_environment,
)
from overt.build.outputs import Output, collect_outputs
from overt.build.recipe import (
    BUILD_PATH,
    LOCALE,
    RECIPE_FILE,
    SDE_LATEST_MTIME,
    SDE_UNSET,
    TZ,
    UMASK,
    Recipe,
    known_zone,
    validate_recipe,
)
from overt.build.sandbox import BUILD_DIR, faketime_lib, run_steps
from overt.errors import BuildError, ConfigError, FormatError
from overt.source.escrow import INPUT, SOURCE, Escrow, EscrowEntry, extract, snapshot_files
from overt.source.snapshot import FILE

REFERENCE_TZ = "UTC"
VARIED_TZ = ("Pacific/Kiritimati", "Asia/Kathmandu")  # UTC+14; UTC+05:45
REFERENCE_LOCALE = "C.UTF-8"
VARIED_LOCALES = ("fr_CH.UTF-8", "de_CH.UTF-8", "en_US.UTF-8", "C")  # the first one installed
REFERENCE_UMASK = 0o022
VARIED_UMASK = 0o077
VARIED_BUILD_PATH = "/build-varied/a-much-longer/build-path"
VARIED_CLOCK = "+398d"
CLOCK, DIRECTORY_ORDER = "clock", "directoryOrder"
LABELS = {TZ: "TZ", LOCALE: "locale", UMASK: "umask", BUILD_PATH: "build path", CLOCK: "clock",
          DIRECTORY_ORDER: "directory order"}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Variation:
    """What one run's build sees of the things a build should not depend on."""

    name: str
    tz: str
    locale: str  # LANG and LC_ALL when the recipe does not pin the locale; else the recipe's variables
    umask: int
    build_path: str
    clock: str | None = None  # a libfaketime offset; None is the host's clock
    reverse_order: bool = False

    def aspects(self) -> dict[str, str]:
        return {
            TZ: self.tz,
            LOCALE: self.locale,
            UMASK: f"{self.umask:04o}",
            BUILD_PATH: self.build_path,
            CLOCK: self.clock or "host",
            DIRECTORY_ORDER: "reverse creation order" if self.reverse_order else "creation order",
        }

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.aspects()}


@functools.cache
def _installed_locales() -> frozenset[str]:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return frozenset({"c", "posix", *(_locale_key(line) for line in out.split())})


def _locale_key(name: str) -> str:
    return name.lower().replace("utf-8", "utf8")


def reference_variation(recipe: Recipe) -> Variation:
    """The one run of a build without ``--check``, and the first run of a check."""
    pinned = recipe.pinned
    return Variation(
        name="reference",
        tz=recipe.env[TZ] if TZ in pinned else REFERENCE_TZ,
        locale=" ".join(f"{k}={v}" for k, v in recipe.locale_env.items()) or REFERENCE_LOCALE,
        umask=recipe.umask if recipe.umask is not None else REFERENCE_UMASK,
        build_path=BUILD_DIR,
    )


def varied_variation(recipe: Recipe) -> Variation:
    """The second run of a check: every aspect the recipe leaves open and this host can vary, varied."""
    ref, pinned = reference_variation(recipe), recipe.pinned
    tz = next((z for z in VARIED_TZ if known_zone(z)), ref.tz)
    locale = next((n for n in VARIED_LOCALES if _locale_key(n) in _installed_locales()), ref.locale)
    return Variation(
        name="varied",
        tz=ref.tz if TZ in pinned else tz,
        locale=ref.locale if LOCALE in pinned else locale,
        umask=ref.umask if UMASK in pinned else VARIED_UMASK,
        build_path=ref.build_path if BUILD_PATH in pinned else VARIED_BUILD_PATH,
        clock=VARIED_CLOCK if faketime_lib() else None,
        reverse_order=True,
    )


def source_date_epoch(recipe: Recipe, snapshot: bytes) -> str | None:
    if recipe.source_date_epoch == SDE_UNSET:
        return None
    if recipe.source_date_epoch == SDE_LATEST_MTIME:
        return str(max((f.mtime for f in snapshot_files(snapshot) if f.kind == FILE), default=0))
    return recipe.source_date_epoch


def build_environment(recipe: Recipe, variation: Variation, snapshot: bytes) -> dict[str, str]:
    """The variables a run's steps see, besides the sandbox's own PATH, HOME and PYTHONHASHSEED."""
    env: dict[str, str] = {}
    if TZ not in recipe.pinned:
        env[TZ] = variation.tz
    if LOCALE not in recipe.pinned:
        env["LANG"] = env["LC_ALL"] = variation.locale
    env.update(recipe.env)
    sde = source_date_epoch(recipe, snapshot)
    if sde is not None:
        env["SOURCE_DATE_EPOCH"] = sde
    return env


def load_recipe(snapshot: bytes) -> Recipe:
    for f in snapshot_files(snapshot):
        if f.path == RECIPE_FILE and f.kind == FILE:
            return validate_recipe(f.data)
    raise FormatError(
        f"the source has no {RECIPE_FILE} at its root; add one with 'overt source add --recipe'"
    )


def resolve_toolchain(escrow: Escrow, recipe: Recipe) -> tuple[dict[str, bytes], tuple[EscrowEntry, ...]]:
    """Each toolchain input's bytes from escrow (by mount point), checked against the digest the recipe pins."""
    out: dict[str, bytes] = {}
    entries = []
    for t in recipe.toolchain:
        try:
            entry = escrow.get(t.sha256)
        except ConfigError as e:
            raise ConfigError(
                f"toolchain input {t.name} (sha256 {t.sha256}) is not in escrow; add it with 'overt source input'"
            ) from e
        if entry.kind != INPUT or entry.sha256 != t.sha256:
            raise ConfigError(
                f"toolchain input {t.name}: escrow object {entry.sha256[:16]} is not that input"
            )
        out[t.mount] = escrow.read(entry)
        entries.append(entry)
    return out, tuple(entries)


@contextmanager
def _materialising() -> Iterator[None]:
    """The snapshot is laid out under umask 022 whatever this process's umask, so directories the snapshot
    does not give a mode get the same one on every host; the build's own umask is the variation's."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One run of the recipe: what it saw, what it made, and its log."""

    variation: Variation
    outputs: tuple[Output, ...]
    log_path: Path
    log_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "variation": self.variation.to_dict(),
            "outputs": [o.to_dict() for o in self.outputs],
            "log_sha256": self.log_sha256,
        }


def run_once(
    snapshot: bytes,
    recipe: Recipe,
    *,
    toolchain: dict[str, bytes],
    root: Path,
    variation: Variation,
    sandboxed: bool = True,
) -> Run:
    """Materialise the snapshot in ``root/<variation>/build``, run the steps, collect the outputs."""
    base = root / variation.name
    build_dir, tools = base / "build", base / "toolchain"
    with _materialising():
        build_dir.mkdir(parents=True)
        tools.mkdir()
        mounts: dict[str, Path] = {}
        for mount, data in toolchain.items():
            host = tools / mount.rsplit("/", 1)[1]
            host.write_bytes(data)
            host.chmod(0o444)
            mounts[mount] = host
        extract(snapshot, build_dir, reverse=variation.reverse_order)
    log_path = base / "build.log"
    run_steps(
        recipe.steps,
        build_dir=build_dir,
        toolchain=mounts,
        env=build_environment(recipe, variation, snapshot),
        timeout=recipe.timeout,
        max_output_bytes=recipe.max_output_bytes,
        log_path=log_path,
        faketime=variation.clock,
        umask=variation.umask,
        build_path=variation.build_path,
        sandboxed=sandboxed,
    )
    return Run(
        variation=variation,
        outputs=collect_outputs(build_dir, recipe),
        log_path=log_path,
        log_sha256=hashlib.sha256(log_path.read_bytes()).hexdigest(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What running (and, with a check, comparing) a recipe established, before anything is signed."""

    invocation_id: str
    source: EscrowEntry
    recipe: Recipe
    toolchain: tuple[EscrowEntry, ...]
    runs: tuple[Run, ...]
    verdict: Verdict | None  # None: built once, not checked
    report: DiffoscopeReport | None  # when the verdict is different
    started: datetime
    finished: datetime
    environment: Environment | None = None  # the host's installed packages; None without a dpkg database
    environment_difference: EnvironmentDifference | None = None  # against a recorded one, when given

    @property
    def build_id(self) -> str:
        return self.invocation_id[:16]

    @property
    def reference(self) -> Run:
        return self.runs[0]

    @property
    def reproducible(self) -> bool:
        """False only when a check ran and the outputs differ."""
        return self.verdict is None or self.verdict.reproducible

    @property
    def varied(self) -> tuple[str, ...]:
        """The aspects that really differed between the two runs (none without a check)."""
        if len(self.runs) < 2:
            return ()
        a, b = self.runs[0].variation.aspects(), self.runs[1].variation.aspects()
        return tuple(k for k in a if a[k] != b[k])

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    def variations(self) -> dict[str, Any]:
        """The record of what was pinned and varied, as results and provenance carry it."""
        return {
            "pinned": list(self.recipe.pinned),
            "varied": list(self.varied),
            "runs": [r.variation.to_dict() for r in self.runs],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "build_id": self.build_id,
            "invocation_id": self.invocation_id,
            "source": self.source.to_dict(),
            "toolchain": [t.to_dict() for t in self.toolchain],
            "recipe": self.recipe.to_dict(),
            "checked": self.verdict is not None,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "variations": self.variations(),
            "runs": [r.to_dict() for r in self.runs],
            "environment": self._environment_dict(),
            "started": format_timestamp(self.started),
            "finished": format_timestamp(self.finished),
            "seconds": round(self.seconds, 3),
        }

    def _environment_dict(self) -> dict[str, Any] | None:
        env, diff = self.environment, self.environment_difference
        if env is None:
            return None
        out: dict[str, Any] = {
            "sha256": env.sha256,
            "architecture": env.architecture,
            "packages": len(env.packages),
        }
        if diff is not None:
            out["difference"] = diff.to_dict() | {"text": diff.text()}
        return out


def _run_named(
    snapshot: bytes, recipe: Recipe, *, toolchain: dict[str, bytes], root: Path, variation: Variation
) -> Run:
    """:func:`run_once`; a failure of a check's second run says so, and what that run varied."""
    try:
        return run_once(snapshot, recipe, toolchain=toolchain, root=root, variation=variation)
    except BuildError as e:
        if variation.name == "reference":
            raise
        ref = reference_variation(recipe).aspects()
        varied = ", ".join(f"{LABELS[k]} {v}" for k, v in variation.aspects().items() if v != ref[k])
        raise BuildError(f"the second build of the check failed ({varied}): {e}", **e.evidence) from e


def _utcnow() -> datetime:
    return datetime.now(UTC)


def run_and_compare(
    escrow: Escrow,
    source_ref: str,
    *,
    workdir: Path,
    check: bool = False,
    now: Callable[[], datetime] = _utcnow,
    recorded_environment: Environment | None = None,
) -> RunResult:
    """Build ``source_ref`` from ``escrow`` in ``workdir`` (which the caller owns and removes), once, or twice
    with variations and compared when ``check``. A failing build raises BuildError; differing outputs do not
    raise: the result's verdict says so and carries diffoscope's report.

    The result records this host's environment (:mod:`overt.build.environment`). A rebuilder passes the
    environment a provenance recorded as ``recorded_environment``; the result then says how its own differs
    (``environment_difference``), so a mismatch can be explained by it. Both runs of a check share one host,
    so a check never varies the environment."""
    source = escrow.get(source_ref)
    if source.kind != SOURCE:
        raise ConfigError(f"{source.name} is a toolchain input, not a source snapshot")
    snapshot = escrow.read(source)
    recipe = load_recipe(snapshot)
    toolchain, tool_entries = resolve_toolchain(escrow, recipe)
    environment = current_environment()
    difference = None
    if recorded_environment is not None and environment is not None:
        difference = compare_environments(recorded=recorded_environment, own=environment)
    started = now()
    plan = (
        (reference_variation(recipe), varied_variation(recipe)) if check else (reference_variation(recipe),)
    )
    runs = tuple(_run_named(snapshot, recipe, toolchain=toolchain, root=workdir, variation=v) for v in plan)
    verdict = report = None
    if check:
        verdict = compare_outputs(
            reference=runs[0].outputs, varied=runs[1].outputs, normalize_formats=recipe.normalize
        )
        if not verdict.reproducible:
            report = diffoscope_report(
                reference=runs[0].outputs,
                varied=runs[1].outputs,
                verdict=verdict,
                workdir=workdir / "compare",
            )
    return RunResult(
        invocation_id=uuid.uuid4().hex,
        source=source,
        recipe=recipe,
        toolchain=tool_entries,
        runs=runs,
        verdict=verdict,
        report=report,
        started=started,
        finished=now(),
        environment=environment,
        environment_difference=difference,
    )
