"""Configuration that cannot work does not start, on ASGI too (issue 18, finding 9): a
``{name}`` template in ``AUTH_REQUIRED_ACCESS`` or in a route's ``required_access`` that the
route cannot fill is refused when the lifespan starts, with a sentence naming the setting and
the route, instead of a 500 for every authenticated request."""

# No `from __future__ import annotations`: FastAPI reads the annotations of fastapi_reports'
# endpoint, which name a local dependency (as in apps.py).
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from compass_auth import Identity, RouteAccessError
from compass_auth.asgi import Auth, AuthMiddleware, NotStarted, check_routes, identity_of
from compass_auth.asgi.fastapi import Authenticated, auth_exception_handlers
from compass_auth.testing import DevCluster

from ..conftest import AUDIENCE
from ..helpers import ROOT
from .apps import GRANT, REPORTS
from .conftest import ServeAsgi
from .http import get
from .server import start_uvicorn

#: ``AUTH_REQUIRED_ACCESS`` of finding 9: no route of the example ASGI service has {namespace}.
UNFILLABLE = "verb=get,resource=pods,namespace={namespace}"


async def reports(request: Request) -> Response:
    return JSONResponse({"subject": identity_of(request).subject})


def starlette_reports(auth: Auth, path: str) -> Starlette:
    return Starlette(routes=[Route(path, reports, middleware=[
        Middleware(AuthMiddleware, auth=auth, required_access=REPORTS)])],
        lifespan=auth.lifespan)


def fastapi_reports(auth: Auth, path: str) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan, exception_handlers=auth_exception_handlers())

    @app.get(path)
    async def endpoint(identity: Annotated[Identity, Depends(
            Authenticated(auth, required_access=REPORTS))]) -> dict[str, Any]:
        return {"subject": identity.subject}

    return app


async def failed_start(app: Any) -> str:
    """Start ``app``'s lifespan as an ASGI server does; it must fail. The failure's message."""
    sent: list[dict[str, Any]] = []
    received = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return received.pop(0) if received else {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    # (uvicorn exits the process with SystemExit(3) here, which would stop this test's loop.)
    with pytest.raises(RouteAccessError) as raised:
        await asyncio.wait_for(app(scope, receive, send), 30)
    [failed] = sent
    assert failed["type"] == "lifespan.startup.failed"
    assert str(raised.value) in failed["message"]
    return str(raised.value)


@pytest.mark.parametrize("make", [starlette_reports, fastapi_reports])
async def test_a_route_that_cannot_fill_its_template_fails_at_lifespan_start(
        make: Any, devcluster: DevCluster, devcluster_kubeconfig: Path) -> None:
    environ = {"KUBECONFIG": str(devcluster_kubeconfig), "AUTH_AUDIENCE": AUDIENCE}
    # A typo in the path: {namespace} has nothing to fill it.
    auth = Auth(environ)
    message = await failed_start(make(auth, "/reports/{namspace}"))
    kind = "AuthMiddleware" if make is starlette_reports else "Authenticated"
    assert message == (f"{kind}(required_access=...): check 1 (verb=get,"
            "resource=reports,group=reports.example.com,namespace={namespace}) uses "
            f"{{namespace}}, but route /reports/{{namspace}} ({kind}) has no path parameter of "
            "that name (path parameters: namspace; {service_namespace} is the service's "
            "namespace); did you mean {namspace}?")
    with pytest.raises(NotStarted):  # the authenticator it connected was closed
        auth.authenticator  # noqa: B018

    # The same route with the parameter starts, and its template is filled per request.
    devcluster.load_rbac(GRANT)
    server, task, port = await start_uvicorn(make(Auth(environ), "/reports/{namespace}"),
                                             lifespan="on")
    try:
        allowed = await get(f"http://127.0.0.1:{port}/reports/team-a", devcluster.mint())
        denied = await get(f"http://127.0.0.1:{port}/reports/team-b", devcluster.mint())
        assert (allowed.code, denied.code) == (200, 403)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def test_the_example_service_refuses_to_start_with_an_unfillable_setting(
        devcluster: DevCluster, devcluster_kubeconfig: Path) -> None:
    """Finding 9 against the real process: the example ASGI service under uvicorn exits at
    start-up, naming AUTH_REQUIRED_ACCESS, instead of answering 500 to every caller."""
    environ = {**os.environ, "KUBECONFIG": str(devcluster_kubeconfig),
               "AUTH_AUDIENCE": AUDIENCE, "AUTH_REQUIRED_ACCESS": UNFILLABLE}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "examples.asgi_service.app:app", "--host",
         "127.0.0.1", "--port", "0"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3, result.stderr  # uvicorn's "startup failed"
    assert re.search(
        r"RouteAccessError: AUTH_REQUIRED_ACCESS: check 1 \(verb=get,resource=pods,"
        r"namespace=\{namespace\}\) uses \{namespace\}, but the application's AuthMiddleware "
        r"\(it runs before routing: no path parameter is known there\) has no path parameter",
        result.stderr), result.stderr


async def test_where_a_gate_sits_decides_what_it_can_fill(asgi_serve: ServeAsgi) -> None:
    """Starlette fills path parameters while routing: a middleware on a Mount sees the mount's,
    one on a Route the route's and its mounts'; gates of another Auth are not this one's."""
    served = await asgi_serve(lambda auth: Starlette())
    auth = served.auth

    def guarded(**options: Any) -> list[Middleware]:
        return [Middleware(AuthMiddleware, auth=auth, required_access=REPORTS, **options)]

    fine = Starlette(routes=[
        Mount("/teams/{namespace}", routes=[Route("/reports", reports)], middleware=guarded()),
        Mount("/by", routes=[Route("/{namespace}/x", reports, middleware=guarded())]),
        Route("/other/{team}", reports, middleware=[Middleware(
            AuthMiddleware, auth=Auth(), required_access=REPORTS)]),
    ])
    check_routes(fine, auth)
    inner = Starlette(routes=[Mount("/by", routes=[Route("/{namespace}", reports)],
                                    middleware=guarded())])
    with pytest.raises(RouteAccessError, match=re.escape(
            "but the AuthMiddleware of mount /by (it runs before the mount's routes: only the "
            "mounts' path parameters are known there) has no path parameter")):
        check_routes(inner, auth)
    before_routing = Starlette(routes=[Route("/r/{namespace}", reports)], middleware=guarded())
    with pytest.raises(RouteAccessError, match=re.escape(
            "but the application's AuthMiddleware (it runs before routing")):
        check_routes(before_routing, auth)
