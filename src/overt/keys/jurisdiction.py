"""The signing policy: which statements a key may sign, judged by allow-lists, never by parsing claims.

The vendor's promise is "assembled and signed only in our signing jurisdiction". A statement cannot be trusted
to say truthfully where it was made, so nothing a statement claims can make it signable; claims can only make it
refused. A key signs a statement only if every step holds (numbered as :func:`judge` checks them):

1. the key is active (valid now, not rotated);
2. the key belongs to the conveyor's jurisdiction and has its private half here: a foreign key, or a key
   imported for verification, never signs;
3. a reserved predicate type (rotation, refusal, escrow, AV-DB audit and waiver, builder registry, TUF
   metadata, the residency registry and tenant records) comes from the one domain command that issues it (an :class:`Issuer`), never from a plain signing request;
4. the key's role signs that predicate type;
5. nothing in the statement names another jurisdiction (:mod:`overt.keys.claims`): every field whose name reads
   as ``jurisdiction`` (any case, compatibility form, look-alike letters, invisible characters) holds exactly
   the key's jurisdiction, and every string that carries a ``jurisdiction`` parameter (query, fragment,
   userinfo, path, JSON or base64 inside it; escapes decoded repeatedly) names exactly the key's jurisdiction;
6. SLSA provenance comes from a builder whose exact ``builder.id`` string the builder registry
   (:mod:`overt.keys.builders`) maps to the key's jurisdiction. Strings are compared exactly: no URL parsing.
   A registry that cannot be trusted (not the newest logged version, bad signature) is a refusal;
7. a builder registry admits no builder whose host is under another country's country-code TLD
   (``https://host.ru/b`` for CH) unless its entry says ``unsafeAllowForeignHost`` (see :func:`foreign_host`).

Pure: no I/O of its own. The builder registry arrives in :class:`SigningPolicy`, as data or as the caller's
loader, called only for provenance; :mod:`overt.keys.signing` logs the verdict.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib import parse

from overt.attest.provenance import SLSA_PROVENANCE_V1, Provenance
from overt.attest.statement import Statement
from overt.attest.vsa import VSA_V1
from overt.errors import ConfigError, FormatError, PolicyError, VerificationError
from overt.keys.claims import foreign_claims
from overt.keys.registry import KeyRecord, Role

KEY_ROTATION_V1 = "https://overt.dev/attestation/key-rotation/v1"
SIGNING_REFUSAL_V1 = "https://overt.dev/attestation/signing-refusal/v1"
SOURCE_ESCROW_V1 = "https://overt.dev/attestation/source-escrow/v1"
AVDB_AUDIT_V1 = "https://overt.dev/attestation/avdb-audit/v1"
AVDB_WAIVER_V1 = "https://overt.dev/attestation/avdb-waiver/v1"
BUILDER_REGISTRY_V1 = "https://overt.dev/attestation/builder-registry/v1"
TUF_METADATA_V1 = "https://overt.dev/attestation/tuf-metadata/v1"
RESIDENCY_REGISTRY_V1 = "https://overt.dev/attestation/residency-registry/v1"
RESIDENCY_TENANT_V1 = "https://overt.dev/attestation/residency-tenant/v1"

# Reserved predicate types and the one command that issues each. A plain signing request ('overt attest sign')
# never produces one: a rotation signed on request could introduce any key, an escrow record could vouch for a
# source nobody escrowed, a registry could admit any builder.
RESERVED: Mapping[str, str] = {
    KEY_ROTATION_V1: "'overt keys rotate'",
    SIGNING_REFUSAL_V1: "the signing service itself, unsigned",
    SOURCE_ESCROW_V1: "'overt source add'",
    AVDB_AUDIT_V1: "'overt avdb audit' and 'overt avdb build'",
    AVDB_WAIVER_V1: "'overt avdb waive'",
    BUILDER_REGISTRY_V1: "'overt keys builders add' and 'remove'",
    TUF_METADATA_V1: "'overt tuf' and 'overt release' (overt.distribute), for the metadata they sign",
    RESIDENCY_REGISTRY_V1: "'overt residency registry init' and 'set' (overt.residency.registry_store)",
    RESIDENCY_TENANT_V1: "tenant creation and migration (overt.residency.tenants)",
}

# What each role may sign. Every role may introduce its own successor (rotation). The log and witness roles
# sign checkpoints (signed notes), never statements. TUF roles sign TUF metadata through python-tuf, and each
# metadata file they sign is logged by digest in a tuf-metadata/v1 statement signed by the same key.
ROLE_PREDICATES: Mapping[Role, frozenset[str]] = {
    Role.BUILDER: frozenset({SLSA_PROVENANCE_V1, SOURCE_ESCROW_V1}),
    Role.RELEASE: frozenset(
        {SLSA_PROVENANCE_V1, BUILDER_REGISTRY_V1, TUF_METADATA_V1, RESIDENCY_REGISTRY_V1, RESIDENCY_TENANT_V1}
    ),
    Role.AUDITOR: frozenset({VSA_V1, AVDB_AUDIT_V1, AVDB_WAIVER_V1}),
    Role.ROOT: frozenset({TUF_METADATA_V1}),
    Role.TARGETS: frozenset({TUF_METADATA_V1}),
    Role.SNAPSHOT: frozenset({TUF_METADATA_V1}),
    Role.TIMESTAMP: frozenset({TUF_METADATA_V1}),
}


@dataclass(frozen=True, slots=True)
class Issuer:
    """The domain command that issues one reserved predicate type. Only that command's module holds one.

    This keeps operators off the reserved path: no command hands a caller-chosen statement to
    :meth:`overt.keys.signing.SigningService.issue`. (Python code can build an Issuer; it is a capability by
    convention, not a secret.)
    """

    predicate_type: str

    def __post_init__(self) -> None:
        if self.predicate_type not in RESERVED or self.predicate_type == SIGNING_REFUSAL_V1:
            raise ValueError(f"{self.predicate_type} is not a reserved type a command issues")


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningPolicy:
    """What the judge needs besides the key and the statement: the conveyor's jurisdiction and its builders."""

    jurisdiction: str  # the conveyor's: the only jurisdiction whose keys sign here
    # Exact builder.id -> jurisdiction, or a loader of it, called only to judge provenance. A loader raises
    # ConfigError, FormatError or VerificationError when the registry cannot be trusted.
    builders: Mapping[str, str] | Callable[[], Mapping[str, str]] = field(default_factory=dict)

    def builder_registry(self) -> Mapping[str, str]:
        return self.builders() if callable(self.builders) else self.builders


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a key refused a statement: a one-line reason and the jurisdictions the statement named."""

    reason: str
    claimed: tuple[str, ...] = ()


def allowed_predicates(role: Role) -> frozenset[str]:
    return ROLE_PREDICATES.get(role, frozenset()) | {KEY_ROTATION_V1}


# --- step 7: where a registered builder's host is ------------------------------------------------------

# The European Union's members, whose country-code TLDs count as EU (and .eu itself).
# fmt: off
EU_MEMBERS = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
# fmt: on
# Country-code TLDs whose ISO 3166-1 code is spelt otherwise.
_TLD_CODES: Mapping[str, str] = {"UK": "GB"}
# Internationalised country-code TLDs (IANA root zone), in the A-label form a printable-ASCII builder id uses.
IDN_CCTLDS: Mapping[str, str] = {
    "xn--p1ai": "RU",  # .рф
    "xn--90ais": "BY",  # .бел
    "xn--j1amh": "UA",  # .укр
    "xn--80ao21a": "KZ",  # .қаз
    "xn--90a3ac": "RS",  # .срб
    "xn--d1alf": "MK",  # .мкд
    "xn--l1acc": "MN",  # .мон
    "xn--node": "GE",  # .გე
    "xn--y9a3aq": "AM",  # .հայ
    "xn--qxam": "GR",  # .ελ
    "xn--e1a4c": "EU",  # .ею
    "xn--fiqs8s": "CN",  # .中国
    "xn--fiqz9s": "CN",  # .中國
    "xn--j6w193g": "HK",  # .香港
    "xn--kprw13d": "TW",  # .台湾
    "xn--kpry57d": "TW",  # .台灣
    "xn--3e0b707e": "KR",  # .한국
    "xn--wgbh1c": "EG",  # .مصر
    "xn--mgberp4a5d4ar": "SA",  # .السعودية
    "xn--mgbaam7a8h": "AE",  # .امارات
    "xn--mgba3a4f16a": "IR",  # .ایران
    "xn--h2brj9c": "IN",  # .भारत
    "xn--o3cw4h": "TH",  # .ไทย
}


def _hosts(builder_id: str) -> set[str]:
    """The host a URL-shaped builder id names, read the ways a client might read it (a backslash taken as a
    slash, escapes decoded); empty for ids that are not URLs with an authority."""
    hosts = set()
    for variant in {builder_id, builder_id.replace("\\", "/"), parse.unquote(builder_id)}:
        try:
            host = parse.urlsplit(variant).hostname
        except ValueError:
            continue
        if host:
            hosts.add(parse.unquote(host).rstrip(".").lower())
    return hosts


def host_country(host: str) -> str | None:
    """The ISO 3166-1 code (or EU) of ``host``'s country-code TLD; None for generic TLDs and IP addresses."""
    tld = host.rsplit(".", 1)[-1]
    if tld in IDN_CCTLDS:
        return IDN_CCTLDS[tld]
    if len(tld) == 2 and tld.isascii() and tld.isalpha() and "." in host:
        return _TLD_CODES.get(tld.upper(), tld.upper())
    return None


def _unplaced(builder_id: str) -> tuple[str, str] | None:
    """(what, why) if ``builder_id`` names no host whose country can be judged: not an ``https://`` URL with
    a DNS host name, or an IP address. Such ids are registered only with ``--unsafe-allow-foreign-host``."""
    try:
        parts = parse.urlsplit(builder_id)
        host = parts.hostname
    except ValueError:
        return builder_id[:60], "no country: not a URL"
    if parts.scheme != "https" or not host or not builder_id.startswith("https://"):
        return builder_id[:60], "no country: not an https:// URL with a host name"
    name = parse.unquote(host).rstrip(".")
    try:
        ipaddress.ip_address(name)
        return name, "no country: an IP address"
    except ValueError:
        pass
    if name.replace(".", "").isdigit() or name.lower().startswith("0x") or "." not in name:
        return name, "no country: a numeric or single-label host"
    return None


def foreign_host(builder_id: str, jurisdiction: str) -> tuple[str, str] | None:
    """(host, country) if ``builder_id``'s host is under a country-code TLD of a country other than
    ``jurisdiction`` (for EU: other than the EU and its members), else None.

    Generic TLDs (.com, .example) say nothing about where a host is, and pass.
    """
    allowed = {jurisdiction} | (EU_MEMBERS if jurisdiction == "EU" else set())
    for host in sorted(_hosts(builder_id)):
        country = host_country(host)
        if country is not None and country not in allowed:
            return host, country
    return _unplaced(builder_id)


def _check_registry(record: KeyRecord, statement: Statement) -> Refusal | None:
    entries = statement.predicate.get("builders")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            continue  # the registry's own parser refuses it; this step judges hosts only
        where = (
            entry.get("jurisdiction") if isinstance(entry.get("jurisdiction"), str) else record.jurisdiction
        )
        foreign = foreign_host(entry["id"], str(where))
        if foreign is not None and entry.get("unsafeAllowForeignHost") is not True:
            host, country = foreign
            if country.startswith("no country"):
                place = f"names {country[len('no country: ') :]} ({host}), so nothing says it is in {where}"
                claimed: tuple[str, ...] = ()
            else:
                place = (
                    f"is on host {host}, under the country-code TLD of {country}, outside the key's "
                    f"jurisdiction {record.jurisdiction}"
                )
                claimed = (country,)
            return Refusal(
                reason=(
                    f"builder {json.dumps(entry['id'])[:200]} {place}; if it really builds in {where}, register "
                    "it with 'overt keys builders add --unsafe-allow-foreign-host'"
                ),
                claimed=claimed,
            )
    return None


# --- the judge ----------------------------------------------------------------------------------------------


def _check_key(record: KeyRecord, policy: SigningPolicy, now: datetime) -> Refusal | None:
    status = record.status(now)
    if status != "active":
        return Refusal(reason=f"key {record.keyid[:16]} is {status}")
    if record.jurisdiction != policy.jurisdiction:
        return Refusal(
            reason=(
                f"key {record.keyid[:16]} belongs to {record.jurisdiction}, outside this conveyor's jurisdiction "
                f"{policy.jurisdiction}: a foreign key verifies here, it never signs"
            ),
            claimed=(record.jurisdiction,),
        )
    if not record.uri:
        return Refusal(
            reason=f"key {record.keyid[:16]} was imported for verification only: it has no private half here"
        )
    return None


def _check_type(record: KeyRecord, statement: Statement, issuer: Issuer | None) -> Refusal | None:
    ptype = statement.predicate_type
    command = RESERVED.get(ptype)
    if command is not None and (issuer is None or issuer.predicate_type != ptype):
        return Refusal(reason=f"{ptype} statements are issued only by {command}, never signed on request")
    if ptype not in allowed_predicates(record.role):
        allowed = ", ".join(sorted(allowed_predicates(record.role)))
        return Refusal(reason=f"a {record.role.value} key does not sign {ptype} (it signs: {allowed})")
    return None


def _check_builder(record: KeyRecord, statement: Statement, policy: SigningPolicy) -> Refusal | None:
    try:
        builder_id = Provenance.from_statement(statement).run_details.builder.id
    except FormatError as e:
        return Refusal(reason=f"the statement's predicate is malformed: {e}")
    try:
        registered = policy.builder_registry().get(builder_id)
    except (ConfigError, FormatError, VerificationError) as e:
        return Refusal(reason=f"the builder registry cannot be trusted, so no provenance is signed: {e}")
    shown = json.dumps(builder_id)[:200]
    if registered is None:
        return Refusal(
            reason=(
                f"builder {shown} is not in this conveyor's builder registry ('overt keys builders list'); "
                "register its exact id with 'overt keys builders add', signed by the release key (a home's "
                "first release key, 'overt keys generate --role release', registers the home's own builder)"
            )
        )
    if registered != record.jurisdiction:
        return Refusal(
            reason=(
                f"builder {shown} is registered to {registered}, outside the key's jurisdiction "
                f"{record.jurisdiction}"
            ),
            claimed=(registered,),
        )
    return None


def judge(
    record: KeyRecord,
    statement: Statement,
    policy: SigningPolicy,
    *,
    now: datetime,
    issuer: Issuer | None = None,
) -> Refusal | None:
    """None if ``record`` may sign ``statement`` at ``now`` under ``policy``; otherwise the refusal.

    ``issuer`` is the domain command issuing a reserved predicate type (step 3); plain requests pass none.
    """
    # Steps 1-4: the key, then the predicate type.
    refusal = _check_key(record, policy, now) or _check_type(record, statement, issuer)
    if refusal is not None:
        return refusal
    # Step 5: any claim of another jurisdiction, anywhere, is a refusal.
    try:
        foreign = foreign_claims(statement, record.jurisdiction)
    except FormatError as e:
        return Refusal(reason=f"the statement cannot be judged: {e}")
    if foreign:
        where, value = foreign[0]
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        return Refusal(
            reason=(
                f"statement names jurisdiction {json.dumps(value)} at {where}{more}, outside the key's "
                f"jurisdiction {record.jurisdiction}"
            ),
            claimed=tuple(dict.fromkeys(v for _, v in foreign))[:16],
        )
    # Step 6: provenance only from a builder registered to the key's jurisdiction, compared exactly.
    if statement.predicate_type == SLSA_PROVENANCE_V1:
        return _check_builder(record, statement, policy)
    # Step 7: a registry lists no builder on a host abroad, unless that was allowed by name.
    if statement.predicate_type == BUILDER_REGISTRY_V1:
        return _check_registry(record, statement)
    return None


def check(
    record: KeyRecord,
    statement: Statement,
    policy: SigningPolicy,
    *,
    now: datetime,
    issuer: Issuer | None = None,
) -> None:
    refusal = judge(record, statement, policy, now=now, issuer=issuer)
    if refusal is not None:
        raise PolicyError(refusal.reason, keyid=record.keyid, jurisdiction=record.jurisdiction)
