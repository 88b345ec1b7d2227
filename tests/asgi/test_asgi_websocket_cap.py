"""The per-caller WebSocket cap on ASGI (issue 18, finding 4, on the adapter of issue 23): one
caller (subject) holds at most ``AUTH_WEBSOCKET_MAX_PER_CALLER`` connections; one more
handshake gets the Tornado handler's 429 before accept, while other callers are accepted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from compass_auth.testing import DevCluster
from compass_auth.testing.fixtures import Serve
from compass_auth.websocket import AuthenticatedWebSocketHandler

from .apps import APPS
from .conftest import ServeAsgi
from .http import answer


def handshake(url: str, token: str) -> HTTPRequest:
    return HTTPRequest(url + "/ws/whoami", headers={"Authorization": f"Bearer {token}"},
                       request_timeout=20)


async def accepted(url: str, token: str) -> WebSocketClientConnection:
    connection = await websocket_connect(handshake(url, token))
    hello = json.loads(await asyncio.wait_for(connection.read_message(), 10) or "{}")
    assert hello["subject"].startswith("system:serviceaccount:")
    return connection


async def refused(url: str, token: str) -> HTTPResponse:
    """The plain HTTP answer to a handshake that must not be accepted."""
    with pytest.raises(HTTPClientError) as raised:
        await websocket_connect(handshake(url, token))  # accepted: the case fails
    response = raised.value.response
    assert response is not None
    return response


async def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def closed(connection: WebSocketClientConnection) -> None:
    connection.close()
    while await asyncio.wait_for(connection.read_message(), 10) is not None:
        pass


@pytest.mark.parametrize("framework", sorted(APPS))
async def test_a_caller_at_its_cap_gets_429_before_accept_while_another_is_accepted(
        framework: str, devcluster: DevCluster, asgi_serve: ServeAsgi) -> None:
    served = await asgi_serve(APPS[framework], {"AUTH_WEBSOCKET_MAX_PER_CALLER": "2"})
    slots = served.auth.websocket_slots
    first = await accepted(served.ws_url, devcluster.mint())
    # The same service account from another pod: the cap is the subject's.
    second = await accepted(served.ws_url, devcluster.mint(pod="collector-6c9d8b7f5-other"))
    response = await refused(served.ws_url, devcluster.mint())
    assert (response.code, response.headers["Retry-After"],
            response.headers["Cache-Control"]) == (429, "5", "no-store")
    assert json.loads(response.body) == {
        "error": "too_many_connections",
        "error_description": "too many WebSocket connections for this caller",
        "reason": "websocket_caller_limit"}
    # Another caller is accepted meanwhile.
    other = await accepted(served.ws_url, devcluster.mint(service_account="other"))
    assert (slots.held("system:serviceaccount:default:collector"),
            slots.held("system:serviceaccount:default:other")) == (2, 1)
    # A place is given back when a connection ends.
    await closed(first)
    await wait_until(lambda: slots.held("system:serviceaccount:default:collector") == 1)
    third = await accepted(served.ws_url, devcluster.mint())
    for connection in (second, other, third):
        await closed(connection)
    await wait_until(lambda: len(slots) == 0)


class CappedFeed(AuthenticatedWebSocketHandler):
    """The Tornado handler with a cap of one connection per caller."""

    max_connections_per_caller: ClassVar[int | None] = 1

    def open(self, *args: Any) -> None:
        self.write_message({"subject": self.identity.subject})


@pytest.mark.parametrize("framework", sorted(APPS))
async def test_the_429_is_the_tornado_handlers(
        framework: str, devcluster: DevCluster, devcluster_serve: Serve,
        asgi_serve: ServeAsgi) -> None:
    tornado_url = (await devcluster_serve([(r"/ws/whoami", CappedFeed)])).replace("http", "ws")
    asgi_url = (await asgi_serve(APPS[framework],
                                 {"AUTH_WEBSOCKET_MAX_PER_CALLER": "1"})).ws_url
    answers = []
    for url in (tornado_url, asgi_url):
        held = await accepted(url, devcluster.mint())
        status, headers, body = answer(await refused(url, devcluster.mint()))
        # uvicorn closes the connection after a refused handshake and says so: its own header.
        headers.pop("connection", None)
        answers.append((status, headers, body))
        await closed(held)
    assert answers[0][0] == 429
    assert answers[1] == answers[0]
