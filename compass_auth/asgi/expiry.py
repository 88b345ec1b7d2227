"""An accepted ASGI WebSocket, closed with 1008 when its caller's token expires.

What ``AuthenticatedWebSocketHandler`` does for Tornado (compass_auth/websocket.py), with its
close codes, reasons, log lines and ``auth.websocket.closes`` counts: at ``exp`` plus the grace
period (``AUTH_WEBSOCKET_GRACE``) the connection is closed with 1008 ``token expired``; an
identity without an expiry is closed at once with ``token expiry unknown`` (fail closed). The
token is not re-verified meanwhile.

``Lifetime`` wraps the connection's ASGI ``send`` and ``receive``: it sees the accept, the
application's own close and the client's disconnect, so it counts who ended the connection.
After it closed the connection for expiry, a ``send`` of the application raises
``WebSocketDisconnect`` (1008), as a closed connection's does in Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.websockets import WebSocketDisconnect

from ..authenticator import Authenticator
from ..bearer import Bearer, fingerprint, read_bearer
from ..identity import Identity
from ..websocket import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_REASON_EXPIRED,
    CLOSE_REASON_EXPIRY_UNKNOWN,
    MSG_EXPIRED,
    MSG_EXPIRY_UNKNOWN,
    ClosedBy,
)
from .send import Message, Receive, Send

#: The Tornado handler's logger, so that operators grep one logger for both adapters.
logger = logging.getLogger("compass_auth.websocket")


class Lifetime:
    """The expiry close and the close count of one WebSocket connection."""

    def __init__(self, authenticator: Authenticator, identity: Identity,
                 authorization: list[str], send: Send, receive: Receive) -> None:
        self._authenticator = authenticator
        self._identity = identity
        self._authorization = authorization
        self._send, self._receive = send, receive
        self.accepted = False
        self.closed_by: ClosedBy | None = None
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    def grace(self) -> float:
        return self._authenticator.settings.websocket_grace

    async def send(self, message: Message) -> None:
        """The application's ``send``: an accept arms the expiry close."""
        if self._closed:
            raise WebSocketDisconnect(CLOSE_POLICY_VIOLATION, CLOSE_REASON_EXPIRED)
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
        """The application returned: stop the timer and count the close of an accepted
        connection (the server's when nobody else ended it: ASGI servers close then)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._closing is not None and not self._closing.done():
            self._closing.cancel()
        if self.accepted:
            self._authenticator.telemetry.websocket_closed(self.closed_by or "server")

    def _arm(self) -> None:
        expires_at = self._identity.expires_at
        delay = 0.0 if expires_at is None else max(
            0.0, expires_at + self.grace() - time.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

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
        credential = read_bearer(self._authorization, _no_key)
        token_fp = fingerprint(credential.token) if isinstance(credential, Bearer) else "none"
        # The line of AuthenticatedWebSocketHandler._close_for, word for word.
        logger.info("%s (subject=%s, token_fp=%s)", message, identity.subject, token_fp,
                    extra={"subject": identity.subject, "token_fp": token_fp, **extra})
        self._closed = True
        self._closing = asyncio.ensure_future(self._send(
            {"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": reason}))


def _no_key(token: str) -> bytes:
    return b""  # only the token is read here, no cache is asked
