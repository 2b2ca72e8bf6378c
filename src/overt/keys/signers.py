"""Signers behind securesystemslib private-key URIs: ``file2:`` software keys and ``hsm:`` PKCS#11 tokens.

``file2:<path>`` is securesystemslib's CryptoSigner (a PEM PKCS#8 key; relative paths resolve against the
home's ``keys/`` directory). ``hsm:<id>?label=<token>`` is securesystemslib's HSMSigner for ECDSA P-256; it
has no EdDSA, so Ed25519 keys on a token (checkpoint keys) sign through :class:`HSMEd25519Signer`, which uses
the same python-pkcs11 library and the PKCS#11 v3 ``CKM_EDDSA`` mechanism. Key generation on a token is here
too, because securesystemslib only imports keys that already exist.

Owns URIs, PIN lookup and PKCS#11 sessions. Does not decide what a key may sign (:mod:`overt.keys.jurisdiction`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib import parse

import pkcs11
import pkcs11.exceptions
import pkcs11.util.ec
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.exceptions import UnsupportedLibraryError
from securesystemslib.signer import CryptoSigner, HSMSigner, Signature, Signer, SSlibKey

from overt.atomic import atomic_write
from overt.errors import ConfigError, FormatError, UsageError
from overt.files import read_regular_file
from overt.tlog.note import ALG_ED25519, Ed25519Verifier, key_id

ED25519_OID = "1.3.101.112"
DEFAULT_PIN_ENV = "OVERT_HSM_PIN"
MAX_PEM_FILE = 1 << 16  # a PEM private key is a few hundred bytes
_HSM_ERRORS = (pkcs11.exceptions.PKCS11Error, ValueError, UnsupportedLibraryError, OSError)


@dataclass(frozen=True, slots=True, kw_only=True)
class HsmConfig:
    """Where the PKCS#11 token is: the module (.so), the token label and the environment variable with the PIN."""

    module: str = ""
    token: str = ""
    pin_env: str = DEFAULT_PIN_ENV

    def pin(self) -> str:
        pin = os.environ.get(self.pin_env)
        if not pin:
            raise ConfigError(f"the HSM user PIN is not set: export {self.pin_env}")
        return pin

    def token_handle(self, label: str | None = None) -> pkcs11.Token:
        if not self.module:
            raise ConfigError("no PKCS#11 module configured: set [hsm] module in config.toml")
        if not Path(self.module).exists():
            raise ConfigError(
                f"PKCS#11 module {self.module} does not exist (is softhsm2 or the vendor library installed?)"
            )
        # securesystemslib's HSMSigner reads the module path from PYKCS11LIB.
        os.environ["PYKCS11LIB"] = self.module
        try:
            return pkcs11.lib(self.module).get_token(token_label=label or self.token or None)
        except _HSM_ERRORS as e:
            raise ConfigError(
                f"cannot open PKCS#11 token {label or self.token!r}: {type(e).__name__} {e}"
            ) from e


class KeySigner:
    """One key that signs raw bytes: a securesystemslib Signer with errors turned into overt's."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    @property
    def keyid(self) -> str:
        return self.signer.public_key.keyid

    @property
    def public_key(self) -> SSlibKey:
        key = self.signer.public_key
        assert isinstance(key, SSlibKey)
        return key

    def sign_raw(self, message: bytes) -> bytes:
        try:
            return bytes.fromhex(self.signer.sign(message).signature)
        except _HSM_ERRORS as e:
            raise ConfigError(f"key {self.keyid[:16]} failed to sign: {type(e).__name__} {e}") from e


class NoteSigner:
    """An Ed25519 key as a C2SP signed-note signer (checkpoints), whatever holds the private key."""

    def __init__(self, name: str, signer: KeySigner) -> None:
        key = signer.public_key
        if key.keytype != "ed25519":
            raise ConfigError(f"checkpoint keys must be Ed25519, not {key.keytype}")
        self.name = name
        self.public_key = bytes.fromhex(key.keyval["public"])
        self.key_id = key_id(name, ALG_ED25519, self.public_key)
        self._signer = signer

    def sign(self, text: bytes) -> bytes:
        return self._signer.sign_raw(text)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier.create(self.name, self.public_key)


# --- software keys ----------------------------------------------------------------------------------------


def generate_file_key(keys_dir: Path, keytype: str) -> tuple[str, SSlibKey]:
    """A new software key written to ``keys_dir/<keyid>.pem`` (mode 0600); returns its ``file2:`` URI."""
    if keytype == "ed25519":
        signer = CryptoSigner.generate_ed25519()
    elif keytype == "ecdsa":
        signer = CryptoSigner.generate_ecdsa()
    else:
        raise ConfigError(f"unsupported key type {keytype!r}; use ed25519 or ecdsa")
    key = signer.public_key
    keys_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(keys_dir / f"{key.keyid}.pem", signer.private_bytes, mode=0o600)
    return f"file2:{key.keyid}.pem", key


def import_file_key(path: Path) -> tuple[str, SSlibKey]:
    """The public key of a PEM PKCS#8 private key file, and its ``file2:`` URI (absolute path)."""
    data = read_regular_file(path, limit=MAX_PEM_FILE)
    try:
        private = load_pem_private_key(data, None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise FormatError(f"{path} is not an unencrypted PEM private key: {e}") from e
    if isinstance(private, EllipticCurvePrivateKey) and not isinstance(private.curve, SECP256R1):
        raise FormatError(f"{path}: ECDSA keys must be on P-256, not {private.curve.name}")
    if not isinstance(private, Ed25519PrivateKey | EllipticCurvePrivateKey):
        raise FormatError(f"{path}: only Ed25519 and ECDSA P-256 keys are supported")
    return f"file2:{path.resolve()}", SSlibKey.from_crypto(private.public_key())


# --- PKCS#11 ----------------------------------------------------------------------------------------------


def _hsm_uri(hsm_keyid: int, token_label: str) -> str:
    return f"hsm:{hsm_keyid}?{parse.urlencode({'label': token_label})}"


def parse_hsm_uri(uri: str) -> tuple[int, str | None]:
    parsed = parse.urlparse(uri)
    if parsed.scheme != "hsm":
        raise FormatError(f"{uri!r} is not an hsm: URI")
    try:
        hsm_keyid = int(parsed.path) if parsed.path else HSMSigner.SCHEME_KEYID
    except ValueError as e:
        raise FormatError(f"{uri!r}: the key id after 'hsm:' must be an integer") from e
    return hsm_keyid, dict(parse.parse_qsl(parsed.query)).get("label")


def _ed25519_from_point(point: bytes) -> bytes:
    # CKA_EC_POINT of an Edwards key is a DER OCTET STRING (04 20 || key); some tokens store the raw 32 bytes.
    if len(point) == 34 and point[:2] == b"\x04\x20":
        return point[2:]
    if len(point) == 32:
        return point
    raise FormatError("the token's Ed25519 public key is neither raw nor a DER octet string")


def _ed25519_key(raw: bytes) -> SSlibKey:
    return SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(raw))


REQUIRED_MECHANISMS = {
    "ecdsa": (pkcs11.Mechanism.EC_KEY_PAIR_GEN, pkcs11.Mechanism.ECDSA),
    "ed25519": (pkcs11.Mechanism.EC_EDWARDS_KEY_PAIR_GEN, pkcs11.Mechanism.EDDSA),
}


def missing_mechanisms(keytype: str, available: set[pkcs11.Mechanism]) -> list[str]:
    """The PKCS#11 mechanisms a key type needs that the token lacks (Ed25519 needs PKCS#11 v3 EdDSA)."""
    if keytype not in REQUIRED_MECHANISMS:
        raise ConfigError(f"unsupported key type {keytype!r}; use ed25519 or ecdsa")
    return [f"CKM_{m.name}" for m in REQUIRED_MECHANISMS[keytype] if m not in available]


def hsm_generate(cfg: HsmConfig, keytype: str, label: str) -> tuple[str, SSlibKey]:
    """Generate a key pair on the token (private key sensitive and non-extractable)."""
    token = cfg.token_handle()
    try:
        missing = missing_mechanisms(keytype, set(token.slot.get_mechanisms()))
    except _HSM_ERRORS as e:
        raise ConfigError(f"cannot list the token's mechanisms: {type(e).__name__} {e}") from e
    if missing:
        hint = " (keep the log key in a file: --log-key file)" if keytype == "ed25519" else ""
        raise ConfigError(
            f"token {token.label!r} cannot make {keytype} keys: it lacks {', '.join(missing)}{hint}"
        )
    try:
        with token.open(user_pin=cfg.pin(), rw=True) as session:
            used = {
                int.from_bytes(k[pkcs11.Attribute.ID], "big")
                for k in session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY})
            }
            hsm_keyid = max(used, default=0) + 1
            ident = pkcs11.util.biginteger(hsm_keyid)
            if keytype == "ecdsa":
                curve = pkcs11.util.ec.encode_named_curve_parameters("secp256r1")
                params = session.create_domain_parameters(
                    pkcs11.KeyType.EC, {pkcs11.Attribute.EC_PARAMS: curve}, local=True
                )
            elif keytype == "ed25519":
                curve = pkcs11.util.ec.encode_named_curve_parameters(ED25519_OID)
                params = session.create_domain_parameters(
                    pkcs11.KeyType.EC_EDWARDS, {pkcs11.Attribute.EC_PARAMS: curve}, local=True
                )
            else:
                raise ConfigError(f"unsupported key type {keytype!r}; use ed25519 or ecdsa")
            params.generate_keypair(store=True, id=ident, label=label)
    except _HSM_ERRORS as e:
        raise ConfigError(f"key generation on the token failed: {type(e).__name__} {e}") from e
    return hsm_import(cfg, hsm_keyid)


def hsm_import(cfg: HsmConfig, hsm_keyid: int) -> tuple[str, SSlibKey]:
    """The public key of the token's key pair ``hsm_keyid`` and its ``hsm:`` URI."""
    token = cfg.token_handle()
    ident = pkcs11.util.biginteger(hsm_keyid)
    try:
        with token.open(user_pin=cfg.pin()) as session:
            found = list(
                session.get_objects(
                    {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY, pkcs11.Attribute.ID: ident}
                )
            )
            if len(found) != 1:
                raise ConfigError(f"token {token.label!r} holds {len(found)} public keys with id {hsm_keyid}")
            key_type = found[0][pkcs11.Attribute.KEY_TYPE]
            if key_type == pkcs11.KeyType.EC_EDWARDS:
                return _hsm_uri(hsm_keyid, token.label), _ed25519_key(
                    _ed25519_from_point(found[0][pkcs11.Attribute.EC_POINT])
                )
    except _HSM_ERRORS as e:
        raise ConfigError(f"cannot read key {hsm_keyid} from the token: {type(e).__name__} {e}") from e
    if key_type != pkcs11.KeyType.EC:
        raise ConfigError(
            f"key {hsm_keyid} on the token is {key_type}; only EC P-256 and Ed25519 are supported"
        )
    try:
        uri, key = HSMSigner.import_(hsm_keyid, token.label, lambda _: cfg.pin())
    except _HSM_ERRORS as e:
        raise ConfigError(f"cannot import key {hsm_keyid} from the token: {type(e).__name__} {e}") from e
    if key.scheme != "ecdsa-sha2-nistp256":
        raise ConfigError(f"key {hsm_keyid} on the token uses {key.scheme}; only P-256 is supported")
    return uri, key


class HSMEd25519Signer(Signer):
    """Ed25519 on a PKCS#11 token with CKM_EDDSA (PKCS#11 v3.0 §2.3.14), which securesystemslib lacks."""

    def __init__(self, cfg: HsmConfig, hsm_keyid: int, token_label: str | None, public_key: SSlibKey) -> None:
        self.cfg = cfg
        self.hsm_keyid = hsm_keyid
        self.token_label = token_label
        self._public_key = public_key

    @property
    def public_key(self) -> SSlibKey:
        return self._public_key

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: object, secrets_handler: object = None
    ) -> Signer:
        raise NotImplementedError("use overt.keys.signers.load_signer")

    def sign(self, payload: bytes) -> Signature:
        token = self.cfg.token_handle(self.token_label)
        with token.open(user_pin=self.cfg.pin()) as session:
            key = session.get_key(
                pkcs11.ObjectClass.PRIVATE_KEY,
                pkcs11.KeyType.EC_EDWARDS,
                id=pkcs11.util.biginteger(self.hsm_keyid),
            )
            if not isinstance(key, pkcs11.SignMixin):
                raise ConfigError(f"HSM key {self.hsm_keyid} cannot sign")
            raw = key.sign(payload, mechanism=pkcs11.Mechanism.EDDSA)
        return Signature(self.public_key.keyid, bytes(raw).hex())


def load_signer(uri: str, public_key: SSlibKey, *, keys_dir: Path, hsm: HsmConfig) -> KeySigner:
    """The signer behind ``uri`` for ``public_key``; checks that the private key matches."""
    scheme = uri.split(":", 1)[0]
    if scheme == "file2":
        path = Path(uri[len("file2:") :])
        if not path.is_absolute():
            path = keys_dir / path
        # Read here, not by securesystemslib's file2: loader, which reads a FIFO or /dev/zero without end.
        try:
            pem = read_regular_file(path, limit=MAX_PEM_FILE)
            signer: Signer = CryptoSigner(load_pem_private_key(pem, None), public_key)
        except UsageError as e:
            raise ConfigError(f"cannot load key {public_key.keyid[:16]}: {e}") from e
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise ConfigError(f"cannot load key {public_key.keyid[:16]} from {path}: {e}") from e
        return KeySigner(signer)
    if scheme == "hsm":
        hsm_keyid, label = parse_hsm_uri(uri)
        if public_key.keytype == "ed25519":
            return KeySigner(HSMEd25519Signer(hsm, hsm_keyid, label, public_key))
        hsm.token_handle(label)  # fail early and clearly when the module or token is missing
        try:
            return KeySigner(HSMSigner.from_priv_key_uri(uri, public_key, lambda _: hsm.pin()))
        except _HSM_ERRORS as e:
            raise ConfigError(f"cannot load HSM key {uri}: {e}") from e
    raise ConfigError(f"unsupported signer URI {uri!r}: use file2: or hsm:")
