"""Escrow a small source tree with a recipe and build it, for the conveyor tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from overt.build.conveyor import build
from overt.build.publish import Publication
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.source.escrow import EscrowEntry, add_recipe, read_directory


def escrow_tree(h: Home, tmp: Path, files: dict[str, str], recipe: str, name: str = "src") -> EscrowEntry:
    root = tmp / f"tree-{name}"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    root.mkdir(exist_ok=True)
    snapshot = add_recipe(read_directory(root), recipe.encode(), 315532800)
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    entry, _ = h.escrow.add_source(snapshot, name=name, service=h.signing_service(), key=builder)
    return entry


def run(h: Home, entry: EscrowEntry, *, check: bool = False) -> Publication:
    return build(
        h.escrow,
        entry.sha256,
        context=h.conveyor_context(),
        publish_dir=h.paths.public / "builds",
        check=check,
    )


def log_size(h: Home) -> int:
    log = h.log.open()
    try:
        return log.tree_size
    finally:
        log.close()


def current_builder(h: Home) -> KeyRecord:
    return h.registry.current(Role.BUILDER, datetime.now(UTC))
