"""An admitted ASGI WebSocket: its place in the caller's cap, and its close at token expiry.

What ``AuthenticatedWebSocketHandler`` does for Tornado (compass_auth/websocket.py), with its
answers, close codes, reasons, log lines and ``auth.websocket.closes`` counts:

* **A cap per caller.** Before ``websocket.accept``, ``take_slot`` counts the connection against
  its caller (the subject) in the application's ``CallerSlots`` (``Auth.websocket_slots``); a
  caller that holds ``AUTH_WEBSOCKET_MAX_PER_CALLER`` already is refused with the Tornado
  handler's 429 (``answers.too_many_connections``). ``end`` gives the place back.
* **Closed at expiry.** At ``exp`` plus the grace
period (``AUTH_WEBSOCKET_GRACE``) the connection is closed with 1008 ``token expired``; an
identity without an expiry is closed at once with ``token expiry unknown`` (fail closed).
* **Closed at revocation.** When the token's background confirmation finds it refused
(verification/revocation.py), the connection is closed with 1008 ``token revoked``.

``Lifetime`` wraps the connection's ASGI ``send`` and ``receive``: it sees the accept, the
application's own close and the client's disconnect, so it counts who ended the connection.
After it closed the connection for expiry, a ``send`` of the application raises
``WebSocketDisconnect`` (1008), as a closed connection's does in Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect

from ..core.answers import CALLER_LIMIT_REASON, too_many_connections
from ..core.bearer import Bearer, fingerprint, read_bearer
from ..core.caller_slots import CallerSlots
from ..core.identity import Identity
from ..tornado.websocket import (
    CALLER_LIMIT_RETRY_AFTER,
    CLOSE_POLICY_VIOLATION,
    CLOSE_REASON_EXPIRED,
    CLOSE_REASON_EXPIRY_UNKNOWN,
    CLOSE_REASON_REVOKED,
    MSG_EXPIRED,
    MSG_EXPIRY_UNKNOWN,
    MSG_REVOKED,
    ClosedBy,
)
from ..verification.authenticator import Authenticator
from .send import Message, Receive, Scope, Send, send_answer

#: The Tornado handler's logger, so that operators grep one logger for both adapters.
logger = logging.getLogger("compass_auth.websocket")


class Lifetime:
    """The caller's place, the expiry close and the close count of one WebSocket connection."""

    def __init__(self, authenticator: Authenticator, slots: CallerSlots, identity: Identity,
                 authorization: list[str], send: Send, receive: Receive) -> None:
        self._authenticator = authenticator
        self._slots = slots
        self._slot: str | None = None
        self._identity = identity
        self._authorization = authorization
        self._send, self._receive = send, receive
        self.accepted = False
        self.closed_by: ClosedBy | None = None
        self._closed = False
        self._close_reason = CLOSE_REASON_EXPIRED
        self._unwatch: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    def take_slot(self) -> bool:
        """Count this connection against its caller, before accept; ``False`` (nothing counted)
        when the caller holds ``AUTH_WEBSOCKET_MAX_PER_CALLER`` connections already."""
        caller = self._identity.subject
        if not self._slots.take(caller, self._authenticator.settings.websocket_max_per_caller):
            return False
        self._slot = caller
        return True

    def grace(self) -> float:
        return self._authenticator.settings.websocket_grace

    async def send(self, message: Message) -> None:
        """The application's ``send``: an accept arms the expiry close."""
        if self._closed:
            raise WebSocketDisconnect(CLOSE_POLICY_VIOLATION, self._close_reason)
        kind = message["type"]
        if kind == "websocket.accept":
            await self._send(message)
            self.accepted = True
            self._arm()
            return
        if kind == "websocket.close" and self.accepted and self.closed_by is None:
            self.closed_by = "server"
        await self._send(message)

    async def receive(self) -> Message:
        """The application's ``receive``: a disconnect before any close of ours is the
        client's."""
        message = await self._receive()
        if (message["type"] == "websocket.disconnect" and self.accepted
                and self.closed_by is None):
            self.closed_by = "client"
        return message

    def end(self) -> None:
        """The application returned: give the caller's place back, stop the timer and count the
        close of an accepted connection (the server's when nobody else ended it: ASGI servers
        close then)."""
        if self._slot is not None:
            self._slots.give_back(self._slot)
            self._slot = None
        if self._timer is not None:
            self._timer.cancel()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._closing is not None and not self._closing.done():
            self._closing.cancel()
        if self.accepted:
            self._authenticator.telemetry.websocket_closed(self.closed_by or "server")

    def _arm(self) -> None:
        expires_at = self._identity.expires_at
        delay = 0.0 if expires_at is None else max(
            0.0, expires_at + self.grace() - time.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)
        self._unwatch = self._authenticator.watch_revocation(
            self._authorization, self._identity, self._revoked)

    def _revoked(self) -> None:
        if self.closed_by is not None:
            return  # already ending
        self.closed_by = "token_revoked"
        self._close(MSG_REVOKED, CLOSE_REASON_REVOKED, {})

    def _expire(self) -> None:
        if self.closed_by is not None:
            return  # already ending
        identity = self._identity
        extra: dict[str, Any] = {}
        if identity.expires_at is None:
            self.closed_by = "expiry_unknown"
            message, reason = MSG_EXPIRY_UNKNOWN, CLOSE_REASON_EXPIRY_UNKNOWN
        else:
            self.closed_by = "token_expired"
            message, reason = MSG_EXPIRED, CLOSE_REASON_EXPIRED
            extra = {"expires_at": identity.expires_at, "grace_seconds": self.grace()}
        self._close(message, reason, extra)

    def _close(self, message: str, reason: str, extra: dict[str, Any]) -> None:
        identity = self._identity
        credential = read_bearer(self._authorization, _no_key)
        token_fp = fingerprint(credential.token) if isinstance(credential, Bearer) else "none"
        # The line of AuthenticatedWebSocketHandler._close_for, word for word.
        logger.info("%s (subject=%s, token_fp=%s)", message, identity.subject, token_fp,
                    extra={"subject": identity.subject, "token_fp": token_fp, **extra})
        self._closed = True
        self._close_reason = reason
        self._closing = asyncio.ensure_future(self._send(
            {"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": reason}))


#: The 429 of a caller at its cap (one object: it never changes).
CALLER_LIMIT = too_many_connections(CALLER_LIMIT_RETRY_AFTER)


async def refuse_at_cap(scope: Scope, send: Send) -> None:
    """Refuse the handshake of a caller at its cap with the 429, before accept."""
    await send_answer(scope, send, CALLER_LIMIT, CALLER_LIMIT_REASON)


def _no_key(token: str) -> bytes:
    return b""  # only the token is read here, no cache is asked
