"""The example ASGI service (examples/asgi_service) under uvicorn with its own lifespan, the
OpenAPI document of the FastAPI dependency, and the backend for Starlette's
``AuthenticationMiddleware``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from compass_auth.asgi import Auth, KubernetesBackend, NotStarted
from compass_auth.testing import DevCluster
from examples.asgi_service.app import make_app

from ..conftest import AUDIENCE
from ..helpers import RBAC, WHOAMI_CHECK
from .apps import fastapi_app
from .conftest import ServeAsgi
from .http import get
from .server import start_uvicorn

COLLECTOR = "system:serviceaccount:default:collector"


async def test_the_example_service_with_its_lifespan_and_required_access(
        devcluster: DevCluster, devcluster_kubeconfig: Path) -> None:
    devcluster.load_rbac(RBAC)
    auth = Auth({"KUBECONFIG": str(devcluster_kubeconfig), "AUTH_AUDIENCE": AUDIENCE,
                 "AUTH_REQUIRED_ACCESS": WHOAMI_CHECK})
    server, task, port = await start_uvicorn(make_app(auth), lifespan="on")
    url = f"http://127.0.0.1:{port}"
    try:
        # The lifespan waited for start-up discovery: the first token is verified locally.
        assert auth.authenticator.active_path() == "jwks"
        assert (await get(url + "/healthz")).code == 200
        ready = await get(url + "/readyz")
        assert (ready.code, json.loads(ready.body)["path"]) == (200, "jwks")
        allowed = await get(url + "/whoami", devcluster.mint())
        assert allowed.code == 200
        assert json.loads(allowed.body) == {"subject": COLLECTOR, "namespace": "default",
                                            "service_account": "collector",
                                            "verified_by": "jwks"}
        # AUTH_REQUIRED_ACCESS applies: RBAC grants /whoami to the collector only.
        other = await get(url + "/whoami", devcluster.mint(service_account="other"))
        assert (other.code, json.loads(other.body)["reason"]) == (403, "access_denied")
        socket = await websocket_connect(HTTPRequest(
            url.replace("http", "ws") + "/ws/whoami",
            headers={"Authorization": f"Bearer {devcluster.mint()}"}))
        hello = json.loads(await asyncio.wait_for(socket.read_message(), 10))
        assert hello["subject"] == COLLECTOR
        socket.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    with pytest.raises(NotStarted):
        auth.authenticator  # noqa: B018  (closed with the application)


async def test_the_dependency_is_an_http_bearer_scheme_in_openapi(
        devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    served = await asgi_serve(fastapi_app)
    document = json.loads((await get(served.url + "/openapi.json")).body)
    scheme = document["components"]["securitySchemes"]["KubernetesServiceAccount"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer",
                                                                           "JWT")
    assert document["paths"]["/whoami"]["get"]["security"] == [{"KubernetesServiceAccount": []}]


def backend_app(auth: Auth) -> Starlette:
    backend = KubernetesBackend(auth)

    async def whoami(request: Request) -> Response:
        return JSONResponse({"subject": request.user.display_name,
                             "scopes": request.auth.scopes})

    return Starlette(routes=[Route("/whoami", whoami)], middleware=[
        Middleware(AuthenticationMiddleware, backend=backend, on_error=backend.on_error)])


async def test_the_backend_under_starlettes_authentication_middleware(
        devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    served = await asgi_serve(backend_app)
    allowed = await get(served.url + "/whoami", devcluster.mint())
    assert json.loads(allowed.body) == {"subject": COLLECTOR, "scopes": ["authenticated"]}
    refused = await get(served.url + "/whoami", devcluster.mint(audiences=("vault",)))
    assert refused.code == 401
    assert refused.headers["Cache-Control"] == "no-store"
    assert json.loads(refused.body) == {
        "error": "invalid_token",
        "error_description": "the token audience does not include compass-internal",
        "reason": "audience_mismatch"}
