"""The tenant's side of the telemetry API: send a batch, read the tenant's aggregates (HTTP, httpx).

What an endpoint or a customer's script runs (``overt residency send`` and ``overt residency aggregates``).
The server's answer is checked before it is believed: a 200 must be the JSON object the API promises, at
most :data:`MAX_ANSWER` bytes; any other status becomes the error of its meaning, with the server's
``error`` text: 401/403/409/421/429 a :class:`~overt.errors.PolicyError` (exit 1), 400/413/415 a
:class:`~overt.errors.FormatError`, 5xx and network faults a :class:`~overt.errors.TransportError`
(``Retry-After`` kept as ``retry_after``). Owns no server logic.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from overt import jsonio
from overt.errors import Error, FormatError, PolicyError, TransportError
from overt.residency.ingest import Landed
from overt.residency.tokens import parse_token

MAX_ANSWER = 16 << 20
_POLICY = {401, 403, 409, 421, 429}
_FORMAT = {400, 413, 415}


def read_token(text: str) -> str:
    """The API token in a token file's text (surrounding whitespace dropped), checked for its form."""
    token = text.strip()
    parse_token(token)
    return token


def _answer(response: httpx.Response, what: str) -> dict[str, Any]:
    body = response.content
    if response.status_code == 200:
        if len(body) > MAX_ANSWER:
            raise TransportError(f"the server's answer to {what} is larger than {MAX_ANSWER} bytes")
        return jsonio.load_object(body, f"the server's answer to {what}", max_size=MAX_ANSWER)
    try:
        message = str(jsonio.load_object(body[:65536], "error").get("error", ""))[:1000]
    except FormatError:
        message = ""
    said = f"the server refused {what} ({response.status_code}): {message or response.reason_phrase}"
    evidence: dict[str, Any] = {"status": response.status_code}
    retry = response.headers.get("retry-after", "")
    if retry.isdigit():
        evidence["retry_after"] = int(retry)
        said += f"; retry after {retry} s"
    error: type[Error] = (
        PolicyError
        if response.status_code in _POLICY
        else FormatError
        if response.status_code in _FORMAT
        else TransportError
    )
    raise error(said, **evidence)


def _request(method: str, url: str, *, what: str, **kw: Any) -> dict[str, Any]:
    try:
        with httpx.Client(timeout=60) as http:
            return _answer(http.request(method, url, **kw), what)
    except httpx.HTTPError as e:
        raise TransportError(f"cannot reach {url} for {what}: {e}") from e


def send_batch(url: str, token: str, raw: bytes) -> Landed:
    """POST ``raw`` to ``url``/v1/telemetry; where it landed."""
    found = _request(
        "POST",
        url.rstrip("/") + "/v1/telemetry",
        what="the batch",
        content=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        return Landed(
            tenant=jsonio.req_str(found, "tenant", "answer"),
            jurisdiction=jsonio.req_str(found, "jurisdiction", "answer"),
            batch_id=jsonio.req_str(found, "batch_id", "answer"),
            events=int(found["events"]),
            duplicate=bool(found["duplicate"]),
            sha256=jsonio.req_str(found, "sha256", "answer"),
        )
    except (KeyError, TypeError, ValueError, FormatError) as e:
        raise TransportError(f"the server's answer to the batch is not where it landed: {e}") from e


def fetch_aggregates(
    url: str, token: str, *, since: date | None = None, until: date | None = None
) -> dict[str, Any]:
    """GET ``url``/v1/aggregates for the token's tenant: the server's JSON answer."""
    params = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
    found = _request(
        "GET",
        url.rstrip("/") + "/v1/aggregates",
        what="the aggregates",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )
    if not isinstance(found.get("aggregates"), list):
        raise TransportError("the server's answer holds no aggregates list")
    return found
