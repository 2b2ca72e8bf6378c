"""The HTTP status code of each overt error family: the one place the edges choose it.

An edge that turns an :class:`overt.errors.Error` into an answer takes its status from :func:`http_status`
(and the message from ``str(error)``); what a family means for the caller is in :mod:`overt.errors`.

==================  ======  ================================================================
family              status  why
==================  ======  ================================================================
FormatError         400     the request is malformed
UsageError          400     the request is malformed
VerificationError   422     well-formed evidence that does not verify; tlog-witness answers a
                            consistency proof that does not verify with 422 too, so
                            ConsistencyError is 422 (its 409 means a stale old size)
PolicyError         403     a policy forbids what was asked
ConfigError         500     this server's own configuration is wrong
StorageError        503     the store cannot serve now; resending later is safe
TransportError      502     something upstream of this server failed to deliver
UnpublishedError    503     appended, but not published yet; resending later is safe
BuildError          500     the build failed on this side
any other Error     500
==================  ======  ================================================================

The most specific family wins: :class:`~overt.errors.UnpublishedError` is a TransportError but answers 503.
Errors whose status a spec fixes (:class:`overt.tlog.witness.WitnessRefusal`) carry it and are answered
with it; they never reach this table. Pure: no FastAPI here.
"""

from __future__ import annotations

from collections.abc import Mapping

from overt.errors import (
    BuildError,
    ConfigError,
    Error,
    FormatError,
    PolicyError,
    StorageError,
    TransportError,
    UnpublishedError,
    UsageError,
    VerificationError,
)

STATUS: Mapping[type[Error], int] = {
    FormatError: 400,
    UsageError: 400,
    VerificationError: 422,
    PolicyError: 403,
    ConfigError: 500,
    StorageError: 503,
    TransportError: 502,
    UnpublishedError: 503,
    BuildError: 500,
    Error: 500,
}


def http_status(error: Error) -> int:
    """The HTTP status code for ``error``: that of the nearest family in its class's MRO."""
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    raise TypeError(f"{type(error).__name__} is not an overt Error")  # unreachable for an Error
