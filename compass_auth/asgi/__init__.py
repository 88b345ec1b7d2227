"""compass-auth for ASGI applications (Starlette, FastAPI): the ``asgi`` extra.

The same verification core as ``AuthenticatedHandler``, with the same answers (docs/asgi.md):

* ``Auth``: the application's authenticator and its ``lifespan``;
* ``AuthMiddleware``: a pure ASGI middleware for Starlette applications, HTTP and WebSocket;
* ``KubernetesBackend``: a backend for Starlette's ``AuthenticationMiddleware``;
* ``compass_auth.asgi.fastapi.Authenticated``: the FastAPI dependency (the ``fastapi`` extra);
* ``check_routes``: whether every route can fill its checks (``Auth.lifespan`` calls it).
"""

from .auth import Auth, NotStarted
from .backend import KubernetesBackend, Refused
from .middleware import AuthMiddleware, identity_of
from .routes import check_routes
from .send import AnswerResponse
from .user import ServiceAccountUser

__all__ = ["AnswerResponse", "Auth", "AuthMiddleware", "KubernetesBackend", "NotStarted",
           "Refused", "ServiceAccountUser", "check_routes", "identity_of"]
