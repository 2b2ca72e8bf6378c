"""The end-to-end demonstration: stages that check overt's promises and return claims as data.

Each stage (the log, recovery from an old backup, keys and jurisdictions, a reproducible build, AV databases,
update distribution) returns a :class:`Stage` of :class:`Claim` objects: the promise a claim supports, what
was checked, the evidence file, and the command that re-checks it. :func:`run_demo` runs them all in a fresh directory and
writes ``README.md`` and ``summary.json`` there. The CLI (``overt demo``) only prints the result.
"""

from overt.demo.claims import (
    NOT_YET,
    PROMISES,
    Claim,
    Command,
    Promise,
    PromiseRow,
    Stage,
    Status,
    promise_table,
)
from overt.demo.run import STAGES, DemoResult, run_demo

__all__ = [
    "NOT_YET",
    "PROMISES",
    "STAGES",
    "Claim",
    "Command",
    "DemoResult",
    "Promise",
    "PromiseRow",
    "Stage",
    "Status",
    "promise_table",
    "run_demo",
]
