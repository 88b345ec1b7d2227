"""The FastAPI dependency: ``Authenticated`` returns the caller's ``Identity``.

It takes ``HTTPConnection``, so one dependency serves HTTP routes and WebSocket routes alike
(FastAPI's own security classes take ``Request`` and cannot be used on a WebSocket route:
fastapi#2587). It is a FastAPI ``SecurityBase``, so the routes that use it show an HTTP bearer
security scheme in the OpenAPI document::

    auth = Auth(os.environ)
    app = FastAPI(lifespan=auth.lifespan, exception_handlers=auth_exception_handlers())

    @app.get("/reports/{namespace}")
    async def reports(namespace: str, caller: Identity = Depends(Authenticated(
            auth, required_access=(ResourceCheck("get", "reports", namespace="{namespace}"),)))):
        ...

A refusal raises ``Rejected``; the handlers of ``auth_exception_handlers()`` answer it with the
Tornado handler's answer (and refuse a WebSocket handshake with it). Without them FastAPI's own
``HTTPException`` handler answers: the same status and headers, the body under ``"detail"``.
On a WebSocket route the dependency also refuses a caller that holds
``AUTH_WEBSOCKET_MAX_PER_CALLER`` connections (429, before accept) and closes the accepted
connection with 1008 at the token's expiry (``expiry.Lifetime``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from ..core.access import Check
from ..core.answers import CALLER_LIMIT_REASON, Answer
from ..core.errors import AuthError
from ..core.identity import Identity
from .auth import Auth
from .expiry import CALLER_LIMIT, Lifetime
from .gate import Gate, authorization_of
from .middleware import admitted
from .send import AnswerResponse

#: The name of the security scheme in the OpenAPI document.
SCHEME_NAME = "KubernetesServiceAccount"


class Rejected(HTTPException):
    """The dependency refused the caller; ``answer`` is the whole answer and ``reason`` its
    reason code (``detail`` is the answer's JSON body, for FastAPI's own handler)."""

    def __init__(self, answer: Answer, reason: str) -> None:
        headers = {name: value for name, value in answer.headers if name != "Content-Type"}
        super().__init__(answer.status, detail=json.loads(answer.body), headers=headers)
        self.answer, self.reason = answer, reason


class Authenticated(SecurityBase):
    """A dependency that admits the caller and returns its ``Identity``.

    ``allowed_subjects`` and ``required_access`` apply on top of the service-wide
    ``AUTH_ALLOWED_SUBJECTS`` and ``AUTH_REQUIRED_ACCESS``; a check's ``{name}`` template is
    filled from the route's path parameter of that name."""

    def __init__(self, auth: Auth, *, allowed_subjects: Collection[str] | None = None,
                 required_access: Sequence[Check] | None = None,
                 scheme_name: str = SCHEME_NAME) -> None:
        self.gate = Gate(auth, allowed_subjects, required_access,
                         where="Authenticated(required_access=...)")
        self.model = HTTPBearerModel(
            bearerFormat="JWT",
            description="A Kubernetes service-account token bound to this service's audience")
        self.scheme_name = scheme_name

    async def __call__(self, conn: HTTPConnection) -> AsyncIterator[Identity]:
        gate = self.gate
        try:
            identity = await gate.admit(conn.scope)
        except AuthError as error:
            raise Rejected(gate.answer(error), error.reason) from None
        admitted(conn.scope, identity)
        if not isinstance(conn, WebSocket):
            yield identity
            return
        # Route the WebSocket's messages through the lifetime, which closes it at expiry and
        # counts who ended it (Starlette's WebSocket keeps its ASGI callables as attributes).
        lifetime = Lifetime(gate.auth.authenticator, gate.auth.websocket_slots, identity,
                            authorization_of(conn.scope), conn._send, conn._receive)
        if not lifetime.take_slot():
            raise Rejected(CALLER_LIMIT, CALLER_LIMIT_REASON)
        conn._send, conn._receive = lifetime.send, lifetime.receive
        try:
            yield identity
        finally:
            lifetime.end()


async def _answer_rejected(conn: HTTPConnection, exc: Exception) -> Response:
    assert isinstance(exc, Rejected)
    return AnswerResponse(exc.answer, exc.reason)


def auth_exception_handlers() -> dict[Any, Any]:
    """``exception_handlers`` for ``FastAPI(...)`` (or ``app.add_exception_handler``) that send
    ``Rejected`` as the Tornado handler's answer."""
    return {Rejected: _answer_rejected}
