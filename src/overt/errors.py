"""The one error hierarchy of overt.

Every error a user can cause or meet derives from :class:`Error` and carries a message written for that user.
The CLI catches :class:`Error` in exactly one place and prints the message without a traceback; its exit
status is the class's ``exit_code`` (README, exit codes): 1 when the evidence or a policy says no
(``VerificationError``, ``PolicyError``, ``ReproducibilityError``), 2 for everything else, which the user
fixes or retries (usage, input format, configuration, storage, transport, a failed build). The HTTP edges
answer with the family's status code (:func:`overt.server.errors.http_status`). Programmer misuse raises ``ValueError``/``RuntimeError`` instead
and is never caught.

A family says what the caller can do about the error: fix the command line (``UsageError``) or the input
(``FormatError``), distrust the evidence (``VerificationError``), retry (``TransportError``,
``StorageError``), fix the home (``ConfigError``), accept a refusal (``PolicyError``) or fix the build
(``BuildError``). A few errors are defined beside the code that raises them; the tree names their module
(under ``overt.``).

::

    Error
    ├── UsageError             the command line is wrong: an unknown option, a missing or invalid value
    ├── FormatError            malformed input: a note, checkpoint, tile, proof, policy, request body
    ├── VerificationError      well-formed input that does not verify
    │   ├── SignatureError         a signature is missing, unknown or wrong
    │   ├── InclusionError         an inclusion proof does not lead to the root
    │   ├── ConsistencyError       two tree heads are not consistent (carries both)
    │   ├── QuorumError            too few trusted cosignatures for the policy
    │   ├── PolicyChangedError     a log serves another policy than the pinned one   (tlog.trust)
    │   ├── DigestMismatch         a stored telemetry batch is not the bytes its sha256 names   (residency.stores)
    │   ├── MigrationMismatch      a migration's destination does not hold what its source holds   (residency.migration)
    │   └── ApprovalError          an access approval does not allow the access   (residency.approvals)
    │       ├── ApprovalMalformedError     not a DSSE envelope holding an access approval   (residency.approvals)
    │       ├── ApprovalSignatureError     not signed by the tenant's admin key   (residency.approvals)
    │       ├── ApprovalMismatchError      for another tenant, actor, actor country or resource   (residency.approvals)
    │       ├── ApprovalTimeError          not valid at the time of the access   (residency.approvals)
    │       │   ├── ApprovalNotYetValidError   its time box has not begun   (residency.approvals)
    │       │   └── ApprovalExpiredError       its time box is over   (residency.approvals)
    │       └── ApprovalTooLongError       its time box is longer than an approval may last   (residency.approvals)
    ├── TransportError         the network or a file source failed to deliver
    │   ├── UnpublishedError       an entry is appended but no published checkpoint covers it yet
    │   └── WitnessConflict        a witness is at another size than the log assumed (tlog.witness)
    ├── StorageError           a stored object (home, log, witness) is unreadable, damaged or unwritable
    │   ├── StaleDatabaseError     the log database is behind or forks from what it signed (tlog.guard)
    │   ├── DamagedRepository      the published TUF metadata does not verify   (distribute.state)
    │   └── TenantRecordError      the tenant directory disagrees with the main log (exit 1)   (residency.tenant_ledger)
    ├── ConfigError            the home or its configuration is missing or wrong
    │   └── MigrationBusy          another migration runs in this home   (residency.migration)
    ├── PolicyError            the request is well-formed but policy forbids it
    │   ├── AccessRefused          a staff access to a tenant's data is refused (and logged)   (residency.access)
    │   ├── AuthenticationError    a tenant's API token is malformed, unknown, revoked or wrong   (residency.tokens)
    │   ├── BatchConflict          another body under a telemetry batch_id already stored   (residency.stores)
    │   ├── RateLimited            over a rate limit (a tenant's, or failed authentications)   (residency.ratelimit)
    │   ├── TenantMigrating        a tenant's data is being migrated: retry later   (residency.ingest)
    │   └── RoutingError           a read or write of a tenant's data would cross a jurisdiction   (residency.router)
    │       ├── CrossJurisdictionError     it names another jurisdiction than the tenant's home   (residency.router)
    │       ├── NotServedHere              this process does not serve the tenant's home   (residency.router)
    │       └── StoreStampError            the home's store is stamped for another jurisdiction   (residency.router)
    ├── BuildError             a build ran and failed: a step, a timeout, a missing or oversized output
    │   └── ReproducibilityError   two builds of one source gave different outputs (carries the report)
    └── WitnessRefusal         a witness refuses a request with the tlog-witness status   (tlog.witness)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BuildError",
    "ConfigError",
    "ConsistencyError",
    "Error",
    "FormatError",
    "InclusionError",
    "PolicyError",
    "QuorumError",
    "ReproducibilityError",
    "SignatureError",
    "StorageError",
    "TransportError",
    "UnpublishedError",
    "UsageError",
    "VerificationError",
]


class Error(Exception):
    """Base of every user-facing overt error. ``str(err)`` is the message for the user.

    ``exit_code`` is the CLI's exit status for the error (README, exit codes): 2, an operational error,
    unless a family says the evidence or a policy refused (1).
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, **evidence: Any) -> None:
        super().__init__(message)
        self.message = message
        self.evidence: dict[str, Any] = evidence

    def __str__(self) -> str:
        return self.message


class UsageError(Error):
    """The command line is wrong: an unknown command or option, a missing argument, a value out of range."""

    exit_code: ClassVar[int] = 2


class FormatError(Error):
    """Input is malformed: it cannot be parsed as the format it claims to be."""


class VerificationError(Error):
    """Input is well-formed but does not verify."""

    exit_code: ClassVar[int] = 1


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
    """A stored object cannot be read or written, or is damaged: a file in a home, a log or a witness home,
    a database row, an escrowed object. The request was fine; retry once the store is repaired."""


class ConfigError(Error):
    """The overt home or its configuration is missing or invalid."""


class PolicyError(Error):
    """The request is well-formed but a policy forbids it."""

    exit_code: ClassVar[int] = 1


class BuildError(Error):
    """A build ran and failed; evidence carries the step, exit status and the log tail."""


class ReproducibilityError(BuildError):
    """Two builds of the same source and recipe produced different outputs."""

    exit_code: ClassVar[int] = 1
