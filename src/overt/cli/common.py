"""Console objects and small CLI helpers shared by the command modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from overt.errors import ConfigError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

HomeOpt = Annotated[Path | None, typer.Option(help="overt home (default $OVERT_HOME or ./overt-home)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
