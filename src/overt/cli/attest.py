"""``overt attest ...``: sign an in-toto statement with a registry key (policy-checked and logged); verify k-of-n."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement
from overt.attest.verify import verify_envelope
from overt.cli.common import (
    HomeOpt,
    JsonOpt,
    LogUrlOpt,
    console,
    digest_set,
    emit_json,
    log_appender,
    logged_at,
    read_file,
    styled,
)
from overt.errors import Error, UsageError
from overt.home import Home, resolve_home
from overt.keys.lifecycle import choose_key
from overt.keys.registry import load_public_keys, parse_role
from overt.keys.signing import SignedStatement

app = typer.Typer(help="Signed attestations: DSSE envelopes around in-toto statements.", no_args_is_help=True)


@app.command()
def sign(
    statement: Annotated[Path, typer.Argument(help="in-toto Statement v1 JSON file")],
    key: Annotated[str | None, typer.Option(help="keyid (or prefix) to sign with")] = None,
    role: Annotated[str | None, typer.Option(help="sign with the active key of this role")] = None,
    out: Annotated[Path | None, typer.Option(help="write the envelope here (default: stdout)")] = None,
    log_url: LogUrlOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Sign a statement into a DSSE envelope, if the key's role and jurisdiction allow it; log either outcome.

    Rotation, escrow, audit, waiver and builder-registry statements are refused here: their own commands
    issue them. So is a file that is not strictly an in-toto Statement v1 (duplicate keys, unknown fields):
    the refusal names its SHA-256."""
    h = Home(resolve_home(home))
    if (key is None) == (role is None):
        raise UsageError("name exactly one of --key or --role")
    data = read_file(statement)
    try:
        record = choose_key(
            h.registry, key=key, role=None if role is None else parse_role(role), now=datetime.now(UTC)
        )
    except Error:
        # No key to refuse with, so nothing is logged: name a malformed request first, then the key.
        Statement.from_bytes(data, strict=True)
        raise
    with log_appender(h, log_url) as append:
        signed = h.signing_service(append=append).sign_bytes(record, data)
    if not signed.receipt.published:
        # The envelope is in the log but no published checkpoint covers it: withhold it, so no signature is
        # released that nobody can verify yet. After 'overt log publish', signing the same statement again with
        # an Ed25519 key gives the same entry (deduplicated, same index) and releases it.
        typer.echo(
            f"signed with {record.role.value} key {record.keyid[:16]}; the envelope is "
            f"{logged_at(signed.receipt.index)} and withheld until a published checkpoint covers it",
            err=True,
        )
        return
    if out is not None:
        out.write_bytes(signed.entry)
    if json:
        emit_json(SignedStatement(keyid=record.keyid, signed=signed, out=out).to_dict())
    elif out is None:
        typer.echo(signed.entry.decode())
    else:
        console.print(
            f"signed with {record.role.value} key {record.keyid[:16]} ({record.jurisdiction}); "
            f"{logged_at(signed.receipt.index)}; wrote {out}"
        )


@app.command()
def verify(
    envelope: Annotated[Path, typer.Argument(help="DSSE envelope JSON file")],
    key: Annotated[
        list[Path], typer.Option(help="trusted public key file (<keyid>.json); repeat for k-of-n")
    ],
    threshold: Annotated[int, typer.Option(help="distinct trusted keys that must have signed")] = 1,
    json: JsonOpt = False,
) -> None:
    """Verify an envelope with k of n distinct trusted keys and print the statement it carries."""
    env = Envelope.from_bytes(read_file(envelope))
    records = load_public_keys(key)
    verified = verify_envelope(env, [r.key for r in records], threshold)
    if json:
        emit_json(verified.to_dict())
        return
    st = verified.statement()
    console.print(
        styled("ok", "green"),
        f" signed by {len(verified.keyids)} distinct trusted key(s) (threshold {threshold})",
    )
    for k in verified.keyids:
        console.print(f"    {k}")
    if st is not None:
        console.print(f"    predicateType: {st.predicate_type}")
        for s in st.subject:
            console.print(f"    subject: {s.name} {digest_set(s.digest)}")
