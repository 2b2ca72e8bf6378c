"""A build's outputs: which files the recipe's globs select in the build directory, and what each one is.

An output is named by its path relative to the build directory (``dist/tomli-2.0.1-py3-none-any.whl``), never by
its bare file name, so ``a/x`` and ``b/x`` stay two outputs everywhere: in the comparison, in the provenance
subject and under ``public/builds/<build-id>/``. Only the executable bit of a file's mode is kept: the rest of
the mode follows the umask, which is not part of what was built.

Collection refuses what must never leave the build: a path that resolves outside the build directory (a symlink
the build planted, pointing at the host), and a name the conveyor publishes beside the outputs. Comparing and
publishing outputs are :mod:`overt.build.compare` and :mod:`overt.build.publish`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.build.recipe import Recipe
from overt.errors import BuildError

# Files the conveyor writes at the top of public/builds/<build-id>/, beside the outputs.
PUBLISHED_BESIDE = ("provenance.dsse.json", "build.log", "environment.json")


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """One output file: its relative name, digest, size, executable bit and where it is on this host."""

    name: str
    sha256: str
    size: int
    executable: bool
    path: Path

    @property
    def mode(self) -> int:
        """The mode it is published with."""
        return 0o755 if self.executable else 0o644

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "executable": self.executable,
        }


def _matches(build_dir: Path, pattern: str) -> list[Path]:
    root = build_dir.resolve()
    found = []
    for p in sorted(build_dir.glob(pattern)):
        if p.is_symlink() or not p.is_file():
            continue
        if not p.resolve().is_relative_to(root):
            raise BuildError(
                f"output {p.relative_to(build_dir).as_posix()} resolves outside the build directory "
                "(through a symlink the build made); outputs must be files the build wrote",
                pattern=pattern,
            )
        found.append(p)
    return found


def collect_outputs(build_dir: Path, recipe: Recipe) -> tuple[Output, ...]:
    """The files the recipe's output globs match, sorted by name; every glob must match at least one file."""
    paths: dict[str, Path] = {}
    for pattern in recipe.outputs:
        matches = _matches(build_dir, pattern)
        if not matches:
            raise BuildError(f"output pattern {pattern!r} matched no file", outputs=list(recipe.outputs))
        for p in matches:
            paths[p.relative_to(build_dir).as_posix()] = p
    for name in PUBLISHED_BESIDE:
        if name in paths:
            raise BuildError(
                f"output {name} has the name of a file the conveyor publishes beside the outputs; "
                "write it into a directory (e.g. out/) instead"
            )
    sizes = {name: p.stat() for name, p in paths.items()}
    total = sum(st.st_size for st in sizes.values())
    if total > recipe.max_output_bytes:
        raise BuildError(f"outputs total {total} bytes, more than the recipe's max_output_bytes")
    return tuple(
        Output(
            name=name,
            sha256=hashlib.sha256(p.read_bytes()).hexdigest(),
            size=sizes[name].st_size,
            executable=bool(sizes[name].st_mode & 0o100),
            path=p,
        )
        for name, p in sorted(paths.items())
    )
