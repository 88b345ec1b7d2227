"""``KubernetesBackend``: the verification core as a Starlette ``AuthenticationBackend``.

For applications built on Starlette's own ``AuthenticationMiddleware``::

    backend = KubernetesBackend(auth)
    Middleware(AuthenticationMiddleware, backend=backend, on_error=backend.on_error)

``request.user`` is a ``ServiceAccountUser`` and ``request.auth.scopes`` ``["authenticated"]``.
A refused request gets the Tornado handler's answer through ``on_error`` (without it, Starlette
answers 400 with plain text). Per route, give a ``Route`` its own middleware with a backend that
carries the route's ``allowed_subjects`` and ``required_access``.

Starlette's middleware refuses a WebSocket handshake with a close (code 1000) whatever
``on_error`` says, which the server turns into a bare 403, and cannot close the connection at
the token's expiry: for WebSocket routes use ``AuthMiddleware``, which does both.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError
from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..core.access import Check
from ..core.answers import Answer
from ..core.errors import AuthError
from .auth import Auth
from .gate import IDENTITY_KEY, Gate
from .middleware import AUTHENTICATED
from .send import AnswerResponse
from .user import ServiceAccountUser


class Refused(AuthenticationError):
    """The backend refused the caller; ``answer`` is what to send (``on_error``)."""

    def __init__(self, error: AuthError, answer: Answer) -> None:
        super().__init__(error.description)
        self.error, self.answer = error, answer


class KubernetesBackend(AuthenticationBackend):
    """Admits callers with the library's ``Authenticator`` (``auth``), plus this backend's own
    ``allowed_subjects`` and ``required_access`` on top of the service-wide ones."""

    def __init__(self, auth: Auth, *, allowed_subjects: Collection[str] | None = None,
                 required_access: Sequence[Check] | None = None) -> None:
        self.gate = Gate(auth, allowed_subjects, required_access,
                         where="KubernetesBackend(required_access=...)")

    async def authenticate(self, conn: HTTPConnection
                           ) -> tuple[AuthCredentials, ServiceAccountUser]:
        try:
            identity = await self.gate.admit(conn.scope)
        except AuthError as error:
            raise Refused(error, self.gate.answer(error)) from None
        conn.scope[IDENTITY_KEY] = identity
        return AUTHENTICATED, ServiceAccountUser(identity)

    @staticmethod
    def on_error(conn: HTTPConnection, error: AuthenticationError) -> Response:
        """``AuthenticationMiddleware``'s ``on_error``: the answer of the refusal."""
        if isinstance(error, Refused):
            return AnswerResponse(error.answer, error.error.reason)
        # Another backend's error (a chain of middlewares): Starlette's own answer.
        return Response(str(error), status_code=400, media_type="text/plain")
