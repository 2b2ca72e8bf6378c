"""``overt keys ...``: the key registry (list, generate, import, rotate), the builder registry
(``keys builders``) and the per-key audit from the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Column, Table
from rich.text import Text

from overt.cli.common import (
    HomeOpt,
    JsonOpt,
    LogUrlOpt,
    PolicyOpt,
    StateOpt,
    TofuOpt,
    Trust,
    VkeyOpt,
    console,
    emit_json,
    log_appender,
    log_client,
    logged_at,
    read_file,
)
from overt.errors import ConfigError, FormatError
from overt.home import Home, resolve_home
from overt.keys.audit import BAD_SIGNATURE, REFUSED, audit_key
from overt.keys.builders import BuilderRegistry, add_builder, register_first_builder, remove_builder
from overt.keys.registry import KeyRecord, Role, check_jurisdiction, check_signing_jurisdiction, parse_role
from overt.keys.rotation import rotate as rotate_key
from overt.keys.signers import generate_file_key, hsm_generate, hsm_import, import_file_key, parse_hsm_uri

app = typer.Typer(
    help="Keys bound to a role and a jurisdiction: list, generate, import, rotate, audit; the builder registry.",
    no_args_is_help=True,
)
builders_app = typer.Typer(
    help="The builder registry: exact builder ids allowed to build in a jurisdiction, signed by the release key.",
    no_args_is_help=True,
)
app.add_typer(builders_app, name="builders")

RoleOpt = Annotated[str, typer.Option(help=f"key role: {', '.join(r.value for r in Role)}")]
JurisdictionOpt = Annotated[
    str | None, typer.Option(help="ISO 3166-1 code of where the key lives (default: the conveyor's)")
]
ValidDaysOpt = Annotated[
    int | None,
    typer.Option(min=1, max=36525, help="validity in days from now, at most 100 years (default: open-ended)"),
]


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
    # 16 hex digits, never cut: commands take a keyid prefix.
    keyid = Column("keyid", no_wrap=True, min_width=16)
    table = Table(keyid, "role", "jurisdiction", "type", "storage", "status", "valid from", "valid until")
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
            Text.assemble((status, colour), f" → {r.rotated_to[:16]}" if r.rotated_to else ""),
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


def _register(h: Home, key_uri: str, key: Any, role: Role, days: int | None) -> KeyRecord:
    """A new signing key, always in the conveyor's jurisdiction."""
    if role is Role.LOG:
        raise ConfigError("the log key is created by 'overt init'; a log has exactly one key")
    start, until = _validity(days)
    record = KeyRecord.create(
        key,
        role=role,
        jurisdiction=h.conveyor.jurisdiction,
        valid_from=start,
        valid_until=until,
        uri=key_uri,
    )
    h.registry.add(record, conveyor_jurisdiction=h.conveyor.jurisdiction)
    return record


def _signing_jurisdiction(h: Home, jurisdiction: str | None) -> None:
    """Refuse, before any key material is made or read, a signing key outside the conveyor's jurisdiction."""
    if jurisdiction is not None:
        check_signing_jurisdiction(jurisdiction, conveyor=h.conveyor.jurisdiction)


def _done(record: KeyRecord, verb: str, json: bool, extra: dict[str, Any] | None = None) -> None:
    if json:
        emit_json({verb: _row(record, datetime.now(UTC)), **(extra or {})})
        return
    console.print(
        f"{verb} {record.role.value} key {record.keyid} ({record.key.scheme}, {record.storage}) "
        f"in jurisdiction {record.jurisdiction}" + ("" if record.uri else ", for verification only")
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
    _signing_jurisdiction(h, jurisdiction)
    if hsm:
        key_uri, key = hsm_generate(h.hsm, type, f"overt-{r.value}")
    else:
        key_uri, key = generate_file_key(h.keys_dir, type)
    record = _register(h, key_uri, key, r, valid_days)
    first = None
    if r is Role.RELEASE:
        first = register_first_builder(
            h.builder_store(),
            h.signing_service(),
            record,
            builder_id=h.conveyor.provenance_builder_id,
            jurisdiction=h.conveyor.jurisdiction,
        )
    if first is None:
        _done(record, "generated", json)
        return
    registry, signed = first
    _done(record, "generated", json, {"builder_registry": _registry_json(registry, signed.receipt.index)})
    if not json:
        _print_registered(
            h.conveyor.provenance_builder_id, h.conveyor.jurisdiction, registry, signed.receipt.index
        )


@app.command("import")
def import_key(
    role: Annotated[
        str | None, typer.Option(help=f"key role: {', '.join(r.value for r in Role)} (with --uri)")
    ] = None,
    uri: Annotated[
        str | None, typer.Option(help="a signing key: file2:/path/to/key.pem or hsm:<id>?label=<token>")
    ] = None,
    public: Annotated[
        Path | None,
        typer.Option(help="a public key file (<keyid>.json) from anywhere, imported for verification only"),
    ] = None,
    home: HomeOpt = None,
    jurisdiction: JurisdictionOpt = None,
    valid_days: ValidDaysOpt = None,
    json: JsonOpt = False,
) -> None:
    """Register an existing key: a signing key (PEM file or PKCS#11 key pair, in the conveyor's jurisdiction),
    or any public key file for verification only."""
    h = Home(resolve_home(home))
    if (uri is None) == (public is None):
        raise ConfigError("name exactly one of --uri (a signing key) or --public (a key to verify with)")
    if public is not None:
        record = KeyRecord.from_bytes(read_file(public)).public()
        if role is not None and parse_role(role) is not record.role:
            raise ConfigError(f"{public} is a {record.role.value} key, not {role}")
        if jurisdiction is not None and check_jurisdiction(jurisdiction) != record.jurisdiction:
            raise ConfigError(f"{public} is a key in {record.jurisdiction}, not {jurisdiction}")
        h.registry.add(record, conveyor_jurisdiction=h.conveyor.jurisdiction)
        _done(record, "imported", json)
        return
    assert uri is not None
    if role is None:
        raise ConfigError("--uri needs --role")
    r = parse_role(role)
    _signing_jurisdiction(h, jurisdiction)
    if uri.startswith("file2:"):
        key_uri, key = import_file_key(Path(uri[len("file2:") :]))
    elif uri.startswith("hsm:"):
        hsm_keyid, _ = parse_hsm_uri(uri)
        key_uri, key = hsm_import(h.hsm, hsm_keyid)
    else:
        raise FormatError(f"--uri must start with file2: or hsm:, not {uri[:20]!r}")
    _done(_register(h, key_uri, key, r, valid_days), "imported", json)


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
    console.print(f"rotation statement signed by the old key, {logged_at(signed.receipt.index)}")


@app.command()
def audit(
    key: Annotated[
        str, typer.Argument(help="keyid (or prefix) in this home, or a public key file <keyid>.json")
    ],
    log: Annotated[
        str | None, typer.Option(help="log prefix: http(s) URL or directory (default: home's public/log)")
    ] = None,
    policy: PolicyOpt = None,
    vkey: VkeyOpt = None,
    trust_on_first_use: TofuOpt = False,
    state: StateOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """List everything a key ever signed (and refused), read from the log with inclusion verified.

    The log's trust roots are yours, never the log's: --policy, --vkey, or --trust-on-first-use."""
    if Path(key).is_file():
        record = KeyRecord.from_bytes(read_file(Path(key)))
    else:
        record = Home(resolve_home(home)).registry.get(key)
    trust = Trust(policy=policy, vkey=vkey, trust_on_first_use=trust_on_first_use, state=state)
    client, _ = log_client(log or str(resolve_home(home) / "public" / "log"), trust)
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
            f"at size {cp.tree_size}, checkpoint verified (cosigners: {', '.join(sorted(report.tree.cosigners)) or 'none'})"
        )
        table = Table("index", "kind", "predicate type", "subject", "inclusion")
        for e in report.entries:
            colour = {REFUSED: "yellow", BAD_SIGNATURE: "red"}.get(e.kind, "green")
            subject = "; ".join(e.subjects) if e.kind != REFUSED else e.detail
            table.add_row(str(e.index), Text(e.kind, style=colour), e.predicate_type, subject, "verified")
        console.print(table)
    if any(e.kind == BAD_SIGNATURE for e in report.entries):
        raise typer.Exit(1)  # a bad signature in the log is a verification failure


# --- the builder registry ---------------------------------------------------------------------------------

BuilderIdArg = Annotated[
    str,
    typer.Argument(help="the exact builder.id string provenance carries, compared character for character"),
]
ReleaseKeyOpt = Annotated[
    str | None,
    typer.Option("--key", help="release key (keyid or prefix) to sign with (default: the active one)"),
]


def _registry_json(registry: BuilderRegistry, log_index: int | None) -> dict[str, Any]:
    return {
        "version": registry.version,
        "builders": [b.to_dict() for b in registry.builders],
        "log_index": log_index,
    }


def _print_registered(builder_id: str, jurisdiction: str, registry: BuilderRegistry, log_index: int) -> None:
    console.print(
        f"registered builder {builder_id} in {jurisdiction}: builder registry v{registry.version}, "
        f"signed by the release key and {logged_at(log_index)}"
    )


def _release_key(h: Home, key: str | None) -> KeyRecord:
    return h.registry.get(key) if key is not None else h.registry.current(Role.RELEASE, datetime.now(UTC))


@builders_app.command("list")
def builders_list(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """List the builders this conveyor signs provenance from, as its release key signed them."""
    h = Home(resolve_home(home))
    store = h.builder_store()
    registry = store.load()
    if json:
        emit_json(_registry_json(registry, None) | {"path": str(store.current_path)})
        return
    if not registry.version:
        console.print(
            "no builder registry yet: 'overt keys generate --role release' registers this conveyor's own "
            "builder, 'overt keys builders add' any other"
        )
        return
    abroad = any(b.unsafe_allow_foreign_host for b in registry.builders)
    table = Table("builder id", "jurisdiction", *(["host"] if abroad else []))
    for b in registry.builders:
        host = ["abroad, allowed (unsafe)" if b.unsafe_allow_foreign_host else ""] if abroad else []
        table.add_row(b.id, b.jurisdiction, *host)
    console.print(table)
    console.print(
        f"builder registry v{registry.version}, signature verified, the newest in this home's log: "
        f"{store.current_path}"
    )


@builders_app.command("add")
def builders_add(
    builder_id: BuilderIdArg,
    jurisdiction: Annotated[
        str | None, typer.Option(help="where that builder builds (default: the conveyor's jurisdiction)")
    ] = None,
    key: ReleaseKeyOpt = None,
    unsafe_allow_foreign_host: Annotated[
        bool,
        typer.Option(
            "--unsafe-allow-foreign-host",
            help="register it although its host is under another country's TLD (recorded in the entry)",
        ),
    ] = False,
    log_url: LogUrlOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Register a builder id: a new registry version, signed by the release key and logged.

    A builder id on a host under another country's country-code TLD (.ru for a CH conveyor) is refused
    unless --unsafe-allow-foreign-host, which the registry entry then records."""
    h = Home(resolve_home(home))
    where = jurisdiction or h.conveyor.jurisdiction
    with log_appender(h, log_url) as append:
        registry, signed = add_builder(
            h.builder_store(),
            h.signing_service(append=append),
            _release_key(h, key),
            builder_id=builder_id,
            jurisdiction=where,
            unsafe_allow_foreign_host=unsafe_allow_foreign_host,
        )
    if json:
        emit_json(_registry_json(registry, signed.receipt.index))
        return
    _print_registered(builder_id, where, registry, signed.receipt.index)
    if any(b.id == builder_id and b.unsafe_allow_foreign_host for b in registry.builders):
        console.print(
            "its host is under another country's TLD: allowed by --unsafe-allow-foreign-host, and the logged "
            "registry entry says so (unsafeAllowForeignHost)"
        )


@builders_app.command("remove")
def builders_remove(
    builder_id: BuilderIdArg,
    key: ReleaseKeyOpt = None,
    log_url: LogUrlOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Withdraw a builder id: a new registry version without it, signed by the release key and logged."""
    h = Home(resolve_home(home))
    with log_appender(h, log_url) as append:
        registry, signed = remove_builder(
            h.builder_store(), h.signing_service(append=append), _release_key(h, key), builder_id=builder_id
        )
    if json:
        emit_json(_registry_json(registry, signed.receipt.index))
        return
    console.print(
        f"removed builder {builder_id}: builder registry v{registry.version}, signed by the release key and "
        f"{logged_at(signed.receipt.index)}"
    )
