"""A tenant admin's key: the Ed25519 private key that signs access approvals, and its public half.

``overt residency admin-key new --out FILE`` (:func:`new_admin_key`) writes the private key to ``FILE``
(PEM PKCS#8, unencrypted, mode 0600) and its public half to ``FILE.pub`` (PEM SubjectPublicKeyInfo), never
overwriting either. The tenant gives ``FILE.pub`` to the vendor (``overt residency tenant create
--admin-key``) and keeps ``FILE``; the keyid is the SHA-256 of the public key's DER, as
:class:`overt.residency.tenants.AdminKey` computes it. Encrypted keys and keys on tokens are not supported.

Owns the key files. Approvals themselves are :mod:`overt.residency.approvals`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from overt.errors import FormatError, UsageError
from overt.files import read_regular_file
from overt.residency.tenants import AdminKey

MAX_KEY_FILE = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSigner:
    """The tenant admin's private key, which signs approvals (:func:`overt.residency.approvals.sign_approval`)."""

    private_key: Ed25519PrivateKey
    public: AdminKey

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign_raw(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @classmethod
    def of(cls, private_key: Ed25519PrivateKey) -> AdminSigner:
        pem = private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return cls(private_key=private_key, public=AdminKey.from_pem(pem))


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAdminKey:
    """What ``overt residency admin-key new`` wrote: the private key, its public half, and the keyid."""

    private: Path
    public: Path
    keyid: str

    def to_dict(self) -> dict[str, str]:
        return {"private_key": str(self.private), "public_key": str(self.public), "keyid": self.keyid}


def public_key_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def new_admin_key(out: Path) -> NewAdminKey:
    """Write a new Ed25519 private key to ``out`` (PEM PKCS#8, unencrypted, mode 0600) and its public half
    to ``out.pub``; neither file is ever overwritten.

    Raises:
        UsageError: either file exists already, or the directory cannot be written.
    """
    pub = public_key_path(out)
    for path in (out, pub):
        if os.path.lexists(path):
            raise UsageError(f"{path} exists already; an admin key is never overwritten")
    signer = AdminSigner.of(Ed25519PrivateKey.generate())
    secret = signer.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    _create_new(out, secret, mode=0o600)
    try:
        _create_new(pub, signer.public.pem.encode(), mode=0o644)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return NewAdminKey(private=out, public=pub, keyid=signer.keyid)


def _create_new(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to a temp file and link it to ``path``, which must not exist: whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # whatever the umask says
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    except FileExistsError as e:
        raise UsageError(f"{path} exists already; an admin key is never overwritten") from e
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from e
    finally:
        tmp.unlink(missing_ok=True)


def load_admin_signer(path: Path) -> AdminSigner:
    """The admin private key in ``path`` (as :func:`new_admin_key` writes it).

    Raises:
        UsageError: the file cannot be read. FormatError: it is not an unencrypted Ed25519 private key in PEM.
    """
    data = read_regular_file(path, limit=MAX_KEY_FILE)
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError as e:
        raise FormatError(f"{path} is an encrypted private key; overt reads only unencrypted PEM") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise FormatError(f"{path} is not a PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise FormatError(f"{path} is not an Ed25519 private key")
    return AdminSigner.of(key)


def load_admin_key(path: Path) -> AdminKey:
    """An admin public key from a PEM file (``FILE.pub``): the key a customer pins."""
    try:
        return AdminKey.from_pem(read_regular_file(path, limit=MAX_KEY_FILE))
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from e
