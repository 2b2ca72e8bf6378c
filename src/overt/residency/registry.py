"""The jurisdiction registry: in which jurisdiction the data of a customer from each country is stored and
processed.

One version maps every ISO 3166-1 country (:mod:`overt.residency.countries`) to exactly one jurisdiction:
``countries`` lists some countries explicitly, and ``default`` places all the others, either ``"self"`` (each
is its own jurisdiction: BR -> BR) or one jurisdiction code for all of them. :func:`first_registry` is
version 1, the vendor's promise: the US, the EU/EEA countries, GB, JP, KR, SG and AU, and CH itself -> CH;
every other country its own jurisdiction.

Wire format: canonical JSON (:func:`overt.jsonio.dump`, parsed strictly by :func:`overt.jsonio.load_object`)
with exactly three fields::

    {"countries": {"AT": "CH", "AU": "CH", ...}, "default": "self", "version": 1}

A version is published as an in-toto Statement (predicate type ``residency-registry/v1``; subject
``residency-registry/v<N>`` with the SHA-256 of the canonical JSON; predicate: the three fields and ``time``)
in a DSSE envelope signed by the home's release key (:mod:`overt.residency.registry_store`). No field name
says "jurisdiction": the signing judge reads such a field as a claim about where a statement is signed
(:mod:`overt.keys.claims`), while this registry says where customer data lives; its values are jurisdictions
by schema, checked here.

:meth:`JurisdictionRegistry.diff` lists every country whose jurisdiction differs between two versions,
whether an explicit entry or a changed default moved it: what a migration has to move.

Owns the wire type, its statement and the diff. Does not sign, log or store (that is
:mod:`overt.residency.registry_store`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from securesystemslib.signer import Key

from overt import jsonio
from overt.attest.dsse import Envelope
from overt.attest.statement import ResourceDescriptor, Statement, check_timestamp, format_timestamp
from overt.attest.verify import verify_statement
from overt.errors import ConfigError, FormatError, VerificationError
from overt.keys.jurisdiction import RESIDENCY_REGISTRY_V1
from overt.residency.countries import COUNTRIES, EU_EEA, check_country, check_residency_jurisdiction

SELF = "self"  # the default that makes each country not listed its own jurisdiction
MAX_REGISTRY = 1 << 16  # 249 entries of 12 bytes each, with room to spare
PROMISED = EU_EEA | {"US", "GB", "JP", "KR", "SG", "AU"}  # the countries the vendor promised to serve from CH
FIRST_HOME = "CH"
_FIELDS = frozenset({"version", "countries", "default"})
_WHAT = "jurisdiction registry"


def check_default(value: str) -> str:
    """``self`` or a jurisdiction code."""
    return value if value == SELF else check_residency_jurisdiction(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    """One country whose jurisdiction differs between two versions."""

    country: str
    from_jurisdiction: str
    to_jurisdiction: str

    def to_dict(self) -> dict[str, str]:
        return {"country": self.country, "from": self.from_jurisdiction, "to": self.to_jurisdiction}


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryDiff:
    """What moved from version ``from_version`` to ``to_version``: every country, in code order."""

    from_version: int
    to_version: int
    moved: tuple[Move, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "moved": [m.to_dict() for m in self.moved],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class JurisdictionRegistry:
    """One version of the jurisdiction registry. Every country has exactly one jurisdiction in it."""

    version: int
    countries: Mapping[str, str] = field(default_factory=dict)
    default: str = SELF

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise FormatError(f"{_WHAT} version must be an integer of at least 1")
        if not isinstance(self.countries, Mapping):
            raise FormatError(f"{_WHAT}: countries must map country codes to jurisdictions")
        entries = {}
        for country, jurisdiction in sorted(self.countries.items()):
            entries[check_country(country)] = check_residency_jurisdiction(jurisdiction)
        check_default(self.default)
        object.__setattr__(self, "countries", MappingProxyType(entries))

    def jurisdiction_of(self, country: str) -> str:
        """Where the data of a customer from ``country`` lives under this version.

        Raises:
            FormatError: ``country`` is not an assigned ISO 3166-1 alpha-2 code in upper case.
        """
        found = self.countries.get(check_country(country))
        if found is not None:
            return found
        return country if self.default == SELF else self.default

    def mapping(self) -> dict[str, str]:
        """Every country -> its jurisdiction, in code order."""
        return {country: self.jurisdiction_of(country) for country in COUNTRIES}

    def explicit(self) -> dict[str, tuple[str, ...]]:
        """Each jurisdiction the explicit entries name -> its countries, in code order."""
        out: dict[str, list[str]] = {}
        for country, jurisdiction in self.countries.items():
            out.setdefault(jurisdiction, []).append(country)
        return {j: tuple(sorted(cs)) for j, cs in sorted(out.items())}

    def diff(self, newer: JurisdictionRegistry) -> RegistryDiff:
        """Every country whose jurisdiction differs in ``newer``, with both jurisdictions."""
        moved = tuple(
            Move(country=c, from_jurisdiction=old, to_jurisdiction=new)
            for c in sorted(COUNTRIES)
            if (old := self.jurisdiction_of(c)) != (new := newer.jurisdiction_of(c))
        )
        return RegistryDiff(from_version=self.version, to_version=newer.version, moved=moved)

    def with_changes(
        self, countries: Mapping[str, str], *, default: str | None = None
    ) -> JurisdictionRegistry:
        """The next version: ``countries`` set explicitly, and ``default`` if given.

        Raises:
            FormatError: a country or jurisdiction is not a code.
            ConfigError: the changes move no country (a version that changes nothing is not issued).
        """
        newer = JurisdictionRegistry(
            version=self.version + 1,
            countries={**self.countries, **countries},
            default=self.default if default is None else default,
        )
        if not self.diff(newer).moved:
            raise ConfigError(
                f"these changes move no country: each keeps the jurisdiction that {_WHAT} v{self.version} "
                "gives it, so no new version was made"
            )
        return newer

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "countries": dict(self.countries), "default": self.default}

    def to_bytes(self) -> bytes:
        return jsonio.dump(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> JurisdictionRegistry:
        if set(obj) != _FIELDS:
            raise FormatError(
                f"{_WHAT} has exactly the fields 'countries', 'default' and 'version', not "
                f"{', '.join(sorted(obj)) or 'none'}"
            )
        countries = jsonio.str_map(jsonio.req_dict(obj, "countries", _WHAT), f"{_WHAT} countries")
        return cls(version=obj["version"], countries=countries, default=jsonio.req_str(obj, "default", _WHAT))

    @classmethod
    def from_bytes(cls, data: bytes) -> JurisdictionRegistry:
        return cls.from_dict(jsonio.load_object(data, _WHAT, max_size=MAX_REGISTRY))

    def digest(self) -> str:
        """SHA-256 of the canonical JSON: the statement's subject."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def statement(self, *, now: datetime) -> Statement:
        return Statement(
            subject=(
                ResourceDescriptor(
                    name=f"residency-registry/v{self.version}", digest={"sha256": self.digest()}
                ),
            ),
            predicate_type=RESIDENCY_REGISTRY_V1,
            predicate={**self.to_dict(), "time": format_timestamp(now)},
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> JurisdictionRegistry:
        if statement.predicate_type != RESIDENCY_REGISTRY_V1:
            raise VerificationError(f"not a jurisdiction registry statement: {statement.predicate_type}")
        predicate = dict(statement.predicate)
        check_timestamp(jsonio.req_str(predicate, "time", _WHAT), f"{_WHAT} time")
        del predicate["time"]
        registry = cls.from_dict(predicate)
        if [dict(s.digest) for s in statement.subject] != [{"sha256": registry.digest()}]:
            raise VerificationError(f"the {_WHAT} statement's subject is not the registry it carries")
        return registry

    @classmethod
    def from_envelope(cls, data: bytes, keys: Sequence[Key]) -> JurisdictionRegistry:
        """The registry a DSSE envelope carries, if one of ``keys`` signed it; raises otherwise."""
        if not keys:
            raise VerificationError(f"no release key to verify the {_WHAT} with")
        return cls.from_statement(verify_statement(Envelope.from_bytes(data), keys))


def first_registry(
    *, default: str = SELF, countries: Mapping[str, str] | None = None
) -> JurisdictionRegistry:
    """Version 1, the promise: the US, the EU/EEA, GB, JP, KR, SG, AU and CH -> CH; the others by ``default``.

    ``countries`` adds or overrides explicit entries (``overt residency registry init --set``).
    """
    promised = dict.fromkeys(sorted(PROMISED | {FIRST_HOME}), FIRST_HOME)
    return JurisdictionRegistry(version=1, countries={**promised, **(countries or {})}, default=default)


def parse_assignment(text: str) -> tuple[str, str]:
    """``CC=J`` (a country and its jurisdiction) from the command line.

    Raises:
        FormatError: not ``CC=J``, or either side is not a code.
    """
    country, sep, jurisdiction = text.partition("=")
    if not sep:
        raise FormatError(f"{text[:40]!r} is not COUNTRY=JURISDICTION (such as BR=CH)")
    return check_country(country), check_residency_jurisdiction(jurisdiction)
