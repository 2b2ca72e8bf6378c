"""Tenant admin keys and access approvals: the key files, the wire type, and every way an approval is refused
(another tenant, another key, outside its time box, a box too long, altered bytes, malformed)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_public_key,
)
from hypothesis import given
from hypothesis import strategies as st

from overt.attest.dsse import Envelope, sign_envelope
from overt.errors import FormatError, SignatureError, UsageError, VerificationError
from overt.residency.adminkeys import AdminSigner, load_admin_key, load_admin_signer, new_admin_key
from overt.residency.approvals import (
    APPROVAL_PAYLOAD_TYPE,
    MAX_TIME_BOX,
    REASONS,
    Approval,
    ApprovalExpiredError,
    ApprovalMalformedError,
    ApprovalMismatchError,
    ApprovalNotYetValidError,
    ApprovalSignatureError,
    ApprovalTooLongError,
    issue_approval,
    sign_approval,
    verify_approval,
)
from overt.residency.tenants import AdminKey

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TENANT = "t-0123456789abcdef"
OTHER_TENANT = "t-fedcba9876543210"


def approval(**changes: object) -> Approval:
    fields: dict[str, object] = {
        "tenant": TENANT,
        "actor": "ana@vendor.example",
        "actor_country": "CH",
        "reason": "support-ticket",
        "resource": "telemetry:detections",
        "not_before": T0,
        "not_after": T0 + timedelta(hours=8),
        "ticket": "SUP-1234",
    }
    fields.update(changes)
    return Approval.new(**fields)  # type: ignore[arg-type]


@pytest.fixture
def admin() -> AdminSigner:
    return AdminSigner.of(Ed25519PrivateKey.generate())


def verify(envelope: bytes, key: AdminKey, **changes: object) -> object:
    args: dict[str, object] = {
        "admin_key": key,
        "tenant": TENANT,
        "actor": "ana@vendor.example",
        "actor_country": "CH",
        "resource": "telemetry:detections",
        "now": T0 + timedelta(hours=1),
    }
    args.update(changes)
    return verify_approval(envelope, **args)  # type: ignore[arg-type]


# --- admin keys -----------------------------------------------------------------------------------------------


def test_admin_key_new_writes_a_private_key_0600_and_its_public_half(tmp_path: Path) -> None:
    made = new_admin_key(tmp_path / "admin.pem")
    assert made.private == tmp_path / "admin.pem" and made.public == tmp_path / "admin.pem.pub"
    assert stat.S_IMODE(made.private.stat().st_mode) == 0o600
    public = load_pem_public_key(made.public.read_bytes())
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert made.keyid == hashlib.sha256(der).hexdigest() == load_admin_key(made.public).keyid
    signer = load_admin_signer(made.private)
    assert signer.keyid == made.keyid
    # The directory's view of the public key (what 'tenant create --admin-key' stores) names the same key.
    assert AdminKey.from_pem(made.public.read_bytes()) == signer.public
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin.pem", "admin.pem.pub"]  # no temp files left


def test_admin_key_new_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "admin.pem"
    new_admin_key(out)
    before = (out.read_bytes(), (tmp_path / "admin.pem.pub").read_bytes())
    with pytest.raises(UsageError, match="exists already"):
        new_admin_key(out)
    assert (out.read_bytes(), (tmp_path / "admin.pem.pub").read_bytes()) == before
    # Only the public half there: refused too, and nothing written.
    lone = tmp_path / "b.pem"
    (tmp_path / "b.pem.pub").write_text("mine")
    with pytest.raises(UsageError, match="exists already"):
        new_admin_key(lone)
    assert not lone.exists() and (tmp_path / "b.pem.pub").read_text() == "mine"


def test_only_an_unencrypted_ed25519_private_key_signs(tmp_path: Path) -> None:
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")
        )
    )
    with pytest.raises(FormatError, match="encrypted"):
        load_admin_signer(encrypted)
    ec = tmp_path / "ec.pem"
    ec.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    with pytest.raises(FormatError, match="not an Ed25519 private key"):
        load_admin_signer(ec)
    pub = new_admin_key(tmp_path / "a.pem").public
    with pytest.raises(FormatError, match="not a PEM private key"):
        load_admin_signer(pub)  # the public half given where the private key belongs


# --- the wire type ------------------------------------------------------------------------------------------


def test_the_wire_format_round_trips_and_is_exact() -> None:
    a = approval()
    data = a.to_bytes()
    assert Approval.from_bytes(data) == a and Approval.from_bytes(data).to_bytes() == data
    obj = json.loads(data)
    assert obj["_type"] == "https://overt.example/residency/access-approval/v1"
    assert obj["not_before"] == "2026-12-01T10:00:00Z" and obj["not_after"] == "2026-12-01T18:00:00Z"
    assert obj["approval_id"].startswith("a-") and approval().approval_id != a.approval_id
    with pytest.raises(FormatError, match="unknown fields 'extra'"):
        Approval.from_bytes(json.dumps({**obj, "extra": 1}).encode())
    with pytest.raises(FormatError, match="missing ticket"):
        Approval.from_bytes(json.dumps({k: v for k, v in obj.items() if k != "ticket"}).encode())
    with pytest.raises(FormatError, match="UTC to the second"):
        Approval.from_bytes(json.dumps({**obj, "not_after": "2026-12-01T18:00:00+01:00"}).encode())


@given(
    reason=st.sampled_from(sorted(REASONS)),
    resource=st.sampled_from(
        ["telemetry:detections", "telemetry:aggregates", "telemetry:batch/b-0123456789"]
    ),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 30),
    ticket=st.text(alphabet=st.characters(categories=("L", "N", "P", "Zs")), max_size=40),
)
def test_from_bytes_of_to_bytes_is_the_approval(
    reason: str, resource: str, minutes: int, ticket: str
) -> None:
    a = approval(reason=reason, resource=resource, not_after=T0 + timedelta(minutes=minutes), ticket=ticket)
    assert Approval.from_bytes(a.to_bytes()) == a


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tenant": "acme"}, "tenant id"),
        ({"actor": "ana smith"}, "actor"),
        ({"actor": ""}, "actor"),
        ({"actor_country": "ch"}, "upper case"),
        ({"actor_country": "XX"}, "not an officially assigned"),
        ({"reason": "curiosity"}, "not one of incident-response"),
        ({"resource": "telemetry:*"}, "resource"),
        ({"resource": "telemetry:batch/../x"}, "resource"),
        ({"ticket": "a\nb"}, "control"),
        ({"ticket": "x" * 257}, "at most 256"),
        ({"not_after": T0}, "later than not_before"),
        ({"not_after": T0 - timedelta(hours=1)}, "later than not_before"),
    ],
)
def test_an_invalid_approval_cannot_be_made(change: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        approval(**change)


# --- verification -------------------------------------------------------------------------------------------


def test_an_approval_verifies_for_its_tenant_actor_country_and_resource(admin: AdminSigner) -> None:
    a = approval()
    envelope = issue_approval(a, admin)
    verified = verify(envelope, admin.public)
    assert verified.approval == a and verified.keyid == admin.keyid and verified.envelope == envelope  # type: ignore[attr-defined]
    verify(envelope, admin.public, now=T0)  # from not_before, included


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant", OTHER_TENANT),
        ("actor", "bob@vendor.example"),
        ("actor_country", "US"),
        ("resource", "telemetry:aggregates"),
    ],
)
def test_an_approval_for_someone_or_something_else_is_refused(
    admin: AdminSigner, field: str, value: str
) -> None:
    envelope = sign_approval(approval(), admin)
    with pytest.raises(ApprovalMismatchError) as e:
        verify(envelope, admin.public, **{field: value})
    assert e.value.field == field and e.value.expected == value and e.value.exit_code == 1


def test_an_approval_for_another_tenant_is_refused(admin: AdminSigner) -> None:
    envelope = sign_approval(approval(tenant=OTHER_TENANT), admin)
    with pytest.raises(ApprovalMismatchError, match=f"tenant '{OTHER_TENANT}'"):
        verify(envelope, admin.public)


def test_an_approval_signed_by_another_key_is_refused(admin: AdminSigner) -> None:
    vendor = AdminSigner.of(Ed25519PrivateKey.generate())
    envelope = sign_approval(approval(), vendor)
    with pytest.raises(ApprovalSignatureError, match="not signed by the tenant's admin key") as e:
        verify(envelope, admin.public)
    assert isinstance(e.value, SignatureError) and e.value.evidence["signed_by"] == [vendor.keyid]
    # A signature claiming the admin's keyid does not help: the key, not the label, is checked.
    forged = Envelope.from_bytes(envelope)
    relabelled = Envelope(
        payload=forged.payload,
        payload_type=forged.payload_type,
        signatures=(type(forged.signatures[0])(keyid=admin.keyid, sig=forged.signatures[0].sig),),
    )
    with pytest.raises(ApprovalSignatureError):
        verify(relabelled.to_bytes(), admin.public)


def test_an_expired_approval_is_refused(admin: AdminSigner) -> None:
    envelope = sign_approval(approval(), admin)
    with pytest.raises(ApprovalExpiredError, match="expired at 2026-12-01T18:00:00Z") as e:
        verify(envelope, admin.public, now=T0 + timedelta(hours=8))  # not_after is excluded
    assert e.value.evidence["approval_id"] and e.value.not_after == T0 + timedelta(hours=8)
    with pytest.raises(ApprovalExpiredError):
        verify(envelope, admin.public, now=T0 + timedelta(days=30))


def test_an_approval_not_yet_valid_is_refused(admin: AdminSigner) -> None:
    envelope = sign_approval(approval(), admin)
    with pytest.raises(ApprovalNotYetValidError, match="valid only from 2026-12-01T10:00:00Z"):
        verify(envelope, admin.public, now=T0 - timedelta(seconds=1))


def test_a_30_day_time_box_is_refused_even_when_signed(admin: AdminSigner) -> None:
    long = approval(not_after=T0 + timedelta(days=30))
    envelope = sign_approval(long, admin)  # the admin signed it (not through 'approve', which refuses)
    with pytest.raises(ApprovalTooLongError, match="lasts 30 days, longer than the 7 days"):
        verify(envelope, admin.public)
    with pytest.raises(UsageError, match="at most 7 days"):
        issue_approval(long, admin)
    assert timedelta(days=7) == MAX_TIME_BOX
    verify(issue_approval(approval(not_after=T0 + MAX_TIME_BOX), admin), admin.public)  # exactly 7 days


def test_a_tampered_payload_is_refused(admin: AdminSigner) -> None:
    envelope = json.loads(sign_approval(approval(), admin))
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["resource"] = "telemetry:aggregates"  # widen what the approval allows
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(ApprovalSignatureError):
        verify(json.dumps(envelope).encode(), admin.public, resource="telemetry:aggregates")
    # The payloadType is signed too (PAE): changing it is caught as well.
    again = json.loads(sign_approval(approval(), admin))
    again["payloadType"] = "application/vnd.in-toto+json"
    with pytest.raises(ApprovalMalformedError, match="payloadType"):
        verify(json.dumps(again).encode(), admin.public)


def test_verification_is_over_the_received_payload_bytes(admin: AdminSigner) -> None:
    """A payload signed with other whitespace verifies as signed: nothing is re-serialised before the check."""
    a = approval()
    spaced = json.dumps(a.to_dict(), indent=1).encode()
    envelope = sign_envelope(spaced, APPROVAL_PAYLOAD_TYPE, [admin]).to_bytes()
    assert verify(envelope, admin.public).approval == a  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"payload": "", "payloadType": "x", "signatures": []}',
        b"{" + b" " * 9000 + b"}",
    ],
)
def test_a_malformed_approval_is_refused_without_a_crash(admin: AdminSigner, data: bytes) -> None:
    with pytest.raises(ApprovalMalformedError) as e:
        verify(data, admin.public)
    assert isinstance(e.value, VerificationError) and e.value.exit_code == 1


def test_an_unsigned_or_signed_non_approval_is_refused(admin: AdminSigner) -> None:
    unsigned = Envelope(payload=approval().to_bytes(), payload_type=APPROVAL_PAYLOAD_TYPE).to_bytes()
    with pytest.raises(ApprovalSignatureError, match="no signature"):
        verify(unsigned, admin.public)
    junk = sign_envelope(b'{"hello": "world"}', APPROVAL_PAYLOAD_TYPE, [admin]).to_bytes()
    with pytest.raises(ApprovalMalformedError, match="not an access approval"):
        verify(junk, admin.public)
