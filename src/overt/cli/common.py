"""Console objects and small CLI helpers shared by the command modules.

Everything the CLI prints is text, never rich markup: a message containing ``[build]`` or
``[/usr/include]`` prints as it is. Colour, where wanted, is an explicit style on a :class:`rich.text.Text`.
When stdout is not a terminal nothing is wrapped and tables are as wide as their contents, so keyids and
paths reach a pipe whole. Values a user reads have one spelling (:func:`human`), never a Python repr.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from overt.errors import ConfigError, Error, FormatError
from overt.files import read_regular_file
from overt.home import Home, append_through_server, is_published
from overt.keys.signing import Appender, LogReceipt
from overt.tlog.client import Fetch, LogClient, check_http_url, fetcher_for
from overt.tlog.policy import Policy
from overt.tlog.trust import default_state_dir, policy_from_vkey, trust_on_first_use

# Wide enough that no table column is cut in a pipe; a table is only as wide as its contents.
PIPE_WIDTH = 10_000
# The status a shell reports for a process that SIGPIPE ends: the reader of stdout went away ('| head').
BROKEN_PIPE = 141


def quiet_exit_on_broken_pipe() -> NoReturn:
    """A reader went away: write nothing more (not even the flush at exit) and exit :data:`BROKEN_PIPE`."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(devnull, stream.fileno())
    sys.exit(BROKEN_PIPE)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True
        quiet_exit_on_broken_pipe()


def make_console(*, stderr: bool = False) -> Console:
    """A markup-free console; unwrapped, with tables as wide as they need, when the stream is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return _Console(
        stderr=stderr,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=True,
        width=None if tty else PIPE_WIDTH,
    )


console = make_console()
err_console = make_console(stderr=True)


def progress(*, json: bool) -> Progress:
    """A transient progress display on stderr, shown only on a terminal: pipes and --json get nothing."""
    return Progress(transient=True, disable=json or not err_console.is_terminal, console=err_console)


@contextmanager
def status(text: str, *, json: bool) -> Iterator[None]:
    """A spinner on stderr while long work runs, only on a terminal."""
    if json or not err_console.is_terminal:
        yield
        return
    with err_console.status(text, spinner="dots"):
        yield


def styled(text: str, style: str) -> Text:
    """``text`` in ``style`` (a rich style such as ``"green"``), never parsed as markup."""
    return Text(text, style=style)


def human(value: object) -> str:
    """One spelling for a value a user reads: lists joined with commas, mappings as ``key: value``, bytes in
    hex, ``none`` for nothing; never a Python repr."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {human(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return ", ".join(human(v) for v in items) or "none"
    return str(value)


# Controls (C0, DEL, C1) and the Unicode line and paragraph separators, which split a line as a newline does.
_CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")


def printable(text: str) -> str:
    """``text`` with its control characters escaped as Python writes them (``\\n``, ``\\t``, ``\\x1b``), so a
    file name holding a newline or an escape sequence stays on its one line and cannot drive the terminal."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in _CONTROL_CATEGORIES else c for c in text)


def digest_set(digest: Mapping[str, str]) -> str:
    """An in-toto DigestSet as the spec writes it: ``sha256:<hex>``, several joined with spaces."""
    return " ".join(f"{alg}:{value}" for alg, value in sorted(digest.items()))


HomeOpt = Annotated[Path | None, typer.Option(help="overt home (default $OVERT_HOME or ./overt-home)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
LogUrlOpt = Annotated[
    str | None,
    typer.Option(help="append through this running log server (overt serve) instead of the home's log files"),
]


def logged_at(index: int) -> str:
    """Say "logged at index N" only when a published checkpoint covers entry N (otherwise the CLI exits 2)."""
    if is_published(index):
        return f"logged at index {index}"
    return f"appended to the log at index {index} (NOT yet published)"


def _json_default(value: object) -> object:
    """What ``json`` cannot write itself: bytes in hex (as :func:`human` writes them), sets sorted, the rest
    as text (paths, times)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def emit_json_line(obj: Any, *, file: TextIO | None = None) -> None:
    """One JSON object on one line, flushed: what a long-running command says when it starts, and errors."""
    print(json.dumps(obj, sort_keys=True, default=_json_default), file=file, flush=True)


def print_error(e: Error, wants_json: bool) -> None:
    """``error: <message>`` and the evidence, one ``key: value`` line each; with ``--json``, one JSON object."""
    if wants_json:
        emit_json_line(
            {"error": type(e).__name__, "message": str(e), "evidence": e.evidence}, file=sys.stderr
        )
        return
    err_console.print(f"error: {printable(str(e))}")
    for k, v in e.evidence.items():
        err_console.print(
            f"  {printable(k)}: " + "\n    ".join(printable(line) for line in human(v).split("\n"))
        )


# The most a command reads of a file it is given (an artifact, an envelope, a database): as much as the
# escrow stores of one object.
MAX_INPUT_FILE = 1 << 30


def read_file(path: Path, *, limit: int = MAX_INPUT_FILE) -> bytes:
    """The bytes of a regular file, at most ``limit``: a FIFO or a device is refused, never read forever."""
    return read_regular_file(path, limit=limit)


@contextmanager
def log_appender(home: Home, log_url: str | None) -> Iterator[Appender | None]:
    """None (append to the home's log directly) or an appender through a log server's ``POST /add``."""
    if log_url is None:
        yield None
        return
    check_http_url(log_url)  # before the command does anything it would have to undo
    policy = home.log.policy()

    def append(entry: bytes) -> LogReceipt:
        return append_through_server(log_url, entry, policy)

    yield append


PolicyOpt = Annotated[
    Path | None,
    typer.Option(help="the log's tlog-policy, as you obtained it out of band (never read from the log)"),
]
VkeyOpt = Annotated[str | None, typer.Option(help="trust only this log vkey, with no witnesses")]
TofuOpt = Annotated[
    bool,
    typer.Option(
        "--trust-on-first-use",
        help="pin <log>/policy in the state directory the first time, and refuse it whenever it changes",
    ),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        help="client state: policies pinned on first use and, for 'log verify', the last verified "
        "checkpoints (default $XDG_STATE_HOME/overt)"
    ),
]
NO_TRUST = (
    "refusing to take trust roots from the log being verified: pass --policy FILE (its tlog-policy, "
    "obtained out of band), --vkey VKEY (a log without witnesses) or --trust-on-first-use"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trust:
    """How a verifying command pins the log's trust roots: one of --policy, --vkey, --trust-on-first-use."""

    policy: Path | None = None
    vkey: str | None = None
    trust_on_first_use: bool = False
    state: Path | None = None

    @property
    def state_dir(self) -> Path:
        state = self.state if self.state is not None else default_state_dir()
        if state.exists() and not state.is_dir():
            raise ConfigError(
                f"the client state {state} is a file; it must be a directory (created if missing)"
            )
        return state


def pinned_policy(source: str, fetch: Fetch, trust: Trust) -> tuple[Policy, str]:
    """The policy the user pinned for the log at ``source`` (``<source>/policy`` only on trust on first use),
    and a sentence saying where it came from."""
    given = [
        name
        for name, on in (
            ("--policy", trust.policy is not None),
            ("--vkey", trust.vkey is not None),
            ("--trust-on-first-use", trust.trust_on_first_use),
        )
        if on
    ]
    if not given:
        raise ConfigError(NO_TRUST)
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} exclude each other: pin the log's trust roots one way")
    if trust.policy is not None:
        try:
            return Policy.from_bytes(read_file(trust.policy)), f"policy {trust.policy}"
        except FormatError as e:
            raise ConfigError(f"{trust.policy}: {e}") from e
    if trust.vkey is not None:
        pol = policy_from_vkey(trust.vkey)
        return pol, f"log key {pol.logs[0].verifier.vkey()}, no witnesses"
    pinned = trust_on_first_use(fetch, source=source, state_dir=trust.state_dir)
    how = "trusted on first use and pinned now" if pinned.first_use else "the same as pinned on first use"
    return pinned.policy, f"<log>/policy (sha256:{pinned.sha256}), {how} in {pinned.path}"


def log_client(source: str, trust: Trust, *, remember: bool = False) -> tuple[LogClient, str]:
    """A verifying client for the log at ``source`` (URL or directory) under the policy ``trust`` pins, and
    where that policy came from.

    With ``remember``, the client keeps the last verified checkpoint of each origin in the state directory
    and checks every later one is consistent with it.
    """
    fetch = fetcher_for(source)
    policy, basis = pinned_policy(source, fetch, trust)
    return LogClient(fetch, policy, trust.state_dir if remember else None), basis


def log_client_if(source: str | None, trust: Trust) -> LogClient | None:
    """:func:`log_client` for ``source``, or None without a log (then trust options pin nothing: refused)."""
    if source is not None:
        return log_client(source, trust)[0]
    if trust.policy is not None or trust.vkey is not None or trust.trust_on_first_use:
        raise ConfigError(
            "--policy, --vkey and --trust-on-first-use pin the trust roots of --log: give --log too"
        )
    return None
