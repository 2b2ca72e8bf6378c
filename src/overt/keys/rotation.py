"""Key rotation: the old key of a role signs a statement introducing the new one, and the log records it.

The ``key-rotation/v1`` statement's subject is the new key (its keyid is a SHA-256, so it doubles as the
digest); the predicate carries the new key object, role and jurisdiction, the old keyid and the reason. It goes
through the same :class:`overt.keys.signing.SigningService` as any statement, so it is judged (a key can only
introduce a successor in its own jurisdiction) and logged. The type is reserved: only :func:`rotate` issues it,
so ``overt attest sign`` cannot introduce a key. Afterwards the old key's validity ends and it points
to its successor; everything it signed before stays verifiable with its published public key.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.errors import ConfigError, FormatError, VerificationError
from overt.keys.jurisdiction import KEY_ROTATION_V1, Issuer
from overt.keys.registry import KeyRecord, Registry, Role
from overt.keys.signing import Signed, SigningService

_ISSUER = Issuer(KEY_ROTATION_V1)


def rotation_statement(old: KeyRecord, new: KeyRecord, *, reason: str, now: datetime) -> Statement:
    return Statement(
        subject=(ResourceDescriptor(name=f"key:{new.keyid}", digest={"sha256": new.keyid}),),
        predicate_type=KEY_ROTATION_V1,
        predicate={
            "role": new.role.value,
            "jurisdiction": new.jurisdiction,
            "oldKeyid": old.keyid,
            "newKey": new.public_dict(),
            "reason": reason,
            "time": format_timestamp(now),
        },
    )


def introduced_key(statement: Statement, old: KeyRecord) -> KeyRecord:
    """The key a (verified) rotation statement by ``old`` introduces; raises if it is not one."""
    if statement.predicate_type != KEY_ROTATION_V1:
        raise VerificationError(f"not a key rotation statement: {statement.predicate_type}")
    pred = statement.predicate
    if pred.get("oldKeyid") != old.keyid:
        raise VerificationError("the rotation statement names another old key")
    new_obj = pred.get("newKey")
    if not isinstance(new_obj, dict):
        raise FormatError("rotation statement: newKey must be an object")
    new = KeyRecord.from_dict(dict(new_obj))
    if new.role is not old.role or new.jurisdiction != old.jurisdiction:
        raise VerificationError("a rotation keeps the role and the jurisdiction of the old key")
    if [dict(s.digest) for s in statement.subject] != [{"sha256": new.keyid}]:
        raise VerificationError("the rotation statement's subject is not the new key")
    return new


def check_rotatable(old: KeyRecord) -> None:
    """Refuse to rotate a log key (before a successor is made): it is the log's identity."""
    if old.role is Role.LOG:
        raise ConfigError(
            "a log key is the log's identity (its vkey); start a new log instead of rotating it"
        )


def rotate(
    service: SigningService,
    registry: Registry,
    old: KeyRecord,
    *,
    new_uri: str,
    new_key_record: KeyRecord,
    reason: str,
) -> tuple[KeyRecord, Signed]:
    """Introduce ``new_key_record`` with a statement signed by ``old`` and logged, then retire ``old``."""
    check_rotatable(old)
    now = service.now()
    new = replace(new_key_record, valid_from=now, uri=new_uri)
    signed = service.issue(old, rotation_statement(old, new, reason=reason, now=now), issuer=_ISSUER)
    new = replace(new, introduced_by=signed.receipt.index)
    registry.save(new)
    registry.save(replace(old, valid_until=max(now, old.valid_from), rotated_to=new.keyid))
    return new, signed
