"""The one error hierarchy of overt.

Every error a user can cause or meet derives from :class:`Error` and carries a message written for that user.
The CLI catches :class:`Error` in exactly one place and prints the message without a traceback. Programmer
misuse raises ``ValueError``/``RuntimeError`` instead and is never caught.

::

    Error
    ├── FormatError            malformed input: a note, checkpoint, tile, proof, policy, request body
    ├── VerificationError      well-formed input that does not verify
    │   ├── SignatureError         a signature is missing, unknown or wrong
    │   ├── InclusionError         an inclusion proof does not lead to the root
    │   ├── ConsistencyError       two tree heads are not consistent (carries both)
    │   └── QuorumError            too few trusted cosignatures for the policy
    ├── TransportError         the network or a file source failed to deliver
    │   └── UnpublishedError       an entry is appended but no published checkpoint covers it yet
    ├── StorageError           the local store failed or holds something impossible
    ├── ConfigError            the home or its configuration is missing or wrong
    ├── PolicyError            the request is well-formed but policy forbids it
    └── BuildError             a build ran and failed: a step, a timeout, a missing or oversized output
        └── ReproducibilityError   two builds of one source gave different outputs (carries the report)
"""

from __future__ import annotations

from typing import Any, ClassVar


class Error(Exception):
    """Base of every user-facing overt error. ``str(err)`` is the message for the user.

    ``exit_code`` is the CLI's exit status for the error (README, exit codes).
    """

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, **evidence: Any) -> None:
        super().__init__(message)
        self.message = message
        self.evidence: dict[str, Any] = evidence

    def __str__(self) -> str:
        return self.message


class FormatError(Error):
    """Input is malformed: it cannot be parsed as the format it claims to be."""


class VerificationError(Error):
    """Input is well-formed but does not verify."""


class SignatureError(VerificationError):
    """A required signature is missing, or a signature by a known key is invalid."""


class InclusionError(VerificationError):
    """An inclusion proof does not bind the leaf to the root."""


class ConsistencyError(VerificationError):
    """Two tree heads cannot both be views of one append-only log. Evidence carries both."""


class QuorumError(VerificationError):
    """A checkpoint lacks the witness cosignatures its policy requires."""


class TransportError(Error):
    """A remote or file source did not deliver what was asked (network, 404, over-size)."""


class UnpublishedError(TransportError):
    """An entry is durably appended, but the checkpoint covering it could not be published (witness quorum
    unmet, or the log server answered 503). Nothing that depends on it may be called logged yet."""

    exit_code: ClassVar[int] = 2


class StorageError(Error):
    """The local store failed, or holds data that contradicts itself."""


class ConfigError(Error):
    """The overt home or its configuration is missing or invalid."""


class PolicyError(Error):
    """The request is well-formed but a policy forbids it."""


__all__ = [
    "ConfigError",
    "ConsistencyError",
    "Error",
    "FormatError",
    "InclusionError",
    "PolicyError",
    "QuorumError",
    "SignatureError",
    "StorageError",
    "TransportError",
    "UnpublishedError",
    "VerificationError",
]


class BuildError(Error):
    """A build ran and failed; evidence carries the step, exit status and the log tail."""


class ReproducibilityError(BuildError):
    """Two builds of the same source and recipe produced different outputs."""
