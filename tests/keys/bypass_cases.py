"""Hostile signing requests for a CH conveyor: each names another jurisdiction, or reaches for a path it must
not, and each must be refused (and the refusal logged). Data for tests/keys/test_jurisdiction_bypass.py.

Every case starts from a statement a CH key may sign (provenance from the conveyor's own registered builder id,
or a VSA) and breaks it in one way. ``reason`` is a fragment of the refusal the judge must give. The module
uses only the statement formats, so the same cases can be replayed against older signing code.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.attest.statement import Statement
from tests.samples import digest_of, provenance_statement, vsa_statement

# The conveyor's own builder id (overt.home.DEFAULT_BUILDER_ID in CH), which its builder registry lists.
OWN_BUILDER = "https://overt.example/conveyor/v1?jurisdiction=CH"
CLAIM = "names jurisdiction"
UNREGISTERED = "is not in this conveyor's builder registry"
RESERVED = "never signed on request"
FOREIGN_KEY = "outside this conveyor's jurisdiction CH"

ROTATION_V1 = "https://overt.dev/attestation/key-rotation/v1"
REFUSAL_V1 = "https://overt.dev/attestation/signing-refusal/v1"
ESCROW_V1 = "https://overt.dev/attestation/source-escrow/v1"
AUDIT_V1 = "https://overt.dev/attestation/avdb-audit/v1"
WAIVER_V1 = "https://overt.dev/attestation/avdb-waiver/v1"
REGISTRY_V1 = "https://overt.dev/attestation/builder-registry/v1"

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    id: str
    desc: str
    role: str  # the role of the CH key asked to sign ("builder", "auditor", "release")
    build: Callable[[str], Statement]  # the signing key's keyid -> the hostile statement
    reason: str
    key_jurisdiction: str = "CH"  # a key planted in the home's registry in this jurisdiction
    builders: dict[str, str] | None = field(default=None)  # the builder registry, if not the home's own


def own_provenance() -> Doc:
    doc = provenance_statement("CH").to_dict()
    doc["predicate"]["runDetails"]["builder"]["id"] = OWN_BUILDER
    doc["predicate"]["buildDefinition"]["internalParameters"] = {"jurisdiction": "CH"}
    return doc


def provenance(mutate: Callable[[Doc], None]) -> Callable[[str], Statement]:
    def build(_: str) -> Statement:
        doc = own_provenance()
        mutate(doc)
        return Statement.from_dict(doc)

    return build


def builder_id(value: str) -> Callable[[str], Statement]:
    return provenance(lambda d: d["predicate"]["runDetails"]["builder"].__setitem__("id", value))


def external(key: str, value: Any) -> Callable[[str], Statement]:
    return provenance(
        lambda d: d["predicate"]["buildDefinition"]["externalParameters"].__setitem__(key, value)
    )


def internal(key: str, value: Any) -> Callable[[str], Statement]:
    return provenance(
        lambda d: d["predicate"]["buildDefinition"]["internalParameters"].__setitem__(key, value)
    )


def dependency(**fields: Any) -> Callable[[str], Statement]:
    return provenance(
        lambda d: d["predicate"]["buildDefinition"]["resolvedDependencies"][0].update(copy.deepcopy(fields))
    )


def vsa(mutate: Callable[[Doc], None]) -> Callable[[str], Statement]:
    def build(_: str) -> Statement:
        doc = vsa_statement().to_dict()
        mutate(doc)
        return Statement.from_dict(doc)

    return build


def deep(d: Doc) -> None:
    d["predicate"]["buildDefinition"]["externalParameters"]["a"] = {
        "b": [0, 1, 2, {"c": {"jurisdiction": "RU"}}]
    }


def reserved(predicate_type: str, predicate: Callable[[str], Doc]) -> Callable[[str], Statement]:
    def build(keyid: str) -> Statement:
        return Statement.from_dict(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "x", "digest": digest_of(predicate_type.encode())}],
                "predicateType": predicate_type,
                "predicate": predicate(keyid),
            }
        )

    return build


def outside_key(jurisdiction: str) -> Doc:
    """A key object made outside the home (a fixed public test key), labelled with ``jurisdiction``."""
    seed = hashlib.sha256(b"overt test key ed25519 outside").digest()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw().hex()
    return {
        "keytype": "ed25519",
        "scheme": "ed25519",
        "keyval": {"public": public},
        "role": "builder",
        "jurisdiction": jurisdiction,
        "valid_from": "2026-11-28T00:00:00Z",
    }


def rotation(new_key_jurisdiction: str) -> Callable[[str], Doc]:
    def predicate(keyid: str) -> Doc:
        return {
            "role": "builder",
            "jurisdiction": "CH",
            "oldKeyid": keyid,
            "newKey": outside_key(new_key_jurisdiction),
            "reason": "routine",
            "time": "2026-11-28T12:00:00Z",
        }

    return predicate


def fixed(predicate: Doc) -> Callable[[str], Doc]:
    return lambda _: predicate


def content(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _set(path: tuple[str, ...], value: Any) -> Callable[[Doc], None]:
    def mutate(d: Doc) -> None:
        node = d
        for p in path[:-1]:
            node = node[p] if not isinstance(node, list) else node[int(p)]
        node[path[-1]] = value

    return mutate


P = ("predicate",)
RD = (*P, "runDetails")
BD = (*P, "buildDefinition")

CASES: list[Case] = [
    # --- a field named jurisdiction, anywhere, in any spelling ---------------------------------------------
    Case(
        id="predicate-jurisdiction-RU",
        desc="SLSA provenance with predicate.jurisdiction RU",
        role="builder",
        build=provenance(_set((*P, "jurisdiction"), "RU")),
        reason=CLAIM,
    ),
    Case(
        id="external-parameter-jurisdiction",
        desc="externalParameters.jurisdiction RU",
        role="builder",
        build=external("jurisdiction", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="nested-deep",
        desc="a jurisdiction field five levels down in externalParameters",
        role="builder",
        build=provenance(deep),
        reason=CLAIM,
    ),
    Case(
        id="capitalised-key",
        desc="internalParameters.Jurisdiction RU next to jurisdiction CH",
        role="builder",
        build=internal("Jurisdiction", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="builder-version-JURISDICTION",
        desc="runDetails.builder.version.JURISDICTION RU",
        role="builder",
        build=provenance(_set((*RD, "builder", "version"), {"overt": "0.1", "JURISDICTION": "RU"})),
        reason=CLAIM,
    ),
    Case(
        id="compound-key",
        desc="a field signingJurisdiction RU",
        role="builder",
        build=internal("signingJurisdiction", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="fullwidth-key",
        desc="a field named in fullwidth letters (NFKC-equal to jurisdiction)",
        role="builder",
        build=external("\uff4a\uff55\uff52\uff49\uff53\uff44\uff49\uff43\uff54\uff49\uff4f\uff4e", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="zero-width-key",
        desc="a field juris<zero width space>diction RU",
        role="builder",
        build=external("juris\u200bdiction", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="underscored-key",
        desc="a field juris_diction RU",
        role="builder",
        build=external("juris_diction", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="object-value",
        desc="a jurisdiction field holding an object that says RU",
        role="builder",
        build=external("jurisdiction", {"code": "RU"}),
        reason=CLAIM,
    ),
    Case(
        id="list-value",
        desc="a jurisdiction field holding the list [CH, RU]",
        role="builder",
        build=external("jurisdiction", ["CH", "RU"]),
        reason=CLAIM,
    ),
    # --- URL tricks in the builder id ----------------------------------------------------------------------
    Case(
        id="query-case-duplicate",
        desc="builder.id ?Jurisdiction=RU&jurisdiction=CH",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?Jurisdiction=RU&jurisdiction=CH"),
        reason=CLAIM,
    ),
    Case(
        id="query-encoded-separator",
        desc="builder.id ?jurisdiction%3DRU&jurisdiction=CH",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?jurisdiction%3DRU&jurisdiction=CH"),
        reason=CLAIM,
    ),
    Case(
        id="query-double-encoded",
        desc="builder.id ?jurisdiction%253DRU&jurisdiction=CH (encoded twice)",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?jurisdiction%253DRU&jurisdiction=CH"),
        reason=CLAIM,
    ),
    Case(
        id="fragment",
        desc="builder.id ?jurisdiction=CH#jurisdiction=RU",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?jurisdiction=CH#jurisdiction=RU"),
        reason=CLAIM,
    ),
    Case(
        id="userinfo-claim",
        desc="builder.id https://jurisdiction=RU@overt.example/...?jurisdiction=CH",
        role="builder",
        build=builder_id("https://jurisdiction=RU@overt.example/conveyor/v1?jurisdiction=CH"),
        reason=CLAIM,
    ),
    Case(
        id="userinfo-host-swap",
        desc="the registered id, escaped, as userinfo in front of a host in RU",
        role="builder",
        build=builder_id(
            "https://overt.example%2Fconveyor%2Fv1%3Fjurisdiction%3DCH@builder.ru.example/conveyor/v1?jurisdiction=CH"
        ),
        reason=UNREGISTERED,
    ),
    Case(
        id="path-claim",
        desc="builder.id with /jurisdiction/RU/ in its path",
        role="builder",
        build=builder_id("https://overt.example/jurisdiction/RU/conveyor?jurisdiction=CH"),
        reason=CLAIM,
    ),
    Case(
        id="array-parameter",
        desc="builder.id ?jurisdiction[]=RU&jurisdiction=CH",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?jurisdiction[]=RU&jurisdiction=CH"),
        reason=CLAIM,
    ),
    Case(
        id="suffixed-parameter",
        desc="builder.id ?jurisdiction=CH&jurisdiction_override=RU",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?jurisdiction=CH&jurisdiction_override=RU"),
        reason=CLAIM,
    ),
    Case(
        id="not-a-url-urn",
        desc="builder.id that is not a URL: urn:overt:builder:ru?jurisdiction=CH",
        role="builder",
        build=builder_id("urn:overt:builder:ru?jurisdiction=CH"),
        reason=UNREGISTERED,
    ),
    Case(
        id="not-a-url-relative",
        desc="builder.id that is not a URL: ru-builder?jurisdiction=CH",
        role="builder",
        build=builder_id("ru-builder?jurisdiction=CH"),
        reason=UNREGISTERED,
    ),
    Case(
        id="host-outside",
        desc="a builder host in RU claiming CH",
        role="builder",
        build=builder_id("https://builder.ru.example/conveyor/v1?jurisdiction=CH"),
        reason=UNREGISTERED,
    ),
    Case(
        id="host-case-variant",
        desc="the registered id with the host in capitals (URL-equal, not string-equal)",
        role="builder",
        build=builder_id("https://OVERT.EXAMPLE/conveyor/v1?jurisdiction=CH"),
        reason=UNREGISTERED,
    ),
    Case(
        id="trailing-slash-variant",
        desc="the registered id with a trailing slash on its path",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1/?jurisdiction=CH"),
        reason=UNREGISTERED,
    ),
    Case(
        id="repeated-parameter-variant",
        desc="the registered id with its query parameter repeated",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?jurisdiction=CH&jurisdiction=CH"),
        reason=UNREGISTERED,
    ),
    Case(
        id="percent-encoded-value-variant",
        desc="the registered id with CH percent-encoded (%43H): undecoded, it names no CH",
        role="builder",
        build=builder_id("https://overt.example/conveyor/v1?jurisdiction=%43H"),
        reason=CLAIM,
    ),
    # --- claims elsewhere in the statement ----------------------------------------------------------------
    Case(
        id="dependency-uri",
        desc="a resolved dependency fetched from ...?jurisdiction=RU",
        role="builder",
        build=dependency(uri="https://mirror.example/flit.whl?jurisdiction=RU"),
        reason=CLAIM,
    ),
    Case(
        id="dependency-annotation",
        desc="a resolved dependency annotated jurisdiction RU",
        role="builder",
        build=dependency(annotations={"jurisdiction": "RU"}),
        reason=CLAIM,
    ),
    Case(
        id="dependency-content-base64",
        desc="a resolved dependency whose base64 content reads jurisdiction=RU",
        role="builder",
        build=dependency(content=content("built at jurisdiction=RU")),
        reason=CLAIM,
    ),
    Case(
        id="byproduct-name",
        desc="a byproduct named build.log#jurisdiction=RU",
        role="builder",
        build=provenance(
            _set((*RD, "byproducts"), [{"name": "build.log#jurisdiction=RU", "digest": digest_of(b"log")}])
        ),
        reason=CLAIM,
    ),
    Case(
        id="subject-name",
        desc="a subject named app.tar.gz?jurisdiction=RU",
        role="builder",
        build=provenance(_set(("subject", "0", "name"), "app.tar.gz?jurisdiction=RU")),
        reason=CLAIM,
    ),
    Case(
        id="subject-annotation",
        desc="a subject annotated jurisdiction RU",
        role="builder",
        build=provenance(_set(("subject", "0", "annotations"), {"jurisdiction": "RU"})),
        reason=CLAIM,
    ),
    Case(
        id="invocation-id-url",
        desc="metadata.invocationId https://ci.example/run/1?jurisdiction=RU",
        role="builder",
        build=provenance(_set((*RD, "metadata", "invocationId"), "https://ci.example/run/1?jurisdiction=RU")),
        reason=CLAIM,
    ),
    Case(
        id="html-entity",
        desc="an external parameter jurisdiction&#61;RU",
        role="builder",
        build=external("mirror", "https://mirror.example/?jurisdiction&#61;RU"),
        reason=CLAIM,
    ),
    Case(
        id="colon-separator",
        desc="an external parameter 'jurisdiction: RU'",
        role="builder",
        build=external("note", "jurisdiction: RU"),
        reason=CLAIM,
    ),
    Case(
        id="claim-in-a-field-name",
        desc="a field named x?jurisdiction=RU",
        role="builder",
        build=external("x?jurisdiction=RU", "1"),
        reason=CLAIM,
    ),
    Case(
        id="build-type-url",
        desc="buildDefinition.buildType https://overt.dev/build/v1?jurisdiction=RU",
        role="builder",
        build=provenance(_set((*BD, "buildType"), "https://overt.dev/build/v1?jurisdiction=RU")),
        reason=CLAIM,
    ),
    # --- the builder registry decides, not the claim ------------------------------------------------------
    Case(
        id="builder-registered-elsewhere",
        desc="a builder the registry maps to RU, with a CH claim in internalParameters",
        role="builder",
        build=builder_id("https://builder.ru.example/conveyor/v1"),
        builders={"https://builder.ru.example/conveyor/v1": "RU", OWN_BUILDER: "CH"},
        reason="is registered to RU",
    ),
    Case(
        id="empty-registry",
        desc="the conveyor's own builder id while the builder registry is empty",
        role="builder",
        build=provenance(lambda d: None),
        builders={},
        reason=UNREGISTERED,
    ),
    # --- VSAs ----------------------------------------------------------------------------------------------
    Case(
        id="vsa-verifier-id",
        desc="a VSA whose verifier.id has ?jurisdiction=RU",
        role="auditor",
        build=vsa(_set((*P, "verifier", "id"), "https://rebuilder.example/v1?jurisdiction=RU")),
        reason=CLAIM,
    ),
    Case(
        id="vsa-resource-uri",
        desc="a VSA whose resourceUri has ?jurisdiction=RU",
        role="auditor",
        build=vsa(_set((*P, "resourceUri"), "pkg:pypi/tomli@2.0.1?jurisdiction=RU")),
        reason=CLAIM,
    ),
    Case(
        id="vsa-policy-fragment",
        desc="a VSA whose policy uri ends #jurisdiction=RU",
        role="auditor",
        build=vsa(_set((*P, "policy", "uri"), "https://overt.example/policy#jurisdiction=RU")),
        reason=CLAIM,
    ),
    Case(
        id="vsa-capitalised-field",
        desc="a VSA with a top-level Jurisdiction RU",
        role="auditor",
        build=vsa(_set((*P, "Jurisdiction"), "RU")),
        reason=CLAIM,
    ),
    Case(
        id="vsa-verifier-version",
        desc="a VSA whose verifier.version says jurisdiction RU",
        role="auditor",
        build=vsa(_set((*P, "verifier", "version"), {"overt": "0.1", "jurisdiction": "RU"})),
        reason=CLAIM,
    ),
    # --- look-alike letters, invisible characters, text inside text -------------------------------------
    Case(
        id="lookalike-key-cyrillic-o",
        desc="predicate.jurisdicti\u043en RU (Cyrillic o)",
        role="builder",
        build=provenance(_set((*P, "jurisdicti\u043en"), "RU")),
        reason=CLAIM,
    ),
    Case(
        id="lookalike-key-combining-mark",
        desc="predicate.juris\u0323diction RU (s and a combining dot below)",
        role="builder",
        build=provenance(_set((*P, "juri\u0073\u0323diction"), "RU")),
        reason=CLAIM,
    ),
    Case(
        id="lookalike-in-url-query",
        desc="externalParameters.repo https://git.example/r?jurisdicti\u043en=RU (Cyrillic o)",
        role="builder",
        build=external("repo", "https://git.example/r?jurisdicti\u043en=RU"),
        reason=CLAIM,
    ),
    Case(
        id="json-object-in-a-string",
        desc='externalParameters.note {"jurisdiction":"RU"}, JSON inside a string',
        role="builder",
        build=external("note", '{"jurisdiction":"RU"}'),
        reason=CLAIM,
    ),
    Case(
        id="vsa-lookalike-key",
        desc="a VSA with jurisdicti\u043en RU (Cyrillic o)",
        role="auditor",
        build=vsa(_set((*P, "jurisdicti\u043en"), "RU")),
        reason=CLAIM,
    ),
    Case(
        id="lookalike-key-greek",
        desc="a field jur\u03b9sd\u03b9ct\u03b9\u03bfn (Greek iota and omicron)",
        role="builder",
        build=external("jur\u03b9sd\u03b9ct\u03b9\u03bfn", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="lookalike-key-greek-capital-iota",
        desc="a field JUR\u0399SD\u0399CT\u0399ON (Greek capital iota, drawn like I)",
        role="builder",
        build=external("JUR\u0399SD\u0399CT\u0399ON", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="lookalike-key-all-cyrillic",
        desc="a field spelt with every Cyrillic look-alike there is (\u0458ur\u0456\u0455d\u0456\u0441t\u0456\u043en)",
        role="builder",
        build=external("\u0458ur\u0456\u0455d\u0456\u0441t\u0456\u043en", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="hangul-filler-key",
        desc="a field juris<Hangul filler>diction: an invisible character that is a letter",
        role="builder",
        build=external("juris\u3164diction", "RU"),
        reason=CLAIM,
    ),
    Case(
        id="lookalike-in-url-cyrillic-s",
        desc="a URL ?juri\u0455diction=RU (Cyrillic dze)",
        role="builder",
        build=external("repo", "https://git.example/r?juri\u0455diction=RU"),
        reason=CLAIM,
    ),
    Case(
        id="lookalike-percent-encoded",
        desc="a URL ?jurisdicti%D0%BEn=RU (Cyrillic o, percent-encoded)",
        role="builder",
        build=external("repo", "https://git.example/r?jurisdicti%D0%BEn=RU"),
        reason=CLAIM,
    ),
    Case(
        id="separator-inside-the-word-in-a-url",
        desc="a URL ?juris-diction=RU",
        role="builder",
        build=external("repo", "https://git.example/r?juris-diction=RU"),
        reason=CLAIM,
    ),
    Case(
        id="json-array-in-a-string",
        desc='a string [{"jurisdiction":"RU"}]',
        role="builder",
        build=external("notes", '[{"jurisdiction":"RU"}]'),
        reason=CLAIM,
    ),
    Case(
        id="json-in-a-string-duplicate-keys",
        desc='a string {"jurisdiction":"RU","jurisdiction":"CH"}: a parser keeping the first reads RU',
        role="builder",
        build=external("note", '{"jurisdiction":"RU","jurisdiction":"CH"}'),
        reason=CLAIM,
    ),
    Case(
        id="json-in-a-string-escaped-key",
        desc='a string {"juris\\u0064iction":"RU"}: the key is jurisdiction once the JSON is parsed',
        role="builder",
        build=external("note", '{"juris\\u0064iction":"RU"}'),
        reason=CLAIM,
    ),
    Case(
        id="json-in-a-string-percent-encoded",
        desc="a percent-encoded JSON object naming RU",
        role="builder",
        build=external("note", quote('{"jurisdiction":"RU"}')),
        reason=CLAIM,
    ),
    Case(
        id="json-in-json-in-a-string",
        desc="JSON in a string of JSON in a string",
        role="builder",
        build=external("note", json.dumps({"inner": json.dumps({"jurisdiction": "RU"})})),
        reason=CLAIM,
    ),
    Case(
        id="quoted-claim-in-text",
        desc='free text with "jurisdiction": "RU" in it, not valid JSON',
        role="builder",
        build=external("note", 'build notes: "jurisdiction": "RU" (moved)'),
        reason=CLAIM,
    ),
    Case(
        id="single-quoted-claim",
        desc="a Python-style dict {'jurisdiction': 'RU'} in a string",
        role="builder",
        build=external("note", "{'jurisdiction': 'RU'}"),
        reason=CLAIM,
    ),
    Case(
        id="base64-in-any-field",
        desc="an external parameter holding base64 of jurisdiction=RU (not a content field)",
        role="builder",
        build=external("blob", content("jurisdiction=RU")),
        reason=CLAIM,
    ),
    Case(
        id="vsa-json-in-verifier-version",
        desc="a VSA whose verifier.version.notes is JSON naming RU",
        role="auditor",
        build=vsa(_set((*P, "verifier", "version"), {"overt": "0.1", "notes": '{"jurisdiction":"RU"}'})),
        reason=CLAIM,
    ),
    # --- reserved predicate types through a plain signing request -----------------------------------------
    Case(
        id="rotation-outside-key",
        desc="a key-rotation statement introducing an outside (RU) key, made with plain signing",
        role="builder",
        build=reserved(ROTATION_V1, rotation("RU")),
        reason=RESERVED,
    ),
    Case(
        id="rotation-outside-key-labelled-CH",
        desc="a key-rotation statement introducing a key made outside the home but labelled CH",
        role="builder",
        build=reserved(ROTATION_V1, rotation("CH")),
        reason=RESERVED,
    ),
    Case(
        id="escrow-record",
        desc="a source-escrow record for a source nobody escrowed",
        role="builder",
        build=reserved(ESCROW_V1, fixed({"kind": "source", "name": "x", "jurisdiction": "CH"})),
        reason=RESERVED,
    ),
    Case(
        id="avdb-audit",
        desc="an AV-DB audit report written by hand",
        role="auditor",
        build=reserved(AUDIT_V1, fixed({"database": "main", "jurisdiction": "CH", "findings": []})),
        reason=RESERVED,
    ),
    Case(
        id="avdb-waiver",
        desc="an AV-DB waiver written by hand",
        role="auditor",
        build=reserved(WAIVER_V1, fixed({"database": "main", "findingId": "x", "jurisdiction": "CH"})),
        reason=RESERVED,
    ),
    Case(
        id="signing-refusal",
        desc="a signed signing-refusal statement",
        role="builder",
        build=reserved(REFUSAL_V1, fixed({"keyid": "0" * 64, "reason": "none"})),
        reason=RESERVED,
    ),
    Case(
        id="builder-registry",
        desc="a builder registry admitting an RU builder, made with plain signing",
        role="release",
        build=reserved(
            REGISTRY_V1,
            fixed({"version": 9, "builders": [{"id": "https://builder.ru.example/b", "jurisdiction": "CH"}]}),
        ),
        reason=RESERVED,
    ),
    # --- keys outside the conveyor's jurisdiction ---------------------------------------------------------
    Case(
        id="ru-key-ru-provenance",
        desc="a CH home holding an RU key signs RU provenance",
        role="builder",
        build=provenance(
            lambda d: (
                d["predicate"]["runDetails"]["builder"].__setitem__(
                    "id", "https://overt.example/conveyor/v1?jurisdiction=RU"
                ),
                d["predicate"]["buildDefinition"]["internalParameters"].__setitem__("jurisdiction", "RU"),
            )
        ),
        key_jurisdiction="RU",
        reason=FOREIGN_KEY,
    ),
    Case(
        id="ru-key-ch-provenance",
        desc="a CH home holding an RU key signs CH provenance",
        role="builder",
        build=provenance(lambda d: None),
        key_jurisdiction="RU",
        reason=FOREIGN_KEY,
    ),
    Case(
        id="ru-auditor-key-vsa",
        desc="a CH home holding an RU auditor key signs a VSA",
        role="auditor",
        build=vsa(_set((*P, "jurisdiction"), "RU")),
        key_jurisdiction="RU",
        reason=FOREIGN_KEY,
    ),
]
