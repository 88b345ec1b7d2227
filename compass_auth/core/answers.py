"""The HTTP answer to a rejected request, framework-neutral: status, headers and JSON body.

One function builds what every adapter sends for an ``AuthError``: the Tornado handler
(``handler.AuthenticatedHandler.send_auth_error``) and the ASGI adapter (``compass_auth.asgi``)
both write out the ``Answer`` built here, so a 401, 403 or 503 is the same bytes whichever
framework serves it (tests/test_asgi_parity.py compares them).

* 401/403/400: ``WWW-Authenticate: Bearer realm="..."`` with the RFC 6750 §3.1 ``error`` and
  ``error_description`` when the error has a code (none for a missing token, §3.1).
* 503: ``Retry-After`` (seconds, from the authenticator: what the API server asked, or until the
  next discovery attempt) instead of a challenge.
* Always ``Cache-Control: no-store`` and a JSON body ``{"error", "error_description", "reason"}``.

``too_many_connections`` is the one answer that is not an ``AuthError``'s: the 429 of a WebSocket
handshake whose caller holds its cap of connections.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AuthError

#: The Content-Type of every JSON answer (Tornado's own for ``finish(dict)``).
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
#: The reason code of a WebSocket handshake refused at the caller's cap (``too_many_connections``).
CALLER_LIMIT_REASON = "websocket_caller_limit"


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP answer: what an adapter writes, unchanged."""

    status: int
    #: Header names as sent (``Content-Type`` among them), in a stable order.
    headers: tuple[tuple[str, str], ...]
    body: bytes


def error_body(error: AuthError) -> dict[str, str]:
    """The JSON body of a rejection: OAuth-style fields plus our stable reason code."""
    if error.error_code is not None:
        code = error.error_code
    elif error.outcome == "unavailable":
        code = "temporarily_unavailable"  # RFC 6749 §4.1.2.1
    else:
        code = "unauthorized"
    return {"error": code, "error_description": error.description, "reason": error.reason}


def challenge(error: AuthError, realm: str) -> str:
    """The ``WWW-Authenticate`` value for ``error`` (RFC 6750 §3)."""
    value = f'Bearer realm="{realm}"'
    if error.error_code is not None:
        value += f', error="{error.error_code}", error_description="{quoted(error.description)}"'
    return value


def rejection(error: AuthError, realm: str, retry_after: Callable[[AuthError], int]) -> Answer:
    """The answer to a request refused with ``error``. ``retry_after`` is asked only for a 503
    (``Authenticator.retry_after``: it reads the key cache's schedule)."""
    headers: tuple[tuple[str, str], ...]
    if error.outcome == "unavailable":
        headers = (("Retry-After", str(retry_after(error))),)
    else:
        headers = (("WWW-Authenticate", challenge(error, realm)),)
    return Answer(
        error.status,
        (("Cache-Control", "no-store"), *headers, ("Content-Type", JSON_CONTENT_TYPE)),
        json.dumps(error_body(error)).encode(),
    )


def too_many_connections(retry_after: int) -> Answer:
    """The answer to a WebSocket handshake of a caller that already holds its cap of connections
    (``AUTH_WEBSOCKET_MAX_PER_CALLER``, docs/websocket.md#a-memory-budget): 429 with
    ``Retry-After``, before the upgrade; the body of ``AuthenticatedWebSocketHandler.prepare``
    (tests/asgi/test_asgi_websocket_cap.py compares the two)."""
    return Answer(
        429,
        (("Cache-Control", "no-store"), ("Retry-After", str(retry_after)),
         ("Content-Type", JSON_CONTENT_TYPE)),
        json.dumps({"error": "too_many_connections",
                    "error_description": "too many WebSocket connections for this caller",
                    "reason": CALLER_LIMIT_REASON}).encode(),
    )


def quoted(text: str) -> str:
    """``text`` fit for a quoted-string (RFC 6750 §3): no quotes, backslashes or controls."""
    return "".join(ch for ch in text if ch.isprintable() and ch not in '"\\')
