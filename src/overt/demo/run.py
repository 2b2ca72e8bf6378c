"""Running the demo: a fresh directory, a conveyor home, two serving witnesses, then :data:`STAGES` in order,
and last the layout files. The result is data (:class:`DemoResult`); printing it is the CLI's job.

Stages run in order and share files: recovery restores the backup the log stage took, and the later stages
use the keys the keys stage made; distribution releases what the build and AV database stages made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.demo.auditor_stage import auditor_stage
from overt.demo.avdb_stage import avdb_stage
from overt.demo.build_stage import build_stage
from overt.demo.claims import Claim, PromiseRow, Stage, promise_table
from overt.demo.context import ORIGIN, DemoContext, prepare_root, running_witnesses
from overt.demo.distribute_stage import distribute_stage
from overt.demo.keys_stage import keys_stage
from overt.demo.layout import LAYOUT, write_layout
from overt.demo.log_stage import log_stage
from overt.demo.recovery_stage import recovery_stage
from overt.demo.residency_stage import residency_stage
from overt.home import Home

StageFn = Callable[[DemoContext], Stage]
STAGES: tuple[StageFn, ...] = (
    log_stage,
    recovery_stage,
    keys_stage,
    build_stage,
    avdb_stage,
    auditor_stage,
    distribute_stage,
    residency_stage,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    root: Path
    stages: tuple[Stage, ...]

    @property
    def claims(self) -> tuple[Claim, ...]:
        return tuple(c for s in self.stages for c in s.claims)

    @property
    def table(self) -> tuple[PromiseRow, ...]:
        return promise_table(self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.root),
            "stages": [s.to_dict() for s in self.stages],
            "promises": [r.to_dict() for r in self.table],
            "layout": dict(LAYOUT),
        }


def run_demo(root: Path, *, on_stage: Callable[[Stage], None] | None = None) -> DemoResult:
    """Run every stage in a new, empty ``root`` (refused if it holds anything) and write its layout files."""
    root = prepare_root(root)
    home = Home.init(root / "conveyor", origin=ORIGIN)
    stages = []
    with running_witnesses(root, home) as ctx:
        for run in STAGES:
            stage = run(ctx)
            stages.append(stage)
            if on_stage is not None:
                on_stage(stage)
    result = DemoResult(root=root, stages=tuple(stages))
    write_layout(result)
    return result
