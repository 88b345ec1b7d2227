"""``AuthenticatedWebSocketHandler``: a Tornado WebSocket that ends with its caller's token.

A bound service-account token expires (an hour by default; the kubelet replaces it long before),
but a WebSocket opened with it can stay open for days. This handler authenticates the upgrade
request like any ``AuthenticatedHandler`` and then closes the connection when the token expires::

    class Feed(AuthenticatedWebSocketHandler):
        allowed_subjects = {"system:serviceaccount:default:collector"}

        def open(self) -> None:
            self.write_message({"hello": self.identity.subject})

* **Refused before the upgrade.** ``WebSocketHandler.get`` runs after ``prepare()`` and only
  then answers 101 (tornado/websocket.py), so a refusal is the plain HTTP answer of
  ``AuthenticatedHandler`` (400/401/403/503 with its JSON body, challenge or ``Retry-After``),
  never an upgraded socket. Whatever ``AuthenticatedHandler.prepare`` checks applies here too:
  this class *is* an ``AuthenticatedHandler``, with Tornado's ``WebSocketHandler`` behind it.
* **Closed at expiry.** At ``identity.expires_at`` plus the grace period the connection is closed
  with code 1008 (policy violation, RFC 6455 §7.4.1) and the reason ``token expired``; the client
  reconnects with its current token. A token accepted within the clock-skew leeway
  (``AUTH_CLOCK_SKEW``) may be past that time already: its connection is closed at once, after
  ``open()``. An identity without an expiry (no verification path produces one; a custom path
  might) is closed at once too, with the reason ``token expiry unknown``: fail closed.
* **Counted.** Every close of an upgraded connection counts in ``auth.websocket.closes`` by who
  ended it (``token_expired``, ``client``, ``server``); an expiry close also logs one INFO line
  with the subject and the token's fingerprint.

It does NOT re-verify the token while the connection is open: a token revoked before its
``exp`` (pod deleted) keeps its connection until then. Browsers cannot send an
``Authorization`` header on a WebSocket handshake; this is for workload clients.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Literal

import tornado.websocket
from tornado.ioloop import IOLoop

from .bearer import Bearer, fingerprint, read_bearer
from .handler import AuthenticatedHandler

logger = logging.getLogger(__name__)

#: RFC 6455 §7.4.1: "an endpoint is terminating the connection because it has received a
#: message that violates its policy"; the generic code when no other one fits.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_REASON_EXPIRED = "token expired"
CLOSE_REASON_EXPIRY_UNKNOWN = "token expiry unknown"
#: Log messages operators grep for; keep them stable (docs/websocket.md).
MSG_EXPIRED = "websocket closed: token expired"
MSG_EXPIRY_UNKNOWN = "websocket closed: token expiry unknown"

#: Who ended an upgraded connection: the ``auth.reason`` of ``auth.websocket.closes``.
ClosedBy = Literal["token_expired", "expiry_unknown", "client", "server"]


class AuthenticatedWebSocketHandler(AuthenticatedHandler, tornado.websocket.WebSocketHandler):
    """A WebSocket for authenticated callers only, closed when their token expires.

    Class attributes (besides ``AuthenticatedHandler``'s, such as ``allowed_subjects``):

    * ``expiry_grace_seconds``: how long a connection may outlive its token's ``exp``; ``None``
      (the default) takes ``AUTH_WEBSOCKET_GRACE`` from the authenticator's settings.

    Write ``open``, ``on_message`` and ``on_close`` as for any ``WebSocketHandler``;
    ``self.identity`` is the caller. ``on_close`` also runs after a handshake that was refused
    or not upgraded, without ``open`` (see ``on_finish``; Tornado does the same when a client
    hangs up during ``prepare``). Do not override ``get``: it schedules the expiry close and
    counts the end of the connection (Tornado's ``get`` runs for the connection's whole life).
    ``close()`` from your code counts as a ``server`` close.
    """

    expiry_grace_seconds: ClassVar[float | None] = None

    _compass_closed_by: ClosedBy | None = None

    def get_expiry_grace(self) -> float:
        """Seconds past ``exp`` before the connection is closed; override to decide per caller."""
        if self.expiry_grace_seconds is not None:
            return self.expiry_grace_seconds
        return self.get_authenticator().settings.websocket_grace

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # prepare() has authenticated the caller (the guard AuthenticatedHandler puts on every
        # HTTP method makes sure of it). No await separates this from the 101 answer and
        # open(), so the close cannot run before the connection exists; it is cancelled when
        # Tornado's get returns, which is when the connection has ended (or was never upgraded:
        # not a WebSocket request, a foreign Origin).
        io_loop = IOLoop.current()
        expiry = io_loop.call_later(self._seconds_left(), self._close_at_expiry)
        try:
            await super().get(*args, **kwargs)
        finally:
            io_loop.remove_timeout(expiry)
            if self.get_status() == 101:
                self.get_authenticator().telemetry.websocket_closed(
                    self._compass_closed_by or "client")

    def on_finish(self) -> None:
        """After the answer to the handshake. One that was not upgraded (a refusal, a GET that is
        not a WebSocket request) ends here as a dropped connection does: ``on_close`` runs.

        Tornado calls ``on_close`` only when a connection closes, but OpenTelemetry's Tornado
        instrumentation ends a ``WebSocketHandler``'s server span there and nowhere else
        (opentelemetry-python-contrib#3498): without this, a refused handshake's span would end
        when the handler is garbage-collected, without its status, logging an ERROR
        "Failed to detach context" for every refusal. An override must call
        ``super().on_finish()``."""
        if self.get_status() != 101:
            self.on_connection_close()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (Tornado's ``close``); the first close while it is open says who
        ended it."""
        if self._compass_closed_by is None and self.ws_connection is not None:
            self._compass_closed_by = "server"
        super().close(code, reason)

    def _seconds_left(self) -> float:
        expires_at = self.identity.expires_at
        if expires_at is None:
            return 0.0
        return max(0.0, expires_at + self.get_expiry_grace() - time.time())

    def _close_at_expiry(self) -> None:
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return  # already ending: the client's close, or ours, is under way
        identity = self.identity
        unknown = identity.expires_at is None
        self._compass_closed_by = "expiry_unknown" if unknown else "token_expired"
        credential = read_bearer(self.request.headers.get_list("Authorization"), _no_key)
        token_fp = fingerprint(credential.token) if isinstance(credential, Bearer) else "none"
        # The subject and fingerprint are in the text too, for plain logging.basicConfig().
        logger.info("%s (subject=%s, token_fp=%s)", MSG_EXPIRY_UNKNOWN if unknown else MSG_EXPIRED,
                    identity.subject, token_fp,
                    extra={"subject": identity.subject, "token_fp": token_fp,
                           "expires_at": identity.expires_at,
                           "grace_seconds": self.get_expiry_grace()})
        self.close(CLOSE_POLICY_VIOLATION,
                   CLOSE_REASON_EXPIRY_UNKNOWN if unknown else CLOSE_REASON_EXPIRED)


def _no_key(token: str) -> bytes:
    return b""  # only the token is read here, no cache is asked
