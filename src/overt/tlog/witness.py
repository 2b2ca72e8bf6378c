"""C2SP tlog-witness: the witness state machine (``add-checkpoint``) and the client a log uses to call it.

:class:`Witness` takes request bodies as bytes and answers signature lines or raises :class:`WitnessRefusal`
with the HTTP status the spec assigns. It persists its view of each log atomically, under a lock, before
answering (tlog-witness §add-checkpoint, the rollback race). The HTTP edge is :mod:`overt.server.witness`.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from overt.atomic import atomic_write
from overt.errors import ConsistencyError, Error, FormatError, SignatureError, StorageError, TransportError
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.merkle import EMPTY_ROOT, verify_consistency
from overt.tlog.note import Ed25519Verifier, Signature, verified_by
from overt.tlog.note import decode_b64 as _b64

MAX_REQUEST_BYTES = 1 << 16
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class WitnessRefusal(Error):
    """The witness refuses a request; ``status`` is the HTTP status code the spec requires."""

    def __init__(
        self, status: int, message: str, *, body: str | None = None, content_type: str = "text/plain"
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


class Witness:
    """A witness for a set of logs, keyed by origin; state is a JSON file written atomically."""

    def __init__(self, signer: CosignatureSigner, logs: list[Ed25519Verifier], state_path: Path) -> None:
        self.signer = signer
        self.logs: dict[str, list[Ed25519Verifier]] = {}
        for v in logs:
            self.logs.setdefault(v.name, []).append(v)
        self.state_path = state_path
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, str | int]] = {}
        if state_path.exists():
            try:
                self._state = json.loads(state_path.read_text())
            except (OSError, ValueError) as e:
                raise StorageError(f"witness state {state_path} is unreadable: {e}") from e

    def latest(self, origin: str) -> bytes | None:
        """The latest checkpoint cosigned for ``origin``, with the log's and this witness's signatures."""
        entry = self._state.get(origin)
        return None if entry is None else base64.b64decode(str(entry["checkpoint"]))

    def add_checkpoint(self, body: bytes) -> bytes:
        """Handle an add-checkpoint body; return the cosignature line(s)."""
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
        with self._lock:
            entry = self._state.get(cp.origin)
            known_size = int(entry["size"]) if entry else 0
            if req.old_size != known_size:
                raise WitnessRefusal(
                    409,
                    f"old size {req.old_size} is not the latest cosigned size {known_size}",
                    body=f"{known_size}\n",
                    content_type=SIZE_CONTENT_TYPE,
                )
            if cp.tree_size == 0 and cp.root_hash != EMPTY_ROOT:
                raise WitnessRefusal(422, "a checkpoint of size 0 must carry the empty-tree root")
            if req.old_size == 0:
                if req.proof:
                    raise WitnessRefusal(422, "a consistency proof from size 0 must be empty")
            else:
                assert entry is not None
                old_root = base64.b64decode(str(entry["root"]))
                try:
                    verify_consistency(req.old_size, cp.tree_size, old_root, cp.root_hash, req.proof)
                except (ConsistencyError, FormatError) as e:
                    raise WitnessRefusal(422, f"consistency proof does not verify: {e}") from e
            line_bytes = self.signer.sign(signed.note.text.encode())
            sig = Signature(name=self.signer.name, key_id=self.signer.key_id, signature=line_bytes)
            cosigned = signed.note.with_signatures(sig)
            new_state = dict(self._state)
            new_state[cp.origin] = {
                "size": cp.tree_size,
                "root": base64.b64encode(cp.root_hash).decode(),
                "checkpoint": base64.b64encode(cosigned.to_bytes()).decode(),
            }
            atomic_write(self.state_path, json.dumps(new_state, indent=1, sort_keys=True).encode())
            self._state = new_state
        return sig.to_line().encode()


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
        except httpx.HTTPError as e:
            raise TransportError(f"witness {self.name} at {self.url} is unreachable: {e}") from e
        if r.status_code == 409 and r.headers.get("content-type", "").startswith(SIZE_CONTENT_TYPE):
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
