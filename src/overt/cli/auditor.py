"""``overt auditor ...``: an independent auditor's home, apart from any conveyor's.

The home (keys, witness, pins, config) is :mod:`overt.auditor.home`; this module parses arguments and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from overt.auditor.home import DEFAULT_JURISDICTION, MAX_POLICY_FILE, AuditorHome
from overt.cli.common import JsonOpt, console, emit_json, read_file

app = typer.Typer(
    help="An independent auditor: its own keys and witness, and the vendor's log and keys it pinned.",
    no_args_is_help=True,
)

AHome = Annotated[Path, typer.Option(help="auditor home directory (never a conveyor's home)")]


@app.command()
def init(
    home: AHome,
    name: Annotated[
        str, typer.Option(help="the auditor's name, e.g. auditor.example/a1 (also its witness's)")
    ],
    log_url: Annotated[str, typer.Option(help="the vendor's log, http(s)")],
    log_policy: Annotated[
        Path, typer.Option(help="the vendor's tlog-policy for that log, obtained out of band; copied in")
    ],
    vendor_key: Annotated[
        list[Path],
        typer.Option(help="a vendor public key file (public/keys/<keyid>.json); repeat; copied in"),
    ],
    jurisdiction: Annotated[
        str, typer.Option(help="where the auditor signs (ISO 3166-1)")
    ] = DEFAULT_JURISDICTION,
    unsafe_no_witness_quorum: Annotated[
        bool,
        typer.Option(
            "--unsafe-no-witness-quorum",
            help="pin a policy without witnesses: the log alone vouches for itself",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Make an auditor home in a new or empty directory: its own keys, and the vendor's policy and keys pinned."""
    made = AuditorHome.init(
        home,
        name=name,
        log_url=log_url,
        log_policy=read_file(log_policy, limit=MAX_POLICY_FILE),
        vendor_keys=vendor_key,
        jurisdiction=jurisdiction,
        unsafe_no_witness_quorum=unsafe_no_witness_quorum,
    )
    _render(made, f"auditor home created at {made.paths.root}", json=json)


@app.command()
def show(home: AHome, json: JsonOpt = False) -> None:
    """Show an auditor home: its keys, its witness, and what it pinned."""
    found = AuditorHome.open(home)
    _render(found, f"auditor home at {found.paths.root}", json=json)


def _render(home: AuditorHome, title: str, *, json: bool) -> None:
    view: dict[str, Any] = home.to_dict()
    if json:
        emit_json(view)
        return
    log = view["log"]
    console.print(title)
    console.print(f"auditor:      {view['name']} ({view['jurisdiction']})")
    console.print(f"auditor key:  {view['auditor_key']['keyid']} ({view['auditor_key']['keytype']})")
    console.print(f"witness vkey: {view['witness']['vkey']}")
    console.print(f"log:          {log['url']} ({', '.join(log['origins'])}; quorum {log['quorum']})")
    console.print(f"log policy:   sha256:{log['policy_sha256']}")
    for key in view["vendor_keys"]:
        console.print(f"vendor key:   {key['keyid']} ({key['role']}, {key['jurisdiction']})")
