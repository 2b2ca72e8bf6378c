"""signed-note: the Go and C2SP vectors, round trips, and fuzzed parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import FormatError, SignatureError
from overt.tlog.note import (
    Note,
    Signature,
    generate_ed25519,
    parse_ed25519_skey,
    parse_ed25519_vkey,
    sign_note,
    verified_by,
    verify_note,
)

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_go_vector_sign_is_deterministic_and_verifies() -> None:
    signer = parse_ed25519_skey(GO_SKEY)
    verifier = parse_ed25519_vkey(GO_VKEY)
    assert signer.verifier() == verifier
    note = sign_note(GO_TEXT, signer)
    assert note.to_bytes() == (GO_TEXT + "\n" + GO_SIG).encode()
    assert verify_note(Note.from_bytes(note.to_bytes()), [verifier]) == [verifier]


def test_c2sp_example_verifies() -> None:
    v = parse_ed25519_vkey(C2SP_VKEY)
    note = Note.from_bytes(C2SP_NOTE.encode())
    assert verify_note(note, [v]) == [v]


def test_tampered_text_is_rejected() -> None:
    v = parse_ed25519_vkey(C2SP_VKEY)
    note = Note.from_bytes(C2SP_NOTE.replace("example", "exemple", 1).encode())
    with pytest.raises(SignatureError):
        verify_note(note, [v])


def test_unknown_keys_are_ignored_and_none_known_fails() -> None:
    other = generate_ed25519("example.com/foo")  # same name, different key ID
    note = Note.from_bytes(C2SP_NOTE.encode())
    assert verified_by(note, [other.verifier()]) == []
    with pytest.raises(SignatureError):
        verify_note(note, [other.verifier()])


def test_key_id_mismatch_in_vkey_is_rejected() -> None:
    with pytest.raises(FormatError):
        parse_ed25519_vkey(C2SP_VKEY.replace("530d903a", "530d903b"))


@pytest.mark.parametrize(
    "bad",
    [
        "no blank line\n— a AAAAAAA=\n".encode(),
        b"text\n\n- a AAAAAAAA\n",
        b"text\n\n\xe2\x80\x94 a notbase64!\n",
        b"text\n\n",
        b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAAA\n",
        b"\xff\xfe\n\n",
        b"text\n\n\xe2\x80\x94 a+b AAAAAAAA\n",
    ],
)
def test_malformed_notes_raise_format_error(bad: bytes) -> None:
    with pytest.raises(FormatError):
        Note.from_bytes(bad)


@given(st.binary(max_size=300))
def test_fuzz_parse_raises_only_format_error(data: bytes) -> None:
    try:
        note = Note.from_bytes(data)
    except FormatError:
        return
    assert Note.from_bytes(note.to_bytes()) == note


names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="+"), min_size=1, max_size=20
)
texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=80).map(lambda s: s + "\n")


@given(text=texts, name=names, kid=st.integers(0, 2**32 - 1), sig=st.binary(min_size=1, max_size=100))
def test_round_trip(text: str, name: str, kid: int, sig: bytes) -> None:
    note = Note(text=text, signatures=(Signature(name=name, key_id=kid, signature=sig),))
    assert Note.from_bytes(note.to_bytes()) == note
    assert Note.from_bytes(note.to_bytes()).to_bytes() == note.to_bytes()
