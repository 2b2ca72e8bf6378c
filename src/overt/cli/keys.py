"""``overt keys ...``: the key registry (list, generate, import, rotate) and the per-key audit from the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from overt.cli.common import (
    HomeOpt,
    JsonOpt,
    LogUrlOpt,
    console,
    emit_json,
    log_appender,
    log_client,
    read_file,
)
from overt.errors import ConfigError, FormatError
from overt.home import Home, resolve_home
from overt.keys.audit import BAD_SIGNATURE, REFUSED, audit_key
from overt.keys.registry import KeyRecord, Role, check_jurisdiction, parse_role
from overt.keys.rotation import rotate as rotate_key
from overt.keys.signers import generate_file_key, hsm_generate, hsm_import, import_file_key, parse_hsm_uri

app = typer.Typer(
    help="Keys bound to a role and a jurisdiction: list, generate, import, rotate, audit.",
    no_args_is_help=True,
)

RoleOpt = Annotated[str, typer.Option(help=f"key role: {', '.join(r.value for r in Role)}")]
JurisdictionOpt = Annotated[
    str | None, typer.Option(help="ISO 3166-1 code of where the key lives (default: the conveyor's)")
]
ValidDaysOpt = Annotated[int | None, typer.Option(help="validity in days from now (default: open-ended)")]


def _row(r: KeyRecord, now: datetime) -> dict[str, Any]:
    return {
        "keyid": r.keyid,
        "role": r.role.value,
        "jurisdiction": r.jurisdiction,
        "keytype": r.key.keytype,
        "scheme": r.key.scheme,
        "storage": r.storage,
        "status": r.status(now),
        "valid_from": r.public_dict()["valid_from"],
        "valid_until": r.public_dict().get("valid_until"),
        "rotated_to": r.rotated_to or None,
        "introduced_by": r.introduced_by,
    }


def print_keys(records: list[KeyRecord], now: datetime) -> None:
    table = Table("keyid", "role", "jurisdiction", "type", "storage", "status", "valid from", "valid until")
    for r in records:
        row = _row(r, now)
        status = row["status"]
        colour = "green" if status == "active" else "yellow"
        table.add_row(
            r.keyid[:16],
            row["role"],
            row["jurisdiction"],
            r.key.scheme,
            row["storage"],
            f"[{colour}]{status}[/]" + (f" → {r.rotated_to[:16]}" if r.rotated_to else ""),
            row["valid_from"],
            row["valid_until"] or "-",
        )
    console.print(table)


@app.command("list")
def list_keys(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """List every key of this home with its role, jurisdiction, storage and validity."""
    h = Home(resolve_home(home))
    now = datetime.now(UTC)
    records = h.registry.records()
    if json:
        emit_json({"keys": [_row(r, now) for r in records]})
        return
    print_keys(records, now)
    console.print(f"public key files: {h.registry.public_dir}")


def _validity(days: int | None) -> tuple[datetime, datetime | None]:
    now = datetime.now(UTC).replace(microsecond=0)
    if days is not None and days < 1:
        raise ConfigError("--valid-days must be at least 1")
    return now, (now + timedelta(days=days) if days is not None else None)


def _register(
    h: Home, key_uri: str, key: Any, role: Role, jurisdiction: str | None, days: int | None
) -> KeyRecord:
    if role is Role.LOG:
        raise ConfigError("the log key is created by 'overt init'; a log has exactly one key")
    start, until = _validity(days)
    record = KeyRecord.create(
        key,
        role=role,
        jurisdiction=check_jurisdiction(jurisdiction or h.conveyor.jurisdiction),
        valid_from=start,
        valid_until=until,
        uri=key_uri,
    )
    if any(r.keyid == record.keyid for r in h.registry.records()):
        raise ConfigError(f"key {record.keyid[:16]} is already in the registry")
    h.registry.save(record)
    return record


def _done(record: KeyRecord, verb: str, json: bool) -> None:
    if json:
        emit_json({verb: _row(record, datetime.now(UTC))})
        return
    console.print(
        f"{verb} {record.role.value} key {record.keyid} ({record.key.scheme}, {record.storage}) "
        f"in jurisdiction {record.jurisdiction}"
    )


@app.command()
def generate(
    role: RoleOpt,
    home: HomeOpt = None,
    jurisdiction: JurisdictionOpt = None,
    type: Annotated[str, typer.Option("--type", help="ed25519 or ecdsa (P-256)")] = "ed25519",
    hsm: Annotated[bool, typer.Option("--hsm", help="generate on the PKCS#11 token of [hsm]")] = False,
    valid_days: ValidDaysOpt = None,
    json: JsonOpt = False,
) -> None:
    """Generate a key of a role: a software key (file2:) by default, or on the HSM with --hsm."""
    h = Home(resolve_home(home))
    r = parse_role(role)
    if r is Role.LOG:
        raise ConfigError("the log key is created by 'overt init'; a log has exactly one key")
    if hsm:
        key_uri, key = hsm_generate(h.hsm, type, f"overt-{r.value}")
    else:
        key_uri, key = generate_file_key(h.keys_dir, type)
    _done(_register(h, key_uri, key, r, jurisdiction, valid_days), "generated", json)


@app.command("import")
def import_key(
    role: RoleOpt,
    uri: Annotated[str, typer.Option(help="file2:/path/to/key.pem or hsm:<id>?label=<token>")],
    home: HomeOpt = None,
    jurisdiction: JurisdictionOpt = None,
    valid_days: ValidDaysOpt = None,
    json: JsonOpt = False,
) -> None:
    """Register an existing private key: a PEM file or a key pair already on the PKCS#11 token."""
    h = Home(resolve_home(home))
    r = parse_role(role)
    if uri.startswith("file2:"):
        key_uri, key = import_file_key(Path(uri[len("file2:") :]))
    elif uri.startswith("hsm:"):
        hsm_keyid, _ = parse_hsm_uri(uri)
        key_uri, key = hsm_import(h.hsm, hsm_keyid)
    else:
        raise FormatError(f"--uri must start with file2: or hsm:, not {uri[:20]!r}")
    _done(_register(h, key_uri, key, r, jurisdiction, valid_days), "imported", json)


@app.command()
def rotate(
    role: Annotated[str | None, typer.Option(help="rotate the active key of this role")] = None,
    key: Annotated[str | None, typer.Option(help="rotate this key (keyid or prefix)")] = None,
    reason: Annotated[
        str, typer.Option(help="why, recorded in the logged rotation statement")
    ] = "scheduled rotation",
    hsm: Annotated[
        bool | None,
        typer.Option("--hsm/--file", help="where the new key lives (default: where the old one is)"),
    ] = None,
    valid_days: ValidDaysOpt = None,
    log_url: LogUrlOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Introduce a new key of a role with a statement signed by the old key and logged, then retire the old one."""
    h = Home(resolve_home(home))
    now = datetime.now(UTC)
    if (role is None) == (key is None):
        raise ConfigError("name exactly one of --role or --key")
    old = h.registry.get(key) if key is not None else h.registry.current(parse_role(role or ""), now)
    on_hsm = old.storage == "hsm" if hsm is None else hsm
    if on_hsm:
        new_uri, new_key = hsm_generate(h.hsm, old.key.keytype, f"overt-{old.role.value}")
    else:
        new_uri, new_key = generate_file_key(h.keys_dir, old.key.keytype)
    _, until = _validity(valid_days)
    draft = KeyRecord.create(
        new_key, role=old.role, jurisdiction=old.jurisdiction, valid_from=now, valid_until=until, uri=new_uri
    )
    with log_appender(h, log_url) as append:
        new, signed = rotate_key(
            h.signing_service(append=append),
            h.registry,
            old,
            new_uri=new_uri,
            new_key_record=draft,
            reason=reason,
        )
    if json:
        emit_json(
            {
                "old": _row(h.registry.get(old.keyid), now),
                "new": _row(new, now),
                "rotation_log_index": signed.receipt.index,
                "checkpoint_published": signed.receipt.published,
            }
        )
        return
    console.print(f"rotated {old.role.value} key {old.keyid[:16]} → {new.keyid[:16]} ({new.storage})")
    console.print(f"rotation statement signed by the old key, logged at index {signed.receipt.index}")


@app.command()
def audit(
    key: Annotated[
        str, typer.Argument(help="keyid (or prefix) in this home, or a public key file <keyid>.json")
    ],
    log: Annotated[
        str | None, typer.Option(help="log prefix: http(s) URL or directory (default: home's public/log)")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file (default: <log>/policy)")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """List everything a key ever signed (and refused), read from the log with inclusion verified."""
    if Path(key).is_file():
        record = KeyRecord.from_bytes(read_file(Path(key)))
    else:
        record = Home(resolve_home(home)).registry.get(key)
    client = log_client(log or str(resolve_home(home) / "public" / "log"), policy)
    with Progress(transient=True, disable=json, console=console) as progress:
        task = progress.add_task("reading the log", total=None)
        report = audit_key(
            client,
            record.key,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    cp = report.tree.checkpoint.checkpoint
    if json:
        emit_json(
            {
                "keyid": record.keyid,
                "role": record.role.value,
                "jurisdiction": record.jurisdiction,
                "log": {
                    "origin": cp.origin,
                    "tree_size": cp.tree_size,
                    "cosigners": sorted(report.tree.cosigners),
                },
                "entries": [
                    {
                        "index": e.index,
                        "kind": e.kind,
                        "predicate_type": e.predicate_type,
                        "subjects": list(e.subjects),
                        "envelope_sha256": e.envelope_sha256,
                        "detail": e.detail,
                        "inclusion_verified": e.inclusion_verified,
                    }
                    for e in report.entries
                ],
            }
        )
    else:
        console.print(
            f"key {record.keyid[:16]} ({record.role.value}, {record.jurisdiction}) in {cp.origin} "
            f"at size {cp.tree_size}, checkpoint verified (cosigners: {sorted(report.tree.cosigners) or 'none'})"
        )
        table = Table("index", "kind", "predicate type", "subject", "inclusion")
        for e in report.entries:
            colour = {REFUSED: "yellow", BAD_SIGNATURE: "red"}.get(e.kind, "green")
            subject = "; ".join(e.subjects) if e.kind != REFUSED else e.detail
            table.add_row(str(e.index), f"[{colour}]{e.kind}[/]", e.predicate_type, subject, "verified")
        console.print(table)
    if any(e.kind == BAD_SIGNATURE for e in report.entries):
        raise typer.Exit(3)
