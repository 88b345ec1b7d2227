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
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AuthError

#: The Content-Type of every JSON answer (Tornado's own for ``finish(dict)``).
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"


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


def quoted(text: str) -> str:
    """``text`` fit for a quoted-string (RFC 6750 §3): no quotes, backslashes or controls."""
    return "".join(ch for ch in text if ch.isprintable() and ch not in '"\\')
