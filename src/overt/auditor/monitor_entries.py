"""What the monitor reads of one log entry: its kind and the few facts a monitor decision needs.

:func:`read_bundle` reads one entry bundle of a verified tree (through :class:`~overt.tlog.client.LogClient`),
hashes every entry into its RFC 6962 leaf hash (and a whole bundle into its subtree root: the caller folds
those into the tree and checks the root, so a tile server serving other entries than the tree commits to is
caught) and returns a :class:`BundleFacts`: compact rows, not objects, since it runs in worker processes
(:mod:`overt.auditor.monitor_read`) and every entry's facts cross to the monitor's process pickled. It does
no I/O beyond fetching that bundle and judges nothing: :mod:`overt.auditor.monitor_judge` does, in log order.

Each entry is read once, as JSON (the C parser, from text: the envelope, then its payload decoded once), not
yet as overt's wire types. Those are built, strictly (:class:`~overt.attest.dsse.Envelope`,
:class:`~overt.attest.statement.Statement`: duplicate keys refused and the rest), where a decision rests on
the entry: an entry overt's parser refuses is signed by nobody and counts for nothing. An entry that is not
even JSON of a DSSE envelope of an in-toto statement is of kind ``other`` and names nothing.

Signatures are checked here only where the caller says a decision will rest on the entry (:class:`Needs`): a
VSA about a released artifact by a trusted auditor key, a ``tuf-metadata/v1`` statement about a served
metadata file. Every other signature is left to the judge, which checks it only before an entry counts or
raises an alert (a signature costs ~60 µs; the monitor reads tens of thousands of entries a second). A FAILED
VSA naming a trusted auditor key (or no key) is rare and always an alert or a forgery: it crosses to the judge
as :class:`Facts` with its bytes, whatever it is about.

Jurisdiction claims are :mod:`overt.auditor.monitor_claims`'s.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from securesystemslib.signer import Key, SSlibKey

from overt.attest.dsse import MAX_ENVELOPE, PAYLOAD_TYPE_IN_TOTO, Envelope, b64decode
from overt.attest.provenance import SLSA_PROVENANCE_V1
from overt.attest.statement import MAX_STATEMENT, STATEMENT_TYPE_V1, Statement
from overt.attest.verify import key_identity, verify_envelope
from overt.attest.vsa import FAILED, VSA_V1
from overt.auditor.monitor_claims import claims_of
from overt.errors import Error, FormatError
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
from overt.tlog.tiles import TILE_WIDTH, subtree_root

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
# Kinds the judge reads the statement of (rare, or judged against state only the judge holds): they cross as
# Facts with their entry bytes. VSAs and TUF statements cross as table rows, checked where they count.
KEEP_ENTRY = frozenset({PROVENANCE, ROTATION, REGISTRY, AUDIT, WAIVER})

# Entries the judge only needs to know the signers of, counted per (keyids, whether it counts as an entry
# of a known kind) between two Facts of a bundle that may change which keys are known (rotations).
SignerCounts = dict[tuple[tuple[str, ...], bool], int]
# A vsa table row: index, leaf hash (hex), subject sha256, subject name, result, keyids (JSON), verified
# (JSON or None); a tuf table row: index, leaf hash, file name, sha256, role, keyids, verified.
Row = tuple[int, str, str, str, str | None, str, str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Needs:
    """What decisions rest on, so :func:`read_bundle` checks those signatures at once (in the workers).

    ``auditor_keys``: the trust policy's auditor keys; ``releases``: the sha256 of every released artifact;
    ``served``: served metadata file name -> (sha256, the keys of its role).
    """

    auditor_keys: tuple[Key, ...] = ()
    releases: frozenset[str] = frozenset()
    served: Mapping[str, tuple[str, tuple[Key, ...]]] = field(default_factory=dict)

    def names_auditor(self, keyids: Sequence[str]) -> bool:
        """Whether a signature naming ``keyids`` may be by a trusted auditor key (named, or naming none)."""
        return any(k == "" or any(a.keyid == k for a in self.auditor_keys) for k in keyids)

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
    """One entry the judge reads on its own (a kind in :data:`KEEP_ENTRY`, or one naming a jurisdiction)."""

    log_index: int
    leaf: str  # its RFC 6962 leaf hash, hex: how a fact names its entry when it is fetched again
    kind: str
    keyids: tuple[str, ...] = ()  # the keyids its signatures name (a claim, until verified)
    subjects: tuple[tuple[str, str], ...] = ()  # (name, sha256) of each subject with a sha256
    claims: tuple[tuple[str, str], ...] = ()  # (where, value) of every jurisdiction it names
    detail: Mapping[str, Any] = {}  # never mutated
    entry: bytes | None = None


class BundleFacts(NamedTuple):
    """One entry bundle as the judge needs it, from index ``first`` on (``entry_count`` entries).

    ``root``: the subtree root of a whole bundle (then ``leaves`` is empty), else ``leaves``: every leaf hash.
    ``vsa``/``tuf``: the rows of every VSA and tuf-metadata/v1 statement. ``judged``, in log order: a
    :class:`Facts` for each entry the judge reads, and between them :data:`SignerCounts` of the others.
    """

    number: int
    first: int
    entry_count: int
    root: bytes | None
    leaves: list[bytes]
    vsa: list[Row]
    tuf: list[Row]
    judged: list[Facts | SignerCounts]


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
    return signed_by(envelope, named_keys(envelope, keys))


def named_keys(envelope: Envelope, keys: Sequence[Key]) -> list[Key]:
    """The keys a signature of ``envelope`` may be by: named by keyid, or any key for a signature naming none."""
    names = {s.keyid for s in envelope.signatures}
    return [k for k in keys if k.keyid in names or "" in names]


# --- reading one entry ----------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _detail(kind: str, p: Mapping[str, Any]) -> dict[str, Any]:
    """What the judge reads of the predicate ``p`` of a kind in :data:`KEEP_ENTRY`."""
    if kind == PROVENANCE:
        run = p.get("runDetails")
        builder = run.get("builder") if isinstance(run, dict) else None
        definition = p.get("buildDefinition")
        params = definition.get("externalParameters") if isinstance(definition, dict) else None
        out: dict[str, Any] = {"builder": builder.get("id") if isinstance(builder, dict) else None}
        if isinstance(params, dict) and "database" in params:  # an AV-database build (judged as released)
            out |= {"database": params["database"], "version": params.get("version")}
        return out
    if kind == AUDIT:
        # Counts: the findings themselves are in the report file the statement names by digest.
        findings = p.get("findings")
        total = len(findings) if isinstance(findings, list) else findings if isinstance(findings, int) else 0
        blocking = p.get("blocking")
        # A count missing or malformed (or a report of the older inline form) alerts as if all blocked.
        blocking = blocking if isinstance(blocking, int) and not isinstance(findings, list) else total
        return {"database": p.get("database"), "findings": total, "blocking": blocking}
    if kind == WAIVER:
        return {"database": p.get("database"), "finding": p.get("findingId"), "reason": p.get("reason")}
    if kind == ROTATION:
        return {"old": p.get("oldKeyid")}
    if kind == VSA:
        return {"result": p.get("verificationResult")}
    return {}


@dataclass(frozen=True, slots=True)
class _Read:
    """An entry read as JSON only (the C parser), not yet as the wire types."""

    text: str  # the payload, decoded once
    statement: dict[str, Any]
    keyids: tuple[str, ...]
    subjects: tuple[tuple[str, str], ...]


# The C scanner json.loads runs, without its wrapper (two whitespace matches and a few calls: a µs an entry).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """``json.loads(text)``: the scanner's value when it took all of ``text``, else json.loads decides
    (leading or trailing whitespace, trailing data, anything malformed)."""
    obj, end = None, -1
    with contextlib.suppress(StopIteration, ValueError):
        obj, end = _SCAN(text, 0)
    return obj if end == len(text) else json.loads(text)


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        obj = _loads(text)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{what} is not JSON") from e
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not a JSON object")
    return obj


def _payload(text: str) -> bytes:
    """The DSSE payload: canonical base64 in C, anything else as overt's own decoder decides."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return b64decode(text, "DSSE payload")


def _read(entry: bytes) -> _Read:
    """The entry as plain JSON: what the C parser lets through that overt's strict parser refuses (such as a
    duplicate key) is refused where a decision rests on the entry (:func:`verified_signers`)."""
    if len(entry) > MAX_ENVELOPE:
        raise FormatError("entry is larger than an envelope may be")
    try:
        obj = _object(entry.decode(), "DSSE envelope")
    except UnicodeDecodeError as e:
        raise FormatError("entry is not UTF-8") from e
    payload_text = obj.get("payload")
    if obj.get("payloadType") != PAYLOAD_TYPE_IN_TOTO or not isinstance(payload_text, str):
        raise FormatError("not an in-toto statement")
    payload = _payload(payload_text)
    sigs = obj.get("signatures")
    if not isinstance(sigs, list):
        raise FormatError("DSSE envelope: signatures must be an array")
    keyids = tuple(str(s.get("keyid", "")) if isinstance(s, dict) else "" for s in sigs)
    if len(payload) > MAX_STATEMENT:
        raise FormatError("the statement is larger than a statement may be")
    try:
        text = payload.decode()
    except UnicodeDecodeError as e:
        raise FormatError("the statement is not UTF-8") from e  # as overt's parser refuses it
    st = _object(text, "in-toto statement")
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
    return _Read(text=text, statement=st, keyids=keyids, subjects=tuple(subjects))


def _check_needed(kind: str, entry: bytes, read: _Read, needs: Needs) -> str | None:
    """The identities (JSON) of the keys that signed, if a decision rests on this entry (see :class:`Needs`);
    the entry is parsed as overt's wire types first (a refused one is signed by nobody)."""
    if kind == VSA and needs.auditor_keys and any(sha in needs.releases for _, sha in read.subjects):
        keys: Sequence[Key] = needs.auditor_keys
    elif kind == TUF and len(read.subjects) == 1 and read.subjects[0][0] in needs.served:
        sha, keys = needs.served[read.subjects[0][0]]
        if read.subjects[0][1] != sha:
            return None
    else:
        return None
    return json.dumps([key_identity(k).hex() for k in verified_signers(entry, keys)])


@functools.lru_cache(maxsize=256)
def _keyids_json(keyids: tuple[str, ...]) -> str:
    return json.dumps(keyids)


# --- one bundle -------------------------------------------------------------------------------------------


class _Collector:
    """The :class:`BundleFacts` of one bundle, entry by entry."""

    def __init__(self, needs: Needs) -> None:
        self.needs = needs
        self.vsa: list[Row] = []
        self.tuf: list[Row] = []
        self.judged: list[Facts | SignerCounts] = []
        self.counts: SignerCounts | None = None  # the counts the next entry joins (None: start new ones)

    def add(self, index: int, entry: bytes, leaf: bytes) -> None:
        try:
            read = _read(entry)
        except FormatError:
            return  # names no signer and nothing else: nothing to judge
        kind = KINDS.get(read.statement["predicateType"], OTHER)
        statement = read.statement
        claims: tuple[tuple[str, str], ...] = ()
        if read.keyids:
            claims = tuple(claims_of(lambda: Statement.from_dict(statement), read.text))
        predicate = statement.get("predicate")
        p: Mapping[str, Any] = predicate if isinstance(predicate, dict) else {}
        if kind in (VSA, TUF):
            self._row(kind, index, entry, leaf, read, p)
        failed = (
            kind == VSA and p.get("verificationResult") == FAILED and self.needs.names_auditor(read.keyids)
        )
        if kind in KEEP_ENTRY or claims or failed:
            self.judged.append(
                Facts(
                    log_index=index,
                    leaf=leaf.hex(),
                    kind=kind,
                    keyids=read.keyids,
                    subjects=read.subjects,
                    claims=claims,
                    detail=_detail(kind, p),
                    entry=entry,
                )
            )
            if kind == ROTATION:
                self.counts = None  # a rotation may introduce a key: count the entries after it apart
        elif read.keyids:
            if self.counts is None:
                self.counts = {}
                self.judged.append(self.counts)
            key = (read.keyids, kind != OTHER)
            self.counts[key] = self.counts.get(key, 0) + 1

    def _row(
        self, kind: str, index: int, entry: bytes, leaf: bytes, read: _Read, p: Mapping[str, Any]
    ) -> None:
        keyids = _keyids_json(read.keyids)
        verified = _check_needed(kind, entry, read, self.needs)
        if kind == VSA:
            result = _text(p.get("verificationResult"))
            self.vsa.extend(
                (index, leaf.hex(), sha, name, result, keyids, verified) for name, sha in read.subjects
            )
        elif len(read.subjects) == 1:
            name, sha = read.subjects[0]
            self.tuf.append((index, leaf.hex(), name, sha, _text(p.get("role")), keyids, verified))


def bundle_entries(client: LogClient, bundle: int, tree_size: int) -> Iterator[tuple[int, bytes]]:
    """The entries of bundle ``bundle`` of the tree of ``tree_size``, as the log serves them."""
    start = bundle * TILE_WIDTH
    yield from client.iter_entries(min(tree_size, start + TILE_WIDTH), start)


def read_bundle(
    client: LogClient, bundle: int, tree_size: int, needs: Needs, *, start: int = 0
) -> BundleFacts:
    """The leaf hashes (or subtree root) and the facts of every entry of ``bundle`` from index ``start`` on."""
    entries = [(i, e) for i, e in bundle_entries(client, bundle, tree_size) if i >= start]
    leaves = [leaf_hash(e) for _, e in entries]
    out = _Collector(needs)
    for (index, entry), leaf in zip(entries, leaves, strict=True):
        out.add(index, entry, leaf)
    whole = len(leaves) == TILE_WIDTH
    return BundleFacts(
        number=bundle,
        first=entries[0][0] if entries else max(start, bundle * TILE_WIDTH),
        entry_count=len(entries),
        root=subtree_root(leaves) if whole else None,
        leaves=[] if whole else leaves,
        vsa=out.vsa,
        tuf=out.tuf,
        judged=out.judged,
    )
