"""Writing an ``answers.Answer`` to an ASGI connection, HTTP or WebSocket.

A WebSocket handshake is refused before ``websocket.accept``. Where the server supports the
ASGI "WebSocket Denial Response" extension (``websocket.http.response`` in the scope's
``extensions``; uvicorn does, with either of its WebSocket implementations), the refusal is the
same HTTP answer as for a plain request: status, challenge or ``Retry-After``, JSON body. Where
it does not, the only refusal ASGI offers is ``websocket.close`` before accept, which the server
turns into a bare HTTP 403 (ASGI spec, "Close - send event"); the close carries code 1008 and
the reason code for servers that pass it on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import Response

from ..core.answers import Answer
from ..tornado.websocket import CLOSE_POLICY_VIOLATION

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]

#: The ASGI extension that lets an application answer a WebSocket handshake with HTTP.
DENIAL_EXTENSION = "websocket.http.response"


def raw_headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in answer.headers]
    headers.append((b"content-length", str(len(answer.body)).encode("latin-1")))
    return headers


async def send_answer(scope: Scope, send: Send, answer: Answer, reason: str = "") -> None:
    """Send ``answer`` as the response to ``scope`` (before any other message)."""
    prefix = ""
    if scope["type"] == "websocket":
        if DENIAL_EXTENSION not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION,
                        "reason": reason})
            return
        prefix = "websocket."
    await send({"type": prefix + "http.response.start", "status": answer.status,
                "headers": raw_headers(answer)})
    await send({"type": prefix + "http.response.body", "body": answer.body})


class AnswerResponse(Response):
    """A Starlette ``Response`` that sends an ``Answer`` (for ``on_error`` and exception
    handlers), refusing WebSocket handshakes as ``send_answer`` does."""

    def __init__(self, answer: Answer, reason: str = "") -> None:
        super().__init__(answer.body, answer.status, dict(answer.headers))
        self.answer, self.reason = answer, reason

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        await send_answer(scope, send, self.answer, self.reason)
