"""C2SP tlog-witness: the witness state machine (``add-checkpoint``), its home on disk, and the log's client.

:class:`Witness` takes request bodies as bytes and answers signature lines or raises :class:`WitnessRefusal`
with the HTTP status and the exact Content-Type the spec assigns. It persists its view of each log atomically,
under a lock, before answering (tlog-witness §add-checkpoint, the rollback race).

A witness home holds ``witness.skey``, ``witness.toml`` (the vkeys of the logs it follows) and ``state.json``.
:func:`load_witness` takes an exclusive ``flock`` on ``witness.lock`` before it reads the state, and the
returned :class:`Witness` holds it until :meth:`Witness.close` or until the process dies (the kernel drops
it then, so a crash never leaves it stale). Two processes serving one home would each cosign their own fork
of a log with one key: the split view a witness exists to prevent.

The HTTP edge is :mod:`overt.server.witness`; the commands are in :mod:`overt.cli.witness`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import threading
import tomllib
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from overt.atomic import atomic_write, fsync_dirs
from overt.errors import (
    ConfigError,
    ConsistencyError,
    Error,
    FormatError,
    SignatureError,
    StorageError,
    TransportError,
)
from overt.jsonio import load_object, req_str
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.cosignature import CosignatureSigner, parse_cosignature_skey
from overt.tlog.merkle import EMPTY_ROOT, verify_consistency
from overt.tlog.note import Ed25519Verifier, Signature, check_key_name, parse_ed25519_vkey, verified_by
from overt.tlog.note import decode_b64 as _b64
from overt.writerlock import lock_directory

MAX_REQUEST_BYTES = 1 << 16
MAX_PROOF_LINES = 63
MAX_STATE_BYTES = 1 << 26
SIZE_CONTENT_TYPE = "text/x.tlog.size"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


class WitnessRefusal(Error):
    """The witness refuses a request; ``status`` is the HTTP status code the spec requires.

    ``content_type`` is the exact Content-Type header to send: clients compare the 409 one byte for byte.
    """

    def __init__(
        self, status: int, message: str, *, body: str | None = None, content_type: str = TEXT_CONTENT_TYPE
    ):
        super().__init__(message, status=status)
        self.status = status
        self.body = body if body is not None else message + "\n"
        self.content_type = content_type


@dataclass(frozen=True, slots=True, kw_only=True)
class AddCheckpointRequest:
    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> AddCheckpointRequest:
        if len(data) > MAX_REQUEST_BYTES:
            raise FormatError(f"request body is larger than {MAX_REQUEST_BYTES} bytes")
        head, sep, rest = data.partition(b"\n\n")
        if not sep:
            raise FormatError("request has no blank line before the checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError as e:
            raise FormatError("request header lines are not ASCII") from e
        first = lines[0]
        if not first.startswith("old "):
            raise FormatError("request does not start with an 'old <size>' line")
        num = first[4:]
        if not num.isdigit() or (num != "0" and num.startswith("0")):
            raise FormatError(f"old size {num[:30]!r} is not a decimal without leading zeroes")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise FormatError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof = tuple(_b64(line, "consistency proof line") for line in lines[1:])
        if any(len(p) != 32 for p in proof):
            raise FormatError("consistency proof line is not a 32-byte hash")
        return cls(old_size=int(num), proof=proof, checkpoint=rest)

    def to_bytes(self) -> bytes:
        lines = [f"old {self.old_size}"] + [base64.b64encode(p).decode() for p in self.proof]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class LogState:
    """What the witness last cosigned for one log: size, root and the cosigned checkpoint note."""

    size: int
    root_hash: bytes
    checkpoint: bytes

    @classmethod
    def from_json(cls, origin: str, obj: Any) -> LogState:
        what = f"entry for {origin!r}"
        if not isinstance(obj, dict):
            raise FormatError(f"{what} is not an object")
        size = obj.get("size")
        if type(size) is not int or size < 0:
            raise FormatError(f"{what} has no non-negative integer 'size'")
        root = _b64(req_str(obj, "root", what), f"{what} root")
        if len(root) != 32:
            raise FormatError(f"{what} root is not a 32-byte hash")
        return cls(size=size, root_hash=root, checkpoint=_b64(req_str(obj, "checkpoint", what), what))

    def to_json(self) -> dict[str, str | int]:
        return {
            "size": self.size,
            "root": base64.b64encode(self.root_hash).decode(),
            "checkpoint": base64.b64encode(self.checkpoint).decode(),
        }


def load_state(path: Path) -> dict[str, LogState]:
    """The witness state at ``path`` (empty if there is none yet); a corrupt file is a StorageError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise StorageError(f"witness state {path} is unreadable: {e.strerror}") from e
    try:
        obj = load_object(data, "witness state", max_size=MAX_STATE_BYTES)
        return {origin: LogState.from_json(origin, entry) for origin, entry in obj.items()}
    except FormatError as e:
        raise StorageError(
            f"witness state {path} is corrupt ({e}); repair or restore it: deleting it would let this "
            "witness cosign checkpoints inconsistent with those it has cosigned"
        ) from e


def save_state(path: Path, state: dict[str, LogState]) -> None:
    """Replace the state file atomically and durably (the rename too) before the witness answers."""
    data = {origin: entry.to_json() for origin, entry in state.items()}
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode())
    fsync_dirs([path.parent])


class Witness:
    """A witness for a set of logs, keyed by origin; state is a JSON file written atomically."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: list[Ed25519Verifier],
        state_path: Path,
        *,
        home_lock: WitnessHomeLock | None = None,
    ) -> None:
        self.signer = signer
        self.logs: dict[str, list[Ed25519Verifier]] = {}
        for v in logs:
            self.logs.setdefault(v.name, []).append(v)
        self.state_path = state_path
        self._lock = threading.Lock()
        self._home_lock = home_lock
        self._state = load_state(state_path)

    def close(self) -> None:
        """Release the home lock, if this witness holds one."""
        if self._home_lock is not None:
            self._home_lock.release()

    def __enter__(self) -> Witness:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def latest(self, origin: str) -> bytes | None:
        """The latest checkpoint cosigned for ``origin``, with the log's and this witness's signatures."""
        entry = self._state.get(origin)
        return None if entry is None else entry.checkpoint

    def add_checkpoint(self, body: bytes) -> bytes:
        """Handle an add-checkpoint body; return the cosignature line(s)."""
        req, signed = self._authenticated_request(body)
        cp = signed.checkpoint
        with self._lock:
            self._check_consistency(req, signed)
            line_bytes = self.signer.sign(signed.note.text.encode())
            sig = Signature(name=self.signer.name, key_id=self.signer.key_id, signature=line_bytes)
            cosigned = signed.note.with_signatures(sig)
            new_state = dict(self._state)
            new_state[cp.origin] = LogState(
                size=cp.tree_size, root_hash=cp.root_hash, checkpoint=cosigned.to_bytes()
            )
            save_state(self.state_path, new_state)
            self._state = new_state
        return sig.to_line().encode()

    def _authenticated_request(self, body: bytes) -> tuple[AddCheckpointRequest, SignedCheckpoint]:
        """Parse the body and check the log's signature: the 400, 404 and 403 answers."""
        try:
            req = AddCheckpointRequest.from_bytes(body)
            signed = SignedCheckpoint.from_bytes(req.checkpoint)
        except FormatError as e:
            raise WitnessRefusal(400, f"malformed request: {e}") from e
        cp = signed.checkpoint
        trusted = self.logs.get(cp.origin)
        if trusted is None:
            raise WitnessRefusal(404, f"unknown log origin {cp.origin!r}")
        try:
            if not verified_by(signed.note, trusted):
                raise WitnessRefusal(403, "checkpoint carries no signature from a trusted key for its origin")
        except SignatureError as e:
            raise WitnessRefusal(403, str(e)) from e
        if req.old_size > cp.tree_size:
            raise WitnessRefusal(400, f"old size {req.old_size} exceeds checkpoint size {cp.tree_size}")
        return req, signed

    def _check_consistency(self, req: AddCheckpointRequest, signed: SignedCheckpoint) -> None:
        """Check the request against the latest cosigned size and root: the 409 and 422 answers."""
        cp = signed.checkpoint
        entry = self._state.get(cp.origin)
        known_size = entry.size if entry else 0
        if req.old_size != known_size:
            raise WitnessRefusal(
                409,
                f"old size {req.old_size} is not the latest cosigned size {known_size}",
                body=f"{known_size}\n",
                content_type=SIZE_CONTENT_TYPE,
            )
        if cp.tree_size == 0 and cp.root_hash != EMPTY_ROOT:
            raise WitnessRefusal(422, "a checkpoint of size 0 must carry the empty-tree root")
        if entry is None or req.old_size == 0:
            if req.proof:
                raise WitnessRefusal(422, "a consistency proof from size 0 must be empty")
            return
        try:
            verify_consistency(req.old_size, cp.tree_size, entry.root_hash, cp.root_hash, req.proof)
        except (ConsistencyError, FormatError) as e:
            raise WitnessRefusal(422, f"consistency proof does not verify: {e}") from e


def _close_all(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class WitnessHomeLock:
    """Exclusive ``flock``s on ``<home>/witness.lock``, which names the holder's pid, and on the home directory
    itself (so deleting the lock file does not let a second process in); fails at once if held."""

    def __init__(self, home: Path) -> None:
        self.path = home / "witness.lock"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(f"cannot open the witness lock {self.path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise ConfigError(
                f"witness home {home} is in use by {who}, which holds the lock {self.path}; "
                "two processes on one home could cosign two forks with one key"
            ) from None
        except OSError as e:
            os.close(fd)
            raise ConfigError(f"cannot lock {self.path}: {e.strerror}") from e
        try:
            dir_fd = lock_directory(home)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"witness home {home} is in use by another process (its lock file {self.path} was replaced); "
                "two processes on one home could cosign two forks with one key"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        # Closing the descriptors drops the flocks.
        self._release = weakref.finalize(self, _close_all, fd, dir_fd)

    def release(self) -> None:
        self._release()


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessIdentity:
    """A witness home and the key it cosigns with: the name and vkey a log's policy lists it by."""

    home: Path
    name: str
    vkey: str

    @classmethod
    def of(cls, home: Path, signer: CosignatureSigner) -> WitnessIdentity:
        return cls(home=home, name=signer.name, vkey=signer.verifier().vkey())

    def to_dict(self) -> dict[str, object]:
        return {"home": str(self.home), "name": self.name, "vkey": self.vkey}


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowedLog:
    """A log a witness home follows (:func:`trust_log`): its origin and the vkey it is trusted by."""

    home: Path
    origin: str
    vkey: str

    def to_dict(self) -> dict[str, object]:
        return {"home": str(self.home), "origin": self.origin, "vkey": self.vkey}


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessEndpoint:
    """A witness being served: its name, its base URL and the origins of the logs it follows."""

    witness: str
    url: str
    following: tuple[str, ...]

    @classmethod
    def of(cls, witness: Witness, url: str) -> WitnessEndpoint:
        return cls(witness=witness.signer.name, url=url, following=tuple(sorted(witness.logs)))

    def to_dict(self) -> dict[str, object]:
        return {"witness": self.witness, "url": self.url, "following": list(self.following)}


def init_witness(home: Path, name: str) -> CosignatureSigner:
    """Create a witness home with a fresh cosignature/v1 key, or return the key of the existing one."""
    check_key_name(name)
    if (home / "witness.skey").exists():
        return _read_signer(home)
    home.mkdir(parents=True, exist_ok=True)
    signer = CosignatureSigner.create(name, secrets.token_bytes(32))
    atomic_write(home / "witness.skey", (signer.skey() + "\n").encode(), mode=0o600)
    atomic_write(home / "witness.vkey", (signer.verifier().vkey() + "\n").encode())
    atomic_write(home / "witness.toml", b"logs = []\n")
    return signer


def trust_log(home: Path, vkey: str) -> Ed25519Verifier:
    """Add a log's vkey to ``witness.toml``; a running witness takes it up when restarted."""
    verifier = parse_ed25519_vkey(vkey)
    logs = list(dict.fromkeys([*_read_log_vkeys(home), vkey]))
    atomic_write(
        home / "witness.toml", ("logs = [\n" + "".join(f'  "{v}",\n' for v in logs) + "]\n").encode()
    )
    return verifier


def load_witness(home: Path) -> Witness:
    """Open the witness at ``home``, holding its lock for the life of the returned witness."""
    signer = _read_signer(home)
    logs = [parse_ed25519_vkey(v) for v in _read_log_vkeys(home)]
    lock = WitnessHomeLock(home)
    try:
        return Witness(signer, logs, home / "state.json", home_lock=lock)
    except BaseException:
        lock.release()
        raise


def _read_home_file(home: Path, name: str) -> str:
    path = home / name
    try:
        return path.read_text()
    except FileNotFoundError as e:
        raise ConfigError(f"{home} is not a witness home (no {name}); run 'overt witness init'") from e
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text") from e


def _read_signer(home: Path) -> CosignatureSigner:
    try:
        return parse_cosignature_skey(_read_home_file(home, "witness.skey"))
    except FormatError as e:
        raise ConfigError(f"{home / 'witness.skey'}: {e}") from e


def _read_log_vkeys(home: Path) -> list[str]:
    """The log vkeys in ``witness.toml``, each checked to parse."""
    path = home / "witness.toml"
    try:
        logs = tomllib.loads(_read_home_file(home, "witness.toml")).get("logs", [])
        if not isinstance(logs, list) or not all(isinstance(v, str) for v in logs):
            raise ConfigError(f"{path}: 'logs' must be a list of log vkeys")
        for v in logs:
            parse_ed25519_vkey(v)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
    except FormatError as e:
        raise ConfigError(f"{path}: {e}") from e
    return logs


class WitnessClient:
    """Calls one witness's add-checkpoint, learning its latest size from a 409 when it does not know it."""

    def __init__(self, name: str, url: str, http: httpx.Client | None = None) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.http = http or httpx.Client(timeout=10.0)
        self.known_size: int | None = None

    def add_checkpoint(self, old_size: int, proof: list[bytes], checkpoint: bytes) -> list[Signature]:
        body = AddCheckpointRequest(old_size=old_size, proof=tuple(proof), checkpoint=checkpoint).to_bytes()
        try:
            r = self.http.post(self.url, content=body)
        except httpx.InvalidURL as e:  # from a hand-edited policy: this witness fails, not the publication
            raise TransportError(f"witness {self.name} has an invalid URL {self.url}: {e}") from e
        except httpx.HTTPError as e:
            raise TransportError(f"witness {self.name} at {self.url} is unreachable: {e}") from e
        media_type = r.headers.get("content-type", "").split(";")[0].strip().lower()
        if r.status_code == 409 and media_type == SIZE_CONTENT_TYPE:
            text = r.text.strip()
            if not text.isdigit():
                raise TransportError(f"witness {self.name} answered 409 without a size")
            self.known_size = int(text)
            raise WitnessConflict(self.known_size)
        if r.status_code != 200:
            raise TransportError(
                f"witness {self.name} refused the checkpoint: {r.status_code} {r.text.strip()[:200]}",
                status=r.status_code,
            )
        if len(r.content) > MAX_REQUEST_BYTES:
            raise TransportError(f"witness {self.name} answered more than {MAX_REQUEST_BYTES} bytes")
        try:
            lines = r.content.decode("utf-8").splitlines()
            return [Signature.from_line(line) for line in lines if line]
        except (UnicodeDecodeError, FormatError) as e:
            raise TransportError(f"witness {self.name} answered malformed signature lines: {e}") from e


class WitnessConflict(TransportError):
    """The witness's latest size differs from the one the client assumed (HTTP 409)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"witness is at size {size}", size=size)
        self.size = size
