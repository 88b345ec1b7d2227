"""The ASGI adapter (issue 23) through uvicorn, real sockets and the emulator: a FastAPI app
(the dependency) and a Starlette app (the middleware) get the Tornado handler's results."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.websocket import websocket_connect

from compass_auth.testing import DevCluster, Fault

from .apps import APPS, GRANT, OTHER
from .conftest import ServeAsgi

COLLECTOR = "system:serviceaccount:default:collector"
pytestmark = pytest.mark.parametrize("framework", sorted(APPS))


async def get(url: str, token: str | None = None) -> HTTPResponse:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False,
                                         request_timeout=20)


def body(response: HTTPResponse) -> dict[str, object]:
    assert response.headers["Content-Type"].startswith("application/json")
    answer: dict[str, object] = json.loads(response.body)
    return answer


async def test_allowed_missing_wrong_audience_and_subject(
        framework: str, devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    served = await asgi_serve(APPS[framework])
    allowed = await get(served.url + "/whoami", devcluster.mint())
    assert (allowed.code, body(allowed)) == (200, {"subject": COLLECTOR, "verified_by": "jwks"})

    missing = await get(served.url + "/whoami")
    assert missing.code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="compass-auth"'
    assert body(missing)["reason"] == "missing"

    wrong = await get(served.url + "/whoami", devcluster.mint(audiences=("vault",)))
    assert wrong.code == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert body(wrong)["reason"] == "audience_mismatch"

    other = await get(served.url + "/only-other", devcluster.mint())
    assert other.code == 403
    assert body(other)["reason"] == "subject_not_allowed"
    let_in = await get(served.url + "/only-other",
                       devcluster.mint(service_account="other"))
    assert (let_in.code, body(let_in)["subject"]) == (200, OTHER)


async def test_rbac_denied_and_allowed_by_path_parameter(
        framework: str, devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    devcluster.load_rbac(GRANT)
    served = await asgi_serve(APPS[framework])
    token = devcluster.mint()
    allowed = await get(served.url + "/reports/team-a", token)
    assert (allowed.code, body(allowed)["namespace"]) == (200, "team-a")
    denied = await get(served.url + "/reports/team-b", token)
    assert denied.code == 403
    assert body(denied)["reason"] == "access_denied"
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    # A value no namespace has is refused without a review, as for Tornado (access.py).
    invalid = await get(served.url + "/reports/Team_A", token)
    assert (invalid.code, body(invalid)["reason"]) == (403, "access_denied")


async def test_discovery_down_still_verified_by_tokenreview(
        framework: str, devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    served = await asgi_serve(APPS[framework], {"AUTH_REDISCOVERY_INTERVAL": "3600"},
                              require_local_keys=False)
    response = await get(served.url + "/whoami", devcluster.mint())
    assert (response.code, body(response)) == (200, {"subject": COLLECTOR,
                                                     "verified_by": "tokenreview"})
    assert devcluster.request_count("tokenreview") >= 1


async def test_websocket_refused_before_accept_with_the_http_answer(
        framework: str, devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    served = await asgi_serve(APPS[framework])
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(served.ws_url + "/ws/whoami")
    response = refused.value.response
    assert response is not None
    assert refused.value.code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="compass-auth"'
    assert body(response)["reason"] == "missing"
    with pytest.raises(HTTPClientError) as wrong:
        await websocket_connect(_request(served.ws_url + "/ws/whoami",
                                         devcluster.mint(audiences=("vault",))))
    assert wrong.value.code == 401


async def test_websocket_closed_with_1008_at_expiry(
        framework: str, devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    served = await asgi_serve(APPS[framework], {"AUTH_WEBSOCKET_GRACE": "0"})
    token = devcluster.mint(lifetime=2)
    connection = await websocket_connect(_request(served.ws_url + "/ws/whoami", token))
    hello = json.loads(await asyncio.wait_for(connection.read_message(), 10))
    assert hello["subject"] == COLLECTOR
    connection.write_message("echo me")
    assert await asyncio.wait_for(connection.read_message(), 10) == "echo me"
    # Closed by the server at exp (+ grace 0): the read ends with None, code 1008.
    assert await asyncio.wait_for(connection.read_message(), 15) is None
    closed = time.time()
    assert (connection.close_code, connection.close_reason) == (1008, "token expired")
    assert hello["expires_at"] - 1 <= closed < hello["expires_at"] + 5


async def test_websocket_closed_with_1008_when_its_token_is_revoked(
        framework: str, devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    """Issue 21: the background confirmation finds the pod gone; the connection opened with
    the token is closed with 1008 ``token revoked`` and the token gets 401 ``token_revoked``."""
    served = await asgi_serve(APPS[framework], {"AUTH_REVOCATION_WINDOW": "1"})
    token = devcluster.mint(pod="revoked-pod")
    connection = await websocket_connect(_request(served.ws_url + "/ws/whoami", token))
    await asyncio.wait_for(connection.read_message(), 10)  # the greeting
    devcluster.delete_pod("default", "revoked-pod")
    deadline = time.monotonic() + 10
    while (response := await get(served.url + "/whoami", token)).code == 200:
        assert time.monotonic() < deadline, "the token was never refused"
        await asyncio.sleep(0.1)
    assert (response.code, body(response)["reason"]) == (401, "token_revoked")
    assert await asyncio.wait_for(connection.read_message(), 10) is None
    assert (connection.close_code, connection.close_reason) == (1008, "token revoked")


def _request(url: str, token: str) -> object:
    from tornado.httpclient import HTTPRequest

    return HTTPRequest(url, headers={"Authorization": f"Bearer {token}"})
