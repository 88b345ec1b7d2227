"""``AuthMiddleware``: a pure ASGI middleware that lets only verified callers through.

For Starlette (or any ASGI application): HTTP requests and WebSocket handshakes without an
admitted caller get the Tornado handler's answers (``send.send_answer``); an admitted caller's
``Identity`` is in the scope (``request.user.identity``, ``identity_of(request)``), and
``request.auth.scopes`` is ``["authenticated"]``, as Starlette's ``AuthenticationMiddleware``
would set them. A WebSocket handshake of a caller that holds ``AUTH_WEBSOCKET_MAX_PER_CALLER``
connections gets 429 before accept; an accepted WebSocket is closed with 1008 at its token's
expiry (``expiry.Lifetime``).

Application-wide it applies the service-wide settings to every route; on a ``Route``,
``WebSocketRoute`` or ``Mount`` (Starlette's ``middleware=`` argument) it also applies that
route's own ``allowed_subjects`` and ``required_access``, whose ``{name}`` templates are filled
from the route's path parameters (a route-level middleware runs after routing)::

    Route("/reports/{namespace}", reports, middleware=[Middleware(
        AuthMiddleware, auth=auth,
        required_access=(ResourceCheck("get", "reports", namespace="{namespace}"),))])

The hot path is one synchronous call (``admission.admit_cached``) and two scope entries: no
``Request`` object, no coroutine beyond the application's own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp

from ..core.access import Check
from ..core.errors import AuthError
from ..core.identity import Identity
from ..verification.admission import Pending
from .auth import Auth
from .expiry import Lifetime, refuse_at_cap
from .gate import IDENTITY_KEY, Gate, authorization_of
from .send import Receive, Scope, Send, send_answer
from .user import ServiceAccountUser

#: ``request.auth`` of an admitted caller (immutable: one object for every request).
AUTHENTICATED = AuthCredentials(["authenticated"])


class AuthMiddleware:
    """Admit the caller of every HTTP request and WebSocket handshake, or answer 400/401/403/503.

    ``auth``: the application's ``Auth``; ``allowed_subjects`` and ``required_access``: this
    middleware's own, on top of the service-wide ``AUTH_ALLOWED_SUBJECTS`` and
    ``AUTH_REQUIRED_ACCESS`` (which apply whatever is given here). ``exempt_paths``: exact paths
    served without authentication (health probes); nothing else is let through.
    """

    def __init__(self, app: ASGIApp, auth: Auth, *,
                 allowed_subjects: Collection[str] | None = None,
                 required_access: Sequence[Check] | None = None,
                 exempt_paths: Collection[str] = ()) -> None:
        self.app = app
        self.gate = Gate(auth, allowed_subjects, required_access,
                         where="AuthMiddleware(required_access=...)")
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        gate = self.gate
        try:
            answer = gate.admit_cached(scope)
            if isinstance(answer, Pending):
                answer = await gate.admit(scope, answer)
        except AuthError as error:
            await send_answer(scope, send, gate.answer(error), error.reason)
            return
        admitted(scope, answer)
        if kind == "http":
            await self.app(scope, receive, send)
            return
        lifetime = Lifetime(gate.auth.authenticator, gate.auth.websocket_slots, answer,
                            authorization_of(scope), send, receive)
        if not lifetime.take_slot():
            await refuse_at_cap(scope, send)
            return
        try:
            await self.app(scope, lifetime.receive, lifetime.send)
        finally:
            lifetime.end()


def admitted(scope: Scope, identity: Identity) -> None:
    """Record an admitted caller in ``scope``: ``user``, ``auth`` and the identity."""
    scope[IDENTITY_KEY] = identity
    scope["user"] = ServiceAccountUser(identity)
    scope["auth"] = AUTHENTICATED


def identity_of(connection: Any) -> Identity:
    """The admitted caller of a Starlette ``Request``/``WebSocket`` (or an ASGI scope).

    Raises ``LookupError`` when no adapter of this package admitted it: a route reached without
    authentication is a bug to find, never an anonymous caller to serve."""
    scope = connection if isinstance(connection, dict) else connection.scope
    identity = scope.get(IDENTITY_KEY)
    if not isinstance(identity, Identity):
        raise LookupError("no authenticated caller: the route is not behind AuthMiddleware, "
                          "KubernetesBackend or the FastAPI dependency")
    return identity
