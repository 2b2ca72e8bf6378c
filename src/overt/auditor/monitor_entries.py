"""What the monitor reads of one log entry: its kind and the few facts a monitor decision needs.

:func:`read_bundle` reads one entry bundle of a verified tree (through :class:`~overt.tlog.client.LogClient`),
hashes every entry into its RFC 6962 leaf hash (the caller folds those into the tree and checks the root, so
a tile server serving other entries than the tree commits to is caught) and returns one :class:`Facts` per
entry. It runs in the monitor's process or in worker processes (:mod:`overt.auditor.monitor_read`); it does
no I/O beyond fetching that bundle and judges nothing: :mod:`overt.auditor.monitor` does, in log order.

Parsing is overt's own, strict (:class:`~overt.attest.dsse.Envelope`, :class:`~overt.attest.statement.Statement`):
an entry that is not a DSSE envelope of an in-toto statement is of kind ``other`` and counts for nothing.

Signatures are checked here only where the caller says a decision will rest on the entry (:class:`Needs`): a
VSA about a released artifact by a trusted auditor key, a ``tuf-metadata/v1`` statement about a served
metadata file. Every other signature is left to the judge, which checks it only before an entry counts or
raises an alert (a signature costs ~60 µs; the monitor reads tens of thousands of entries a second).

Jurisdiction claims (:func:`overt.keys.claims.foreign_claims`) cost 30-70 µs a statement. :func:`claims_of`
asks foreign_claims only about what can hold a claim (see its docstring), and foreign_claims decides.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from securesystemslib.signer import Key, SSlibKey

from overt.attest.dsse import MAX_ENVELOPE, PAYLOAD_TYPE_IN_TOTO, Envelope, b64decode
from overt.attest.provenance import SLSA_PROVENANCE_V1
from overt.attest.statement import MAX_STATEMENT, STATEMENT_TYPE_V1, ResourceDescriptor, Statement
from overt.attest.verify import key_identity, verify_envelope
from overt.attest.vsa import VSA_V1
from overt.errors import Error, FormatError
from overt.keys.claims import foreign_claims, word_pattern
from overt.keys.jurisdiction import (
    AVDB_AUDIT_V1,
    AVDB_WAIVER_V1,
    BUILDER_REGISTRY_V1,
    KEY_ROTATION_V1,
    SIGNING_REFUSAL_V1,
    SOURCE_ESCROW_V1,
    TUF_METADATA_V1,
)
from overt.tlog.client import LogClient
from overt.tlog.merkle import leaf_hash
from overt.tlog.tiles import TILE_WIDTH

# The kinds of entries, by predicate type.
VSA, TUF, PROVENANCE, ESCROW = "vsa", "tuf-metadata", "provenance", "escrow"
ROTATION, REGISTRY, AUDIT, WAIVER, REFUSAL, OTHER = (
    "key-rotation",
    "builder-registry",
    "avdb-audit",
    "avdb-waiver",
    "signing-refusal",
    "other",
)
KINDS: Mapping[str, str] = {
    VSA_V1: VSA,
    TUF_METADATA_V1: TUF,
    SLSA_PROVENANCE_V1: PROVENANCE,
    SOURCE_ESCROW_V1: ESCROW,
    KEY_ROTATION_V1: ROTATION,
    BUILDER_REGISTRY_V1: REGISTRY,
    AVDB_AUDIT_V1: AUDIT,
    AVDB_WAIVER_V1: WAIVER,
    SIGNING_REFUSAL_V1: REFUSAL,
}
# Kinds the judge reads the statement of (rare, or judged against state only the judge holds): their entry
# bytes travel with the facts. VSAs and TUF statements are stored as facts and checked where they count.
KEEP_ENTRY = frozenset({PROVENANCE, ROTATION, REGISTRY, AUDIT, WAIVER})
# A value no claim can equal: foreign_claims(statement, NO_JURISDICTION) lists every claim in the statement.
NO_JURISDICTION = "\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class Needs:
    """What decisions rest on, so :func:`read_bundle` checks those signatures at once (in the workers).

    ``auditor_keys``: the trust policy's auditor keys; ``releases``: the sha256 of every released artifact;
    ``served``: served metadata file name -> (sha256, the keys of its role).
    """

    auditor_keys: tuple[Key, ...] = ()
    releases: frozenset[str] = frozenset()
    served: Mapping[str, tuple[str, tuple[Key, ...]]] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """A picklable form for worker processes (keys as their TUF dicts)."""
        return {
            "auditors": [k.to_dict() | {"keyid": k.keyid} for k in self.auditor_keys],
            "releases": sorted(self.releases),
            "served": {
                n: (sha, [k.to_dict() | {"keyid": k.keyid} for k in keys])
                for n, (sha, keys) in self.served.items()
            },
        }

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Needs:
        def key(d: dict[str, Any]) -> Key:
            d = dict(d)
            return SSlibKey.from_dict(d.pop("keyid"), d)

        return cls(
            auditor_keys=tuple(key(d) for d in wire["auditors"]),
            releases=frozenset(wire["releases"]),
            served={n: (sha, tuple(key(d) for d in keys)) for n, (sha, keys) in wire["served"].items()},
        )


class Facts(NamedTuple):
    """One entry as the monitor needs it (a tuple: thousands a second cross from the workers, pickled).
    ``verified``: key identities (hex) whose signature over it was checked here because :class:`Needs`
    said it counts; None when nothing was checked."""

    log_index: int
    leaf: str  # its RFC 6962 leaf hash, hex: how a fact names its entry when it is fetched again
    kind: str
    keyids: tuple[str, ...] = ()  # the keyids its signatures name (a claim, until verified)
    subjects: tuple[tuple[str, str], ...] = ()  # (name, sha256) of each subject with a sha256
    claims: tuple[tuple[str, str], ...] = ()  # (where, value) of every jurisdiction it names
    detail: Mapping[str, Any] = {}  # never mutated
    verified: tuple[str, ...] | None = None
    entry: bytes | None = None  # kept for the kinds in KEEP_ENTRY and for any entry naming a jurisdiction


def envelope_statement(entry: bytes) -> tuple[Envelope, Statement]:
    """The DSSE envelope and the in-toto statement it carries; FormatError for anything else."""
    envelope = Envelope.from_bytes(entry)
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
        raise FormatError(f"payloadType is {envelope.payload_type!r}, not an in-toto statement")
    return envelope, Statement.from_bytes(envelope.payload)


def signed_by(envelope: Envelope, keys: Sequence[Key]) -> list[Key]:
    """Each of ``keys`` that signed ``envelope`` (each checked on its own, over the PAE)."""
    out = []
    for key in keys:
        try:
            verify_envelope(envelope, [key], 1)
        except Error:
            continue
        out.append(key)
    return out


def verified_signers(entry: bytes, keys: Sequence[Key]) -> list[Key]:
    """Each of ``keys`` (named by a signature, or any for a signature naming none) that signed ``entry``,
    an envelope of an in-toto statement as overt parses them; none for an entry overt refuses."""
    try:
        envelope, _ = envelope_statement(entry)
    except FormatError:
        return []
    return signed_by(envelope, _named(envelope, keys))


def _named(envelope: Envelope, keys: Sequence[Key]) -> list[Key]:
    """The keys a signature of ``envelope`` may be by: named by keyid, or any key for a signature naming none."""
    names = {s.keyid for s in envelope.signatures}
    return [k for k in keys if k.keyid in names or "" in names]


# --- jurisdiction claims ------------------------------------------------------------------------------------

# A JSON string that is base64 of at least 8 characters, of a length base64 can have (padding included).
_B64_STRING = re.compile(r'"((?:[A-Za-z0-9+/]{4}){2,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)"')
_PLACEHOLDER = (ResourceDescriptor(name="x", digest={"sha256": "0" * 64}),)


@functools.cache
def _word() -> re.Pattern[str]:
    return re.compile(word_pattern(), re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _string_claims(value: str) -> tuple[str, ...]:
    """What foreign_claims finds in one string value (statements repeat a few, such as a builder id)."""
    statement = Statement(subject=_PLACEHOLDER, predicate_type="x", predicate={"v": value})
    return tuple(v for _, v in foreign_claims(statement, NO_JURISDICTION))


@functools.lru_cache(maxsize=4096)
def _base64_text(value: str) -> bool:
    """Whether foreign_claims would read ``value`` as base64 of UTF-8 text (field names repeat: cached)."""
    if len(value) % 4:
        return False  # never valid base64 (padding included)
    try:
        base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return True


def _plain_claims(text: str) -> list[tuple[str, str]] | None:
    """Claims of a plain payload (see :func:`claims_of`), or None when it needs the full walk."""
    if not text.isascii() or any(c in text for c in "\\%&"):
        return None
    if any(map(_base64_text, _B64_STRING.findall(text))):
        return None  # base64 of text: foreign_claims reads the text inside
    found: list[tuple[str, str]] = []
    for m in _word().finditer(text):
        if '"' in m.group():
            return None  # the letters span two strings: let foreign_claims read them one by one
        start = text.rfind('"', 0, m.start())
        end = text.find('"', m.end())
        if start < 0 or end < 0 or text.count('"', 0, start) % 2:
            return None
        if text[end + 1 :].lstrip().startswith(":"):
            return None  # a field name: its value is judged with it
        value = text[start + 1 : end]
        found.extend((f"string {value[:80]}", v) for v in _string_claims(value))
    return found


def claims_of(statement: Callable[[], Statement], payload: bytes) -> list[tuple[str, str]]:
    """(where, value) for every jurisdiction ``statement`` names (``payload``: its bytes), as
    ``foreign_claims(statement, J)`` finds them for any J once the values equal to J are dropped.

    Fast and exact for a plain payload: ASCII (no look-alike letters), without backslashes (no JSON escapes,
    so every string is a substring of the payload), ``%`` or ``&`` (no percent or HTML escapes), and without a
    string that is base64 of text. Then only a string holding the word (the same look-alike pattern
    foreign_claims uses, searched over the whole payload) can hold a claim, and each such string is judged
    by foreign_claims alone. Anything else (a field name holding the word, an escape, base64 text) takes
    foreign_claims's full walk of the statement.
    """
    plain = _plain_claims(payload.decode("utf-8", errors="replace"))
    if plain is not None:
        return plain
    try:
        return foreign_claims(statement(), NO_JURISDICTION)
    except FormatError:
        return []  # a statement overt's parser refuses is refused by every verifier: it names nothing


# --- facts ---------------------------------------------------------------------------------------------


def _detail(kind: str, st: Mapping[str, Any]) -> dict[str, Any]:
    p = st.get("predicate")
    if not isinstance(p, dict):
        return {}
    if kind == VSA:
        return {"result": p.get("verificationResult")}
    if kind == TUF:
        return {"role": p.get("role")}
    if kind == PROVENANCE:
        run = p.get("runDetails")
        builder = run.get("builder") if isinstance(run, dict) else None
        definition = p.get("buildDefinition")
        params = definition.get("externalParameters") if isinstance(definition, dict) else None
        out: dict[str, Any] = {"builder": builder.get("id") if isinstance(builder, dict) else None}
        if isinstance(params, dict) and isinstance(params.get("database"), str):
            out |= {"database": params["database"], "version": params.get("version")}
        return out
    if kind == AUDIT:
        findings = p.get("findings")
        return {"database": p.get("database"), "findings": len(findings) if isinstance(findings, list) else 0}
    if kind == WAIVER:
        return {"database": p.get("database"), "finding": p.get("findingId"), "reason": p.get("reason")}
    if kind == ROTATION:
        return {"old": p.get("oldKeyid")}
    return {}


@dataclass(frozen=True, slots=True)
class _Read:
    """An entry read as JSON only (duplicate keys, NaN and oversize refused, as overt always parses), not yet
    as the wire types: they are built where a decision rests on the entry."""

    envelope: dict[str, Any]
    payload: bytes
    statement: dict[str, Any]
    keyids: tuple[str, ...]
    subjects: tuple[tuple[str, str], ...]


def _object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{what} is not JSON") from e
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not a JSON object")
    return obj


def _read(entry: bytes) -> _Read:
    """The entry as plain JSON (the C parser; what it lets through that overt's strict parser refuses, such
    as a duplicate key, is refused where a decision rests on the entry: :func:`verified_signers`)."""
    if len(entry) > MAX_ENVELOPE:
        raise FormatError("entry is larger than an envelope may be")
    try:
        text = entry.decode()
    except UnicodeDecodeError as e:
        raise FormatError("entry is not UTF-8") from e
    obj = _object(text, "DSSE envelope")
    payload_text = obj.get("payload")
    if obj.get("payloadType") != PAYLOAD_TYPE_IN_TOTO or not isinstance(payload_text, str):
        raise FormatError("not an in-toto statement")
    payload = b64decode(payload_text, "DSSE payload")
    sigs = obj.get("signatures")
    if not isinstance(sigs, list):
        raise FormatError("DSSE envelope: signatures must be an array")
    keyids = tuple(str(s.get("keyid", "")) if isinstance(s, dict) else "" for s in sigs)
    if len(payload) > MAX_STATEMENT:
        raise FormatError("the statement is larger than a statement may be")
    st = _object(payload, "in-toto statement")
    listed = st.get("subject")
    if st.get("_type") != STATEMENT_TYPE_V1 or not isinstance(st.get("predicateType"), str):
        raise FormatError("not an in-toto statement v1")
    subjects = []
    for d in listed if isinstance(listed, list) else ():
        digest = d.get("digest") if isinstance(d, dict) else None
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if isinstance(sha, str):
            name = d.get("name", "")
            subjects.append((name if isinstance(name, str) else "", sha))
    return _Read(envelope=obj, payload=payload, statement=st, keyids=keyids, subjects=tuple(subjects))


def _check_needed(kind: str, entry: bytes, read: _Read, needs: Needs) -> tuple[str, ...] | None:
    """The identities of the keys that signed, if a decision rests on this entry (see :class:`Needs`); the
    entry is parsed as overt's wire types first (a refused one is signed by nobody)."""
    if kind == VSA and needs.auditor_keys and any(sha in needs.releases for _, sha in read.subjects):
        keys: Sequence[Key] = needs.auditor_keys
    elif kind == TUF and len(read.subjects) == 1 and read.subjects[0][0] in needs.served:
        sha, keys = needs.served[read.subjects[0][0]]
        if read.subjects[0][1] != sha:
            return None
    else:
        return None
    return tuple(key_identity(k).hex() for k in verified_signers(entry, keys))


def facts_of(index: int, entry: bytes, needs: Needs, *, leaf: bytes | None = None) -> Facts:
    """The :class:`Facts` of the entry at ``index`` (``leaf``: its leaf hash, if computed already)."""
    sha = (leaf or leaf_hash(entry)).hex()
    try:
        read = _read(entry)
    except FormatError:
        return Facts(log_index=index, leaf=sha, kind=OTHER)
    kind = KINDS.get(read.statement["predicateType"], OTHER)
    claims: tuple[tuple[str, str], ...] = ()
    if read.keyids:
        claims = tuple(claims_of(lambda: Statement.from_dict(read.statement), read.payload))
    return Facts(
        log_index=index,
        leaf=sha,
        kind=kind,
        keyids=read.keyids,
        subjects=read.subjects,
        claims=claims,
        detail=_detail(kind, read.statement),
        verified=_check_needed(kind, entry, read, needs),
        entry=entry if kind in KEEP_ENTRY or claims else None,
    )


def bundle_entries(client: LogClient, bundle: int, tree_size: int) -> Iterator[tuple[int, bytes]]:
    """The entries of bundle ``bundle`` of the tree of ``tree_size``, as the log serves them."""
    start = bundle * TILE_WIDTH
    yield from client.iter_entries(min(tree_size, start + TILE_WIDTH), start)


def read_bundle(
    client: LogClient, bundle: int, tree_size: int, needs: Needs, *, start: int = 0
) -> tuple[list[bytes], list[Facts]]:
    """The leaf hash of every entry of ``bundle`` from index ``start`` on, and the facts of each."""
    leaves: list[bytes] = []
    facts: list[Facts] = []
    for index, entry in bundle_entries(client, bundle, tree_size):
        if index < start:
            continue
        leaf = leaf_hash(entry)
        leaves.append(leaf)
        facts.append(facts_of(index, entry, needs, leaf=leaf))
    return leaves, facts
