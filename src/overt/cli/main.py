"""Entry point: assembles the command groups and turns every error into one clean exit.

This is the one place that catches the base error: it prints ``error: <message>`` (and the evidence, or with
``--json`` one JSON object) on stderr, without a traceback, and exits with the error's ``exit_code``
(README, exit codes): 0 success, 1 a verification or policy failure, 2 a usage or operational error.
Usage errors from the command-line parser (typer's bundled click) and operating-system errors (a full
disk, a directory given for a file) are operational too: one line, exit 2. A reader of stdout that goes away
(``| head``) ends the command quietly with 141, the status a shell reports for a command SIGPIPE ends, so
that it is never mistaken for a verification failure.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer._click.utils import PacifyFlushWrapper

from overt import VersionInfo, __version__
from overt.cli import (
    agent,
    attest,
    auditor,
    avdb,
    build,
    demo,
    keys,
    log,
    residency,
    serve,
    source,
    tuf,
    verify,
    witness,
)
from overt.cli.common import (
    HomeOpt,
    JsonOpt,
    console,
    emit_json,
    emit_json_line,
    err_console,
    print_error,
    printable,
    quiet_exit_on_broken_pipe,
)
from overt.errors import Error, StorageError, UnpublishedError, UsageError
from overt.home import UnpublishedAppends, resolve_home, unpublished
from overt.home.home import InitOptions, init_home

USAGE = 2  # README, exit codes: a usage or operational error

app = typer.Typer(
    name="overt",
    help="overt: a transparent software build conveyor. Every claim it makes is checkable by outsiders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help is plain text: "[hsm]" in an option's help is a config section, not rich markup.
    rich_markup_mode=None,
)
app.add_typer(log.app, name="log")
app.add_typer(witness.app, name="witness")
app.add_typer(auditor.app, name="auditor")
app.add_typer(keys.app, name="keys")
app.add_typer(attest.app, name="attest")
app.add_typer(source.app, name="source")
app.command("build")(build.build)
app.add_typer(avdb.app, name="avdb")
app.command("scan")(avdb.scan)
app.add_typer(tuf.app, name="tuf")
app.command("release")(tuf.release)
app.add_typer(agent.app, name="agent")
app.add_typer(residency.app, name="residency")
app.command("verify")(verify.verify)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="print the version and exit"),
    ] = False,
) -> None:
    """overt: a transparent software build conveyor. Every claim it makes is checkable by outsiders."""


@app.command()
def init(
    home: HomeOpt = None,
    origin: Annotated[
        str | None, typer.Option(help="log origin, a schema-less URL [default: overt.example/log]")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="sequencing store: sqlite or postgres [default: sqlite]")
    ] = None,
    postgres_dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN when --store postgres")] = None,
    jurisdiction: Annotated[
        str | None, typer.Option(help="where this conveyor builds and signs (ISO 3166-1) [default: CH]")
    ] = None,
    hsm_module: Annotated[str | None, typer.Option(help="PKCS#11 module for hsm: keys")] = None,
    hsm_token: Annotated[str | None, typer.Option(help="PKCS#11 token label")] = None,
    log_key: Annotated[
        str | None, typer.Option(help="where the Ed25519 log key lives: file or hsm [default: file]")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create an overt home: config, log key, database and public/ tree.

    On an existing home it changes nothing and shows it; options that differ from its settings exit 2."""
    options = InitOptions(
        origin=origin,
        store=store,
        postgres_dsn=postgres_dsn,
        jurisdiction=jurisdiction,
        hsm_module=hsm_module,
        hsm_token=hsm_token,
        log_key=log_key,
    )
    made = init_home(resolve_home(home), options)
    if json:
        emit_json(made.to_dict())
        return
    key = made.log_key
    console.print(f"overt home {'created' if made.created else 'exists'} at {made.path}")
    console.print(f"log origin: {made.origin}")
    console.print(f"log vkey:   {made.vkey}")
    console.print(f"jurisdiction: {made.jurisdiction}; log key {key.keyid[:16]} ({key.storage})")


@app.command()
def version(json: JsonOpt = False) -> None:
    """Print the overt version."""
    if json:
        emit_json(VersionInfo().to_dict())
        return
    typer.echo(__version__)


def _unpublished_exit(wants_json: bool) -> None:
    """Exit 2 if this command appended entries that no published checkpoint covers: not verifiable yet."""
    pending = unpublished()
    if not pending:
        return
    appends = UnpublishedAppends(entries=tuple(pending))
    if wants_json:
        emit_json_line(appends.to_dict(), file=sys.stderr)
    else:
        err_console.print(f"error: {printable(appends.message)}")
    sys.exit(UnpublishedError.exit_code)


def _os_error(e: OSError) -> StorageError:
    """An operating-system error as the sentence the user needs: which file, and what the system said."""
    what = e.strerror or str(e)
    where = f"{e.filename}: " if e.filename is not None else ""
    return StorageError(f"{where}{what}")


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    wants_json = "--json" in args
    try:
        rc = app(args=args, prog_name="overt", standalone_mode=False)
        _unpublished_exit(wants_json)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except Error as e:
        print_error(e, wants_json)
        _unpublished_exit(wants_json)
        sys.exit(e.exit_code)
    except NoArgsIsHelpError as e:  # a bare 'overt' or 'overt log': the help, and the usage status
        typer.echo(e.format_message(), err=True)
        sys.exit(USAGE)
    except ClickException as e:  # a usage error: unknown command or option, missing or invalid value
        print_error(UsageError(e.format_message()), wants_json)
        sys.exit(USAGE)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except BrokenPipeError:
        quiet_exit_on_broken_pipe()
    except SystemExit as e:
        # typer's click turns a broken pipe into a quiet exit 1, which here would mean "verification failed".
        if e.code == 1 and isinstance(sys.stdout, PacifyFlushWrapper):
            quiet_exit_on_broken_pipe()
        raise
    except OSError as e:
        print_error(_os_error(e), wants_json)
        _unpublished_exit(wants_json)
        sys.exit(USAGE)
