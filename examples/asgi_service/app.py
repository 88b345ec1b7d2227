"""The example ASGI service: ``/whoami``, ``/ws/whoami``, ``/healthz`` and ``/readyz`` on
Starlette, behind ``compass_auth.asgi.AuthMiddleware``.

The same endpoints and answers as the Tornado example service (service/app.py), configured by
the same ``AUTH_*`` variables; ``AUTH_REQUIRED_ACCESS`` and ``AUTH_ALLOWED_SUBJECTS`` apply to
``/whoami`` and ``/ws/whoami`` alike. Run it with any ASGI server::

    AUTH_AUDIENCE=compass-internal uvicorn examples.asgi_service.app:app --port 8080
    AUTH_AUDIENCE=compass-internal granian --interface asgi examples.asgi_service.app:app

``make_app(auth, authenticate=False)`` is the same application without authentication (a fixed
identity), which the benchmarks compare it with.
"""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from compass_auth.asgi import Auth, AuthMiddleware, identity_of
from compass_auth.core.identity import Identity

#: Served without a token: the kubelet's probes carry none.
PROBES = ("/healthz", "/readyz")
JSON = "application/json; charset=UTF-8"

#: The caller of the application built with ``authenticate=False``.
ANONYMOUS = {"subject": "system:serviceaccount:default:collector", "namespace": "default",
             "service_account": "collector", "verified_by": "none"}


def whoami(identity: Identity) -> dict[str, Any]:
    """The ``/whoami`` body: the four fields of the Tornado service's."""
    return {"subject": identity.subject, "namespace": identity.namespace,
            "service_account": identity.service_account, "verified_by": identity.verified_by}


def make_app(auth: Auth, *, authenticate: bool = True, lifespan: bool = True) -> ASGIApp:
    """The service. ``lifespan``: connect and close ``auth``'s authenticator with the
    application (off when the caller runs it, as the tests do)."""

    async def who(request: Request) -> Response:
        body = whoami(identity_of(request)) if authenticate else ANONYMOUS
        # json.dumps and a plain Response: JSONResponse's render is slower for the same bytes.
        return Response(json.dumps(body), media_type=JSON)

    async def ws_who(websocket: WebSocket) -> None:
        await websocket.accept()
        identity = identity_of(websocket) if authenticate else None
        await websocket.send_json(
            {**whoami(identity), "expires_at": identity.expires_at} if identity else ANONYMOUS)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await websocket.send_text(message["text"])
                elif message.get("bytes") is not None:
                    await websocket.send_bytes(message["bytes"])
        except WebSocketDisconnect:
            return  # closed at the token's expiry, or the client left

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        status = (await auth.authenticator.readiness()).as_dict()
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    middleware = ([Middleware(AuthMiddleware, auth=auth, exempt_paths=PROBES)]
                  if authenticate else [])
    return Starlette(
        routes=[Route("/whoami", who), WebSocketRoute("/ws/whoami", ws_who),
                Route("/healthz", healthz), Route("/readyz", readyz)],
        middleware=middleware,
        lifespan=auth.lifespan if lifespan else None,
    )


def from_env() -> ASGIApp:
    """The application configured from the process environment (``AUTH_*``);
    ``COMPASS_NO_AUTH=1`` builds it without authentication (benchmarks)."""
    return make_app(Auth(os.environ), authenticate=os.environ.get("COMPASS_NO_AUTH") != "1")


app = from_env()
