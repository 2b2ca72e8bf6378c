"""``overt residency registry|tenant|token ...``: the jurisdiction registry, tenants and their API tokens.

Each command parses its arguments, calls one function of :mod:`overt.residency.registry_store` or
:mod:`overt.residency.tenants`, and renders the result (``to_dict()`` for ``--json``). Mounted by
:mod:`overt.cli.residency`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from overt.cli.common import (
    HomeOpt,
    JsonOpt,
    LogUrlOpt,
    console,
    emit_json,
    log_appender,
    logged_at,
    read_file,
)
from overt.errors import UsageError
from overt.home import Home, resolve_home
from overt.keys.signing import Appender
from overt.residency.countries import COUNTRIES, country_name
from overt.residency.registry import SELF, JurisdictionRegistry, RegistryDiff, check_default, parse_assignment
from overt.residency.registry_store import RegistryIssuer, StoredVersion, registry_store
from overt.residency.tenants import Directory, Tenant, open_directory
from overt.residency.tokens import NewToken

app = typer.Typer(no_args_is_help=True)
registry_app = typer.Typer(
    help="The jurisdiction registry: which jurisdiction each country's customer data lives in, signed and logged.",
    no_args_is_help=True,
)
tenant_app = typer.Typer(
    help="Tenants: customers, each homed in the jurisdiction the registry gives its country.",
    no_args_is_help=True,
)
token_app = typer.Typer(
    help="Tenants' API tokens for the ingestion API: create, revoke, rotate.", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")
app.add_typer(tenant_app, name="tenant")
app.add_typer(token_app, name="token")

AssignOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="COUNTRY=JURISDICTION, an explicit entry (repeatable), e.g. --set BR=CH"),
]
DefaultOpt = Annotated[
    str | None,
    typer.Option(
        help="where countries without an entry go: 'self' (each is its own jurisdiction) or a jurisdiction"
    ),
]
ReleaseKeyOpt = Annotated[
    str | None,
    typer.Option("--key", help="release key (keyid or prefix) to sign with (default: the active one)"),
]
TenantArg = Annotated[str, typer.Argument(help="tenant id (t-...) or name")]


def _assignments(values: list[str] | None) -> dict[str, str]:
    """COUNTRY=JURISDICTION entries; a country given twice is refused, even with the same jurisdiction,
    since what is signed and logged stays in the log for good."""
    out: dict[str, str] = {}
    for country, j in (parse_assignment(v) for v in values or []):
        if country in out:
            raise UsageError(
                f"{country} is assigned twice ({out[country]}, {j}): give each country once, so that what is "
                "signed and logged is what you meant; nothing was signed"
            )
        out[country] = j
    return out


def _issuer(h: Home, append: Appender | None, key: str | None) -> RegistryIssuer:
    return RegistryIssuer.of_home(h, service=h.signing_service(append=append), release_key=key)


def _countries(codes: tuple[str, ...] | list[str]) -> str:
    return ", ".join(codes)


def _placement(registry: JurisdictionRegistry) -> list[str]:
    """One sentence per jurisdiction the explicit entries name, and one for every other country."""
    lines = [
        f"{j}: {len(cs)} {'country' if len(cs) == 1 else 'countries'} ({_countries(cs)})"
        for j, cs in registry.explicit().items()
    ]
    others = len(COUNTRIES) - len(registry.countries)
    where = "its own jurisdiction" if registry.default == SELF else registry.default
    lines.append(f"every other country ({others} of {len(COUNTRIES)}): {where}")
    return lines


def _print_issued(issued: StoredVersion, what: str) -> None:
    console.print(
        f"{what} jurisdiction registry v{issued.registry.version}, signed by the release key and "
        f"{logged_at(issued.log_index)}: {issued.path}"
    )


def _print_diff(diff: RegistryDiff) -> None:
    n = len(diff.moved)
    if not n:
        console.print(f"from v{diff.from_version} to v{diff.to_version}, no country moved")
        return
    console.print(
        f"from v{diff.from_version} to v{diff.to_version}, {n} {'country' if n == 1 else 'countries'} moved:"
    )
    table = Table("country", "name", "from", "to")
    for m in diff.moved:
        table.add_row(m.country, country_name(m.country), m.from_jurisdiction, m.to_jurisdiction)
    console.print(table)


# --- the registry -------------------------------------------------------------------------------------------


@registry_app.command("init")
def registry_init(
    default: DefaultOpt = SELF,
    assign: AssignOpt = None,
    key: ReleaseKeyOpt = None,
    log_url: LogUrlOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Issue version 1: the US, the EU/EEA, GB, JP, KR, SG, AU and CH -> CH; every other country by --default."""
    h = Home(resolve_home(home))
    countries = _assignments(assign)
    with log_appender(h, log_url) as append:
        issued = _issuer(h, append, key).init(default=check_default(default or SELF), countries=countries)
    if json:
        emit_json(issued.to_dict())
        return
    _print_issued(issued, "issued")
    for line in _placement(issued.registry):
        console.print(f"  {line}")


@registry_app.command("set")
def registry_set(
    assignments: Annotated[
        list[str] | None, typer.Argument(help="COUNTRY=JURISDICTION entries, e.g. BR=CH IN=CH")
    ] = None,
    default: DefaultOpt = None,
    key: ReleaseKeyOpt = None,
    log_url: LogUrlOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Issue the next version with these entries (and --default): signed by the release key and logged."""
    h = Home(resolve_home(home))
    countries = _assignments(assignments)
    chosen = None if default is None else check_default(default)
    with log_appender(h, log_url) as append:
        issued, diff = _issuer(h, append, key).change(countries, default=chosen)
    if json:
        emit_json({**issued.to_dict(), "diff": diff.to_dict()})
        return
    _print_issued(issued, "issued")
    _print_diff(diff)
    console.print(
        "tenants from the countries that moved keep their home jurisdiction until they are migrated"
    )


@registry_app.command("show")
def registry_show(
    version: Annotated[
        int | None, typer.Option(min=1, help="this version (default: the current one)")
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show a version, its signature verified and its file checked against the log."""
    stored = registry_store(Home(resolve_home(home))).stored(version)
    if json:
        emit_json({**stored.to_dict(), "jurisdictions": stored.registry.mapping()})
        return
    which = " (the current version)" if version is None else ""
    console.print(
        f"jurisdiction registry v{stored.registry.version}{which}, signature verified, the file identical "
        f"to log entry {stored.log_index}: {stored.path}"
    )
    for line in _placement(stored.registry):
        console.print(f"  {line}")


@registry_app.command("diff")
def registry_diff(
    from_version: Annotated[int | None, typer.Argument(min=1, help="older version (default: TO - 1)")] = None,
    to_version: Annotated[int | None, typer.Argument(min=1, help="newer version (default: current)")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """List every country whose jurisdiction differs between two versions (default: the last change)."""
    diff = registry_store(Home(resolve_home(home))).diff(from_version, to_version)
    if json:
        emit_json(diff.to_dict())
        return
    _print_diff(diff)


# --- tenants ------------------------------------------------------------------------------------------------


def _directory(home: Path | None) -> Directory:
    return open_directory(Home(resolve_home(home)))


def _tenant_line(t: Tenant) -> str:
    return (
        f"tenant {t.id} ({t.name}) from {t.country}, homed in {t.jurisdiction} by jurisdiction registry "
        f"v{t.registry_version}, {t.status}"
    )


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="the tenant's name, unique in this home")],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 code of the tenant's country, e.g. DE")],
    admin_key: Annotated[
        Path,
        typer.Option(help="the tenant admin's Ed25519 public key (PEM); the admin keeps the private key"),
    ],
    log_url: LogUrlOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a tenant, homed where the current registry places its country; the creation is logged."""
    h = Home(resolve_home(home))
    pem = read_file(admin_key, limit=1 << 16)
    with log_appender(h, log_url) as append:
        created = open_directory(h, service=h.signing_service(append=append)).create_tenant(
            name, country, pem
        )
    if json:
        emit_json(created.to_dict())
        return
    t = created.tenant
    console.print(f"created {_tenant_line(t)}")
    console.print(
        f"its creation (country, home, registry version, admin key {t.admin_keyid[:16]}) is signed by the "
        f"release key and {logged_at(t.log_index)}"
    )


@tenant_app.command("list")
def tenant_list(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """List the tenants with their country, home jurisdiction and status."""
    directory = _directory(home)
    tenants = directory.tenants()
    if json:
        emit_json({"tenants": [t.to_dict() for t in tenants]})
        return
    if not tenants:
        console.print("no tenants yet: 'overt residency tenant create' makes one")
        return
    table = Table("id", "name", "country", "home", "registry", "status")
    for t in tenants:
        table.add_row(t.id, t.name, t.country, t.jurisdiction, f"v{t.registry_version}", t.status)
    console.print(table)


@tenant_app.command("show")
def tenant_show(
    tenant: TenantArg,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show a tenant and its API tokens (never their secrets)."""
    directory = _directory(home)
    t = directory.find(tenant)
    tokens = directory.tokens(t.id)
    if json:
        emit_json({**t.to_dict(), "tokens": [k.to_dict() for k in tokens]})
        return
    console.print(_tenant_line(t))
    console.print(f"created {t.created}, log index {t.log_index}; admin keyid {t.admin_keyid}")
    if not tokens:
        console.print("no API tokens: 'overt residency token create' makes one")
        return
    table = Table("token id", "created", "revoked")
    for k in tokens:
        table.add_row(k.token_id, k.created, k.revoked or "-")
    console.print(table)


# --- tokens -------------------------------------------------------------------------------------------------


def _print_new_token(new: NewToken, t: Tenant) -> None:
    console.print(f"API token {new.info.token_id} for tenant {t.id} ({t.name}):")
    console.print(new.token)
    console.print("it is shown only now: this home keeps only its argon2id hash")


@token_app.command("create")
def token_create(
    tenant: TenantArg,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Make an API token for a tenant. The token is printed once and never stored."""
    directory = _directory(home)
    t = directory.find(tenant)
    new = directory.create_token(t.id)
    if json:
        emit_json(new.to_dict())
        return
    _print_new_token(new, t)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="the token id: the 16 hex digits after ovt_")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Revoke an API token at once, for every process that checks it."""
    directory = _directory(home)
    done = directory.revoke_token(token_id)
    if json:
        emit_json(done.to_dict())
        return
    info = done.info
    if done.already:
        console.print(
            f"API token {info.token_id} of tenant {info.tenant} was revoked already, at {info.revoked}"
        )
    else:
        console.print(f"revoked API token {info.token_id} of tenant {info.tenant}: it authenticates no more")


@token_app.command("rotate")
def token_rotate(
    tenant: TenantArg,
    grace_seconds: Annotated[
        int, typer.Option(min=0, help="the old tokens keep working this many seconds more")
    ] = 0,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Make a new API token for a tenant and revoke its others (after --grace-seconds)."""
    directory = _directory(home)
    t = directory.find(tenant)
    rotation = directory.rotate_tokens(t.id, grace=timedelta(seconds=grace_seconds))
    if json:
        emit_json(rotation.to_dict())
        return
    _print_new_token(rotation.new, t)
    if not rotation.revoked:
        console.print("it had no other token to revoke")
        return
    ids = ", ".join(k.token_id for k in rotation.revoked)
    n = len(rotation.revoked)
    when = "now" if not grace_seconds else f"at {rotation.revoked[0].revoked}"
    console.print(f"{n} older {'token stops' if n == 1 else 'tokens stop'} authenticating {when}: {ids}")
