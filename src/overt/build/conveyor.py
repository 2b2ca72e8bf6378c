"""The conveyor: build an escrowed source in the sandbox, optionally twice with variations, then sign and log
the SLSA provenance of the outputs.

One build, in order:
1. resolve the source snapshot and every toolchain input from escrow by digest (never from the network),
   check each against its digest, and refuse anything whose escrow was not logged;
2. parse ``overt.toml`` from the snapshot;
3. materialise the snapshot in a fresh directory (on tmpfs when available) and run the steps in the sandbox;
4. collect the outputs (every glob must match; the total is capped) and hash them;
5. with ``check``, build again with variations (host build path, clock via libfaketime, TZ and locale outside
   the sandbox, outer umask, directory creation order) and compare (:mod:`overt.build.compare`);
6. sign an in-toto statement with an SLSA Provenance v1 predicate with the builder key, which logs it;
7. publish outputs and the provenance envelope under ``public/builds/<build-id>/``.

A failure at any step raises before anything is signed, so no failure is ever logged as a success.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from overt.atomic import atomic_write
from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, format_timestamp
from overt.build.compare import IDENTICAL, Verdict, compare_outputs
from overt.build.recipe import RECIPE_FILE, SDE_LATEST_MTIME, SDE_UNSET, Recipe, parse_recipe
from overt.build.sandbox import faketime_lib, run_steps
from overt.errors import BuildError, ConfigError, FormatError
from overt.keys.builders import conveyor_builder_id
from overt.keys.registry import KeyRecord
from overt.keys.signing import Signed, SigningService
from overt.source.escrow import INPUT, SOURCE, Escrow, EscrowEntry, extract, snapshot_files
from overt.source.snapshot import FILE

BUILD_TYPE = "https://overt.dev/build/bwrap/v1"
TMPFS = Path("/dev/shm")


@dataclass(frozen=True, slots=True, kw_only=True)
class Variation:
    """How one build run differs from the reference run, outside the sandbox."""

    name: str
    reverse_order: bool = False
    umask: int = 0o022
    faketime: str | None = None
    host_env: tuple[tuple[str, str], ...] = ()
    deep_path: bool = False


REFERENCE = Variation(name="reference")
VARIED = Variation(
    name="varied",
    reverse_order=True,
    umask=0o077,
    faketime="+398d",
    host_env=(("TZ", "Pacific/Auckland"), ("LANG", "fr_CH.UTF-8"), ("LC_ALL", "fr_CH.UTF-8")),
    deep_path=True,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    name: str  # path relative to /build
    sha256: str
    size: int
    path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildReport:
    build_id: str
    source: EscrowEntry
    recipe: Recipe
    outputs: tuple[Output, ...]
    verdict: Verdict | None
    variations: tuple[str, ...]
    signed: Signed
    directory: Path
    seconds: float


def source_date_epoch(recipe: Recipe, snapshot: bytes) -> str | None:
    if recipe.source_date_epoch == SDE_UNSET:
        return None
    if recipe.source_date_epoch == SDE_LATEST_MTIME:
        return str(max((f.mtime for f in snapshot_files(snapshot) if f.kind == FILE), default=0))
    return recipe.source_date_epoch


def load_recipe(snapshot: bytes) -> Recipe:
    for f in snapshot_files(snapshot):
        if f.path == RECIPE_FILE and f.kind == FILE:
            return parse_recipe(f.data)
    raise FormatError(
        f"the source has no {RECIPE_FILE} at its root; add one with 'overt source add --recipe'"
    )


def resolve_toolchain(escrow: Escrow, recipe: Recipe) -> tuple[dict[str, bytes], list[EscrowEntry]]:
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
    return out, entries


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def collect_outputs(build_dir: Path, recipe: Recipe) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pattern in recipe.outputs:
        matches = sorted(p for p in build_dir.glob(pattern) if p.is_file() and not p.is_symlink())
        if not matches:
            raise BuildError(f"output pattern {pattern!r} matched no file", outputs=list(recipe.outputs))
        for p in matches:
            found[p.relative_to(build_dir).as_posix()] = p
    total = sum(p.stat().st_size for p in found.values())
    if total > recipe.max_output_bytes:
        raise BuildError(f"outputs total {total} bytes, more than the recipe's max_output_bytes")
    return found


def build_run(
    snapshot: bytes,
    recipe: Recipe,
    toolchain: dict[str, bytes],
    root: Path,
    variation: Variation,
    *,
    sandboxed: bool = True,
) -> dict[str, Path]:
    """One run: materialise, build, collect. Returns output name → host path."""
    base = root / variation.name
    if variation.deep_path:
        base = base / "a-much-longer" / "host" / "build-path"
    build_dir = base / "build"
    tools = base / "toolchain"
    with _umask(variation.umask):
        build_dir.mkdir(parents=True)
        tools.mkdir()
        mounts: dict[str, Path] = {}
        for mount, data in toolchain.items():
            host = tools / mount.rsplit("/", 1)[1]
            host.write_bytes(data)
            host.chmod(0o444)
            mounts[mount] = host
        extract(snapshot, build_dir, reverse=variation.reverse_order)
        env = dict(recipe.env)
        sde = source_date_epoch(recipe, snapshot)
        if sde is not None:
            env["SOURCE_DATE_EPOCH"] = sde
        faketime = variation.faketime if variation.faketime and faketime_lib() else None
        saved = {k: os.environ.get(k) for k, _ in variation.host_env}
        os.environ.update(dict(variation.host_env))
        try:
            run_steps(
                recipe.steps,
                build_dir=build_dir,
                toolchain=mounts,
                env=env,
                timeout=recipe.timeout,
                max_output_bytes=recipe.max_output_bytes,
                log_path=base / "build.log",
                faketime=faketime,
                sandboxed=sandboxed,
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return collect_outputs(build_dir, recipe)


def provenance_for(
    *,
    source: EscrowEntry,
    recipe: Recipe,
    toolchain: list[EscrowEntry],
    builder_id: str,
    jurisdiction: str,
    invocation_id: str,
    started: datetime,
    finished: datetime,
    verdict: Verdict | None,
    log_sha256: str,
) -> Provenance:
    internal: dict[str, Any] = {
        "jurisdiction": jurisdiction,
        "sandbox": "bubblewrap",
        "checked": verdict is not None,
    }
    if verdict is not None:
        internal["reproducibility"] = verdict.verdict
        if verdict.normalised:
            internal["normalised"] = list(verdict.normalised)
    return Provenance(
        build_definition=BuildDefinition(
            build_type=BUILD_TYPE,
            external_parameters={
                "source": {
                    "name": source.name,
                    "uri": f"escrow/{source.sha256}",
                    "digest": {"sha256": source.sha256, "dirHash": source.dir_hash},
                },
                "recipe": recipe.to_dict(),
            },
            internal_parameters=internal,
            resolved_dependencies=(
                ResourceDescriptor(
                    name=source.name,
                    uri=f"escrow/{source.sha256}",
                    digest={"sha256": source.sha256, "dirHash": source.dir_hash},
                    annotations={"escrowLogIndex": source.log_index},
                ),
                *(
                    ResourceDescriptor(
                        name=t.name,
                        uri=f"escrow/{t.sha256}",
                        digest={"sha256": t.sha256},
                        annotations={"escrowLogIndex": t.log_index},
                    )
                    for t in toolchain
                ),
            ),
        ),
        run_details=RunDetails(
            builder=Builder(id=conveyor_builder_id(builder_id, jurisdiction)),
            metadata=BuildMetadata(
                invocation_id=invocation_id,
                started_on=format_timestamp(started),
                finished_on=format_timestamp(finished),
            ),
            byproducts=(ResourceDescriptor(name="build.log", digest={"sha256": log_sha256}),),
        ),
    )


def build(
    escrow: Escrow,
    source_ref: str,
    *,
    service: SigningService,
    builder: KeyRecord,
    builder_id: str,
    jurisdiction: str,
    publish_dir: Path,
    check: bool = False,
    workdir: Path | None = None,
) -> BuildReport:
    source = escrow.get(source_ref)
    if source.kind != SOURCE:
        raise ConfigError(f"{source.name} is a toolchain input, not a source snapshot")
    snapshot = escrow.read(source)
    recipe = load_recipe(snapshot)
    toolchain, tool_entries = resolve_toolchain(escrow, recipe)
    invocation_id = uuid.uuid4().hex
    base = TMPFS if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) else None
    root = workdir or Path(tempfile.mkdtemp(prefix=f"overt-build-{invocation_id[:8]}-", dir=base))
    started = service.now()
    try:
        first = build_run(snapshot, recipe, toolchain, root, REFERENCE)
        verdict = None
        variations: tuple[str, ...] = (REFERENCE.name,)
        if check:
            second = build_run(snapshot, recipe, toolchain, root, VARIED)
            verdict = compare_outputs(first, second, normalize_formats=recipe.normalize, workdir=root)
            variations = (REFERENCE.name, VARIED.name)
        finished = service.now()
        outputs = [
            Output(
                name=name, sha256=hashlib.sha256(p.read_bytes()).hexdigest(), size=p.stat().st_size, path=p
            )
            for name, p in sorted(first.items())
        ]
        log_sha = hashlib.sha256((root / REFERENCE.name / "build.log").read_bytes()).hexdigest()
        prov = provenance_for(
            source=source,
            recipe=recipe,
            toolchain=tool_entries,
            builder_id=builder_id,
            jurisdiction=jurisdiction,
            invocation_id=invocation_id,
            started=started,
            finished=finished,
            verdict=verdict,
            log_sha256=log_sha,
        )
        subject = tuple(
            ResourceDescriptor(name=o.name.rsplit("/", 1)[-1], digest={"sha256": o.sha256}) for o in outputs
        )
        signed = service.sign(builder, prov.statement(subject))
        dest = publish_dir / invocation_id[:16]
        published = []
        for o in outputs:
            target = dest / o.name.rsplit("/", 1)[-1]
            atomic_write(target, o.path.read_bytes())
            published.append(Output(name=o.name, sha256=o.sha256, size=o.size, path=target))
        atomic_write(dest / "provenance.dsse.json", signed.entry)
        shutil.copyfile(root / REFERENCE.name / "build.log", dest / "build.log")
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return BuildReport(
        build_id=invocation_id[:16],
        source=source,
        recipe=recipe,
        outputs=tuple(published),
        verdict=verdict,
        variations=variations,
        signed=signed,
        directory=dest,
        seconds=(finished - started).total_seconds(),
    )


def verdict_text(report: BuildReport) -> str:
    if report.verdict is None:
        return "built once (not checked)"
    if report.verdict.verdict == IDENTICAL:
        return "identical"
    return f"equivalent after normalisation ({', '.join(report.verdict.normalised)})"
