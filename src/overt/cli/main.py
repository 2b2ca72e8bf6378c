"""Entry point: assembles the command groups and turns :class:`overt.errors.Error` into a clean exit.

This is the one place that catches the base error: it prints the message (and evidence with ``--json``)
on stderr, without a traceback, and exits with status 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from overt import __version__
from overt.cli import attest, avdb, build, demo, keys, log, serve, source, witness
from overt.cli.common import console, err_console
from overt.errors import ConfigError, Error, UnpublishedError
from overt.home import Home, LogConfig, resolve_home, unpublished
from overt.keys.signers import HsmConfig

app = typer.Typer(
    name="overt",
    help="overt: a transparent software build conveyor. Every claim it makes is checkable by outsiders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(log.app, name="log")
app.add_typer(witness.app, name="witness")
app.add_typer(keys.app, name="keys")
app.add_typer(attest.app, name="attest")
app.add_typer(source.app, name="source")
app.command("build")(build.build)
app.add_typer(avdb.app, name="avdb")
app.command("scan")(avdb.scan)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)


@app.command()
def init(
    home: Annotated[
        Path | None, typer.Option(help="overt home (default $OVERT_HOME or ./overt-home)")
    ] = None,
    origin: Annotated[str, typer.Option(help="log origin, a schema-less URL")] = "overt.example/log",
    store: Annotated[str, typer.Option(help="sequencing store: sqlite or postgres")] = "sqlite",
    postgres_dsn: Annotated[str, typer.Option(help="PostgreSQL DSN when --store postgres")] = "",
    jurisdiction: Annotated[
        str, typer.Option(help="where this conveyor builds and signs (ISO 3166-1)")
    ] = "CH",
    hsm_module: Annotated[str, typer.Option(help="PKCS#11 module for hsm: keys")] = "",
    hsm_token: Annotated[str, typer.Option(help="PKCS#11 token label")] = "",
    log_key: Annotated[str, typer.Option(help="where the Ed25519 log key lives: file or hsm")] = "file",
) -> None:
    """Create an overt home: config, log key, database and public/ tree."""
    path = resolve_home(home)
    existed = (path / "config.toml").exists()
    if log_key not in ("file", "hsm"):
        raise ConfigError("--log-key must be file or hsm")
    h = Home.init(
        path,
        config=LogConfig(origin=origin, store=store, postgres_dsn=postgres_dsn),
        jurisdiction=jurisdiction,
        hsm=HsmConfig(module=hsm_module, token=hsm_token),
        log_key_on_hsm=log_key == "hsm",
    )
    verb = "exists" if existed else "created"
    console.print(f"overt home {verb} at {h.path}")
    console.print(f"log origin: {h.log_config.origin}")
    console.print(f"log vkey:   {(h.log_dir / 'vkey').read_text().strip()}")
    console.print(
        f"jurisdiction: {h.conveyor.jurisdiction}; log key {h.log_key().keyid[:16]} ({h.log_key().storage})"
    )


@app.command()
def version() -> None:
    """Print the overt version."""
    console.print(__version__)


def _unpublished_exit(wants_json: bool) -> None:
    """Exit 2 if this command appended entries that no published checkpoint covers: not verifiable yet."""
    pending = unpublished()
    if not pending:
        return
    indices = ", ".join(str(u.index) for u in pending)
    message = (
        f"not published: log entries {indices} are appended, but no published checkpoint covers them yet "
        f"({pending[-1].reason}); nobody can verify them until 'overt log publish' succeeds"
    )
    if wants_json:
        print(
            json.dumps({"error": "UnpublishedError", "message": message, "indices": indices}), file=sys.stderr
        )
    else:
        err_console.print(Text(f"error: {message}"), highlight=False)
    sys.exit(UnpublishedError.exit_code)


def main(argv: list[str] | None = None) -> None:
    wants_json = "--json" in (argv if argv is not None else sys.argv)
    try:
        rc = app(args=argv, standalone_mode=False)
        _unpublished_exit(wants_json)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except Error as e:
        if wants_json:
            print(
                json.dumps(
                    {"error": type(e).__name__, "message": str(e), "evidence": e.evidence}, default=str
                ),
                file=sys.stderr,
            )
        else:
            err_console.print(Text(f"error: {e}"), highlight=False)
            for k, v in e.evidence.items():
                err_console.print(Text(f"  {k}: {v}"), highlight=False)
        _unpublished_exit(wants_json)
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as e:  # usage errors arrive here in non-standalone mode
        # typer bundles its own copy of click (typer._click); catch that one and the real one alike.
        import click
        from typer._click.exceptions import ClickException as TyperClickException

        if isinstance(e, TyperClickException | click.ClickException):
            err_console.print(Text(f"error: {e.format_message()}"), highlight=False)
            sys.exit(2)
        raise
