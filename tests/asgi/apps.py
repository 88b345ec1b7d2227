"""The same small application on FastAPI (the dependency) and on Starlette (the middleware),
each route with the protection the tests need; and the Tornado handlers of the same routes."""

# No `from __future__ import annotations`: FastAPI reads these routes' annotations, which name
# local dependencies.
from typing import Annotated, Any

import tornado.web
from fastapi import Depends, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from compass_auth import AuthenticatedHandler, Identity, ResourceCheck
from compass_auth.asgi import Auth, AuthMiddleware, identity_of
from compass_auth.asgi.fastapi import Authenticated, auth_exception_handlers

from ..helpers import REPORTS_GRANT

OTHER = "system:serviceaccount:default:other"
REPORTS = (ResourceCheck("get", "reports", group="reports.example.com",
                         namespace="{namespace}"),)
GRANT = REPORTS_GRANT


def who(identity: Identity) -> dict[str, Any]:
    return {"subject": identity.subject, "verified_by": identity.verified_by}


async def echo(websocket: Any, identity: Identity) -> None:
    await websocket.accept()
    await websocket.send_json({**who(identity), "expires_at": identity.expires_at})
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        return


def fastapi_app(auth: Auth) -> FastAPI:
    app = FastAPI(exception_handlers=auth_exception_handlers())
    caller = Authenticated(auth)

    @app.get("/whoami")
    async def whoami(identity: Annotated[Identity, Depends(caller)]) -> dict[str, Any]:
        return who(identity)

    @app.get("/only-other")
    async def only_other(identity: Annotated[Identity, Depends(
            Authenticated(auth, allowed_subjects={OTHER}))]) -> dict[str, Any]:
        return who(identity)

    @app.get("/reports/{namespace}")
    async def reports(namespace: str, identity: Annotated[Identity, Depends(
            Authenticated(auth, required_access=REPORTS))]) -> dict[str, Any]:
        return {**who(identity), "namespace": namespace}

    @app.websocket("/ws/whoami")
    async def ws_whoami(websocket: WebSocket,
                        identity: Annotated[Identity, Depends(caller)]) -> None:
        await echo(websocket, identity)

    return app


def starlette_app(auth: Auth) -> Starlette:
    async def whoami(request: Request) -> Response:
        return JSONResponse(who(identity_of(request)))

    async def reports(request: Request) -> Response:
        return JSONResponse({**who(identity_of(request)),
                             "namespace": request.path_params["namespace"]})

    async def ws_whoami(websocket: Any) -> None:
        await echo(websocket, identity_of(websocket))

    def protected(**options: Any) -> list[Middleware]:
        return [Middleware(AuthMiddleware, auth=auth, **options)]

    return Starlette(routes=[
        Route("/whoami", whoami, middleware=protected()),
        Route("/only-other", whoami, middleware=protected(allowed_subjects={OTHER})),
        Route("/reports/{namespace}", reports, middleware=protected(required_access=REPORTS)),
        WebSocketRoute("/ws/whoami", ws_whoami, middleware=protected()),
    ])


APPS = {"fastapi": fastapi_app, "starlette": starlette_app}


# --- the Tornado handlers of the same routes (the parity test) --------------------------------

class TornadoWhoAmI(AuthenticatedHandler):
    async def get(self) -> None:
        self.write(who(self.identity))


class TornadoOnlyOther(TornadoWhoAmI):
    allowed_subjects = frozenset({OTHER})


class TornadoReports(AuthenticatedHandler):
    required_access = REPORTS

    async def get(self, namespace: str) -> None:
        self.write({**who(self.identity), "namespace": namespace})


TORNADO_RULES: list[tuple[str, type[tornado.web.RequestHandler]]] = [
    (r"/whoami", TornadoWhoAmI),
    (r"/only-other", TornadoOnlyOther),
    (r"/reports/(?P<namespace>[^/]+)", TornadoReports),
]
