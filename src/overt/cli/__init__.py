"""The ``overt`` command line (typer): one module per command group, no logic of its own."""

from __future__ import annotations


def main() -> None:
    """The console script. It imports the commands only when it runs: multiprocessing's spawn re-imports the
    script in every worker (``overt scan``), and workers need none of the command line."""
    from overt.cli.main import main as run

    run()
