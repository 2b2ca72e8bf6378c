"""Signing as a service with two guarantees: policy first, and every signature is a log entry.

:meth:`SigningService.sign` judges the request (:mod:`overt.keys.jurisdiction`) under the conveyor's
jurisdiction and the builder registry it is given. A refusal is appended to the transparency log as an unsigned
DSSE envelope whose in-toto statement (``signing-refusal/v1``) names the key, the refused statement's digest
and the reason, and then raised as :class:`PolicyError`. An accepted statement is signed into a DSSE envelope,
checked against the key's public half, and the envelope itself is appended to the log before it is handed back:
a signature that cannot be logged is never released.

Reserved predicate types (rotation, escrow, AV-DB audit and waiver, builder registry) are refused by
:meth:`SigningService.sign`; their domain commands call :meth:`SigningService.issue` with their
:class:`overt.keys.jurisdiction.Issuer`. ``overt attest sign`` only ever calls :meth:`SigningService.sign_bytes`,
which parses the request strictly (:meth:`Statement.from_bytes` with ``strict``) and logs a request that does not
parse as a refusal of those bytes, naming their SHA-256 and the parse error.

Does no I/O itself: the caller supplies the signer loader, the log appender, the builder registry and the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.attest.verify import verify_envelope
from overt.errors import FormatError, PolicyError
from overt.keys.jurisdiction import SIGNING_REFUSAL_V1, Issuer, Refusal, SigningPolicy, judge
from overt.keys.registry import KeyRecord
from overt.keys.signers import KeySigner


@dataclass(frozen=True, slots=True, kw_only=True)
class LogReceipt:
    index: int
    tree_size: int
    published: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Signed:
    envelope: Envelope
    entry: bytes  # the exact bytes appended to the log
    receipt: LogReceipt


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedStatement:
    """A statement signed on request (``overt attest sign``): the key that signed, the logged envelope, and
    the file the envelope was written to (None: it is handed back whole)."""

    keyid: str
    signed: Signed
    out: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        receipt = self.signed.receipt
        return {
            "keyid": self.keyid,
            "log_index": receipt.index,
            "tree_size": receipt.tree_size,
            "checkpoint_published": receipt.published,
            "envelope": self.signed.envelope.to_dict() if self.out is None else str(self.out),
        }


Appender = Callable[[bytes], LogReceipt]


def refusal_statement(
    record: KeyRecord, statement: Statement, reason: str, claimed: tuple[str, ...], now: datetime
) -> Statement:
    """The logged record of ``record`` refusing ``statement`` (identified by the digest of its bytes)."""
    return _refusal(
        record,
        refused=statement.to_bytes(),
        predicate_type=statement.predicate_type,
        subjects=[s.to_dict() for s in statement.subject[:16]],
        reason=reason,
        claimed=claimed,
        now=now,
    )


def _refusal(
    record: KeyRecord,
    *,
    refused: bytes,
    predicate_type: str,
    subjects: list[dict[str, object]],
    reason: str,
    claimed: tuple[str, ...],
    now: datetime,
) -> Statement:
    return Statement(
        subject=(
            ResourceDescriptor(
                name="refused-statement", digest={"sha256": hashlib.sha256(refused).hexdigest()}
            ),
        ),
        predicate_type=SIGNING_REFUSAL_V1,
        predicate={
            "keyid": record.keyid,
            "role": record.role.value,
            "keyJurisdiction": record.jurisdiction,
            "claimedJurisdictions": list(claimed),
            "refusedPredicateType": predicate_type,
            "refusedSubject": subjects,
            "reason": reason,
            "time": format_timestamp(now),
        },
    )


class SigningService:
    """Judge, sign and log. ``builders`` is called for each provenance request: the registry in force then."""

    def __init__(
        self,
        *,
        load: Callable[[KeyRecord], KeySigner],
        append: Appender,
        now: Callable[[], datetime],
        jurisdiction: str,
        builders: Callable[[], Mapping[str, str]],
    ) -> None:
        self.load = load
        self.append = append
        self.now = now
        self.jurisdiction = jurisdiction
        self.builders = builders

    def sign(self, record: KeyRecord, statement: Statement) -> Signed:
        """Sign ``statement`` with ``record``'s key if policy allows, and log the envelope; else log a refusal.

        Reserved predicate types are always refused here (see :meth:`issue`).
        """
        return self._sign(record, statement, None)

    def sign_bytes(self, record: KeyRecord, data: bytes) -> Signed:
        """As :meth:`sign`, for a request as raw bytes: a statement that does not parse strictly (duplicate
        keys, another ``_type``, fields the signer does not know) is refused, and the refusal logged, naming
        the SHA-256 of ``data``."""
        try:
            statement = Statement.from_bytes(data, strict=True)
        except FormatError as e:
            note = _refusal(
                record,
                refused=data,
                predicate_type="",
                subjects=[],
                reason=f"the request is not a statement this signer can sign: {e}",
                claimed=(),
                now=self.now(),
            )
            self._log_refusal(record, note, str(note.predicate["reason"]))
        return self.sign(record, statement)

    def issue(self, record: KeyRecord, statement: Statement, *, issuer: Issuer) -> Signed:
        """As :meth:`sign`, for the reserved predicate type ``issuer`` stands for (its domain command only)."""
        if statement.predicate_type != issuer.predicate_type:
            raise ValueError(f"an issuer of {issuer.predicate_type} cannot issue {statement.predicate_type}")
        return self._sign(record, statement, issuer)

    def _sign(self, record: KeyRecord, statement: Statement, issuer: Issuer | None) -> Signed:
        now = self.now()
        # The registry is loaded (and checked against the log) only if the judge needs it: for provenance.
        policy = SigningPolicy(jurisdiction=self.jurisdiction, builders=self.builders)
        refusal = judge(record, statement, policy, now=now, issuer=issuer)
        if refusal is not None:
            self._refuse(record, statement, refusal, now)
        signer = self.load(record)
        envelope = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer])
        # A token that returns a bad signature must not reach the log.
        verify_envelope(envelope, [record.key], 1)
        entry = envelope.to_bytes()
        return Signed(envelope=envelope, entry=entry, receipt=self.append(entry))

    def _refuse(self, record: KeyRecord, statement: Statement, refusal: Refusal, now: datetime) -> NoReturn:
        note = refusal_statement(record, statement, refusal.reason, refusal.claimed, now)
        self._log_refusal(record, note, refusal.reason)

    def _log_refusal(self, record: KeyRecord, note: Statement, reason: str) -> NoReturn:
        entry = Envelope(payload=note.to_bytes(), payload_type=PAYLOAD_TYPE_IN_TOTO).to_bytes()
        receipt = self.append(entry)
        raise PolicyError(
            f"refused: {reason}",
            keyid=record.keyid,
            key_jurisdiction=record.jurisdiction,
            refusal_logged_at=receipt.index,
        )
