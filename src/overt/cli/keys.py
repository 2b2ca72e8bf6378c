"""``overt keys ...``: the key registry (list, generate, import, rotate), the builder registry
(``keys builders``) and the per-key audit from the log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
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
    progress,
    read_file,
)
from overt.errors import UsageError
from overt.home import Home, resolve_home
from overt.keys.audit import BAD_SIGNATURE, REFUSED, KeyAudit, audit_record
from overt.keys.lifecycle import (
    MAX_VALID_DAYS,
    KeyListing,
    NewKey,
    RegistryVersion,
    builder_registry,
    choose_key,
    generate_key,
    import_public_key,
    import_signing_key,
    list_keys,
    register_builder,
    rotate_key,
    withdraw_builder,
)
from overt.keys.registry import KeyRecord, Role, parse_role

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
    typer.Option(
        min=1, max=MAX_VALID_DAYS, help="validity in days from now, at most 100 years (default: open-ended)"
    ),
]


def _print_keys(listing: KeyListing) -> None:
    # 16 hex digits, never cut: commands take a keyid prefix.
    keyid = Column("keyid", no_wrap=True, min_width=16)
    table = Table(keyid, "role", "jurisdiction", "type", "storage", "status", "valid from", "valid until")
    for k in listing.keys:
        r, row = k.record, k.to_dict()
        colour = "green" if k.status == "active" else "yellow"
        table.add_row(
            r.keyid[:16],
            row["role"],
            row["jurisdiction"],
            r.key.scheme,
            row["storage"],
            Text.assemble((k.status, colour), f" → {r.rotated_to[:16]}" if r.rotated_to else ""),
            row["valid_from"],
            row["valid_until"] or "-",
        )
    console.print(table)


@app.command("list")
def list_cmd(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """List every key of this home with its role, jurisdiction, storage and validity."""
    listing = list_keys(Home(resolve_home(home)).registry, now=datetime.now(UTC))
    if json:
        emit_json(listing.to_dict())
        return
    _print_keys(listing)
    console.print(f"public key files: {listing.public_dir}")


def _print_new_key(new: NewKey, json: bool) -> None:
    if json:
        emit_json(new.to_dict())
        return
    record = new.record
    console.print(
        f"{new.how} {record.role.value} key {record.keyid} ({record.key.scheme}, {record.storage}) "
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
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="add a second active key of the role (commands that sign then need --key to choose); "
            "'overt keys rotate' replaces a key instead",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Generate a key of a role: a software key (file2:) by default, or on the HSM with --hsm."""
    h = Home(resolve_home(home))
    keys = h.key_home()
    new = generate_key(
        keys,
        h.signing_service(),
        role=parse_role(role),
        keytype=type,
        on_hsm=hsm,
        jurisdiction=jurisdiction,
        valid_days=valid_days,
        force=force,
        now=datetime.now(UTC),
    )
    _print_new_key(new, json)
    if new.builder_registry is not None and not json:
        _print_registered(keys.builder_id, keys.jurisdiction, new.builder_registry)


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
    now = datetime.now(UTC)
    if (uri is None) == (public is None):
        raise UsageError("name exactly one of --uri (a signing key) or --public (a key to verify with)")
    if public is not None:
        new = import_public_key(
            h.key_home(),
            read_file(public),
            name=str(public),
            role=None if role is None else parse_role(role),
            jurisdiction=jurisdiction,
            now=now,
        )
    elif role is None:
        raise UsageError("--uri needs --role")
    else:
        assert uri is not None  # exactly one of --uri and --public
        new = import_signing_key(
            h.key_home(),
            uri=uri,
            role=parse_role(role),
            jurisdiction=jurisdiction,
            valid_days=valid_days,
            now=now,
        )
    _print_new_key(new, json)


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
        raise UsageError("name exactly one of --role or --key")
    old = choose_key(h.registry, key=key, role=None if role is None else parse_role(role), now=now)
    with log_appender(h, log_url) as append:
        done = rotate_key(
            h.key_home(),
            h.signing_service(append=append),
            old,
            reason=reason,
            on_hsm=hsm,
            valid_days=valid_days,
            now=now,
        )
    if json:
        emit_json(done.to_dict())
        return
    new = done.new.record
    console.print(f"rotated {old.role.value} key {old.keyid[:16]} → {new.keyid[:16]} ({new.storage})")
    console.print(f"rotation statement signed by the old key, {logged_at(done.receipt.index)}")


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
    with progress(json=json) as bar:
        task = bar.add_task("reading the log", total=None)
        audited = audit_record(
            client, record, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    if json:
        emit_json(audited.to_dict())
    else:
        _print_audit(audited)
    if audited.report.bad_signatures:
        raise typer.Exit(1)  # a bad signature in the log is a verification failure


def _print_audit(audited: KeyAudit) -> None:
    record, report = audited.record, audited.report
    cp = report.tree.checkpoint.checkpoint
    cosigners = ", ".join(sorted(report.tree.cosigners)) or "none"
    console.print(
        f"key {record.keyid[:16]} ({record.role.value}, {record.jurisdiction}) in {cp.origin} "
        f"at size {cp.tree_size}, checkpoint verified (cosigners: {cosigners})"
    )
    table = Table("index", "kind", "predicate type", "subject", "inclusion")
    for e in report.entries:
        colour = {REFUSED: "yellow", BAD_SIGNATURE: "red"}.get(e.kind, "green")
        subject = "; ".join(e.subjects) if e.kind != REFUSED else e.detail
        table.add_row(str(e.index), Text(e.kind, style=colour), e.predicate_type, subject, "verified")
    console.print(table)


# --- the builder registry ---------------------------------------------------------------------------------

BuilderIdArg = Annotated[
    str,
    typer.Argument(help="the exact builder.id string provenance carries, compared character for character"),
]
ReleaseKeyOpt = Annotated[
    str | None,
    typer.Option("--key", help="release key (keyid or prefix) to sign with (default: the active one)"),
]


def _issued(version: RegistryVersion) -> str:
    """Where the statement issuing ``version`` (which this command signed) is in the log."""
    assert version.log_index is not None  # set on every version a command issues
    return logged_at(version.log_index)


def _print_registered(builder_id: str, jurisdiction: str, version: RegistryVersion) -> None:
    console.print(
        f"registered builder {builder_id} in {jurisdiction}: builder registry v{version.registry.version}, "
        f"signed by the release key and {_issued(version)}"
    )


@builders_app.command("list")
def builders_list(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """List the builders this conveyor signs provenance from, as its release key signed them."""
    current = builder_registry(Home(resolve_home(home)).key_home())
    if json:
        emit_json(current.to_dict())
        return
    registry = current.registry
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
        f"{current.path}"
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
    with log_appender(h, log_url) as append:
        version = register_builder(
            h.key_home(),
            h.signing_service(append=append),
            builder_id=builder_id,
            jurisdiction=jurisdiction,
            release_key=key,
            unsafe_allow_foreign_host=unsafe_allow_foreign_host,
            now=datetime.now(UTC),
        )
    if json:
        emit_json(version.to_dict())
        return
    entry = version.entry(builder_id)
    assert entry is not None  # register_builder added it
    _print_registered(builder_id, entry.jurisdiction, version)
    if entry.unsafe_allow_foreign_host:
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
        version = withdraw_builder(
            h.key_home(),
            h.signing_service(append=append),
            builder_id=builder_id,
            release_key=key,
            now=datetime.now(UTC),
        )
    if json:
        emit_json(version.to_dict())
        return
    console.print(
        f"removed builder {builder_id}: builder registry v{version.registry.version}, signed by the release "
        f"key and {_issued(version)}"
    )
