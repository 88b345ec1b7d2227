"""inventory-service against compass-auth's cluster emulator, over real HTTP.

The fixtures ``devcluster`` and ``devcluster_kubeconfig`` come from the ``compass-auth[testing]``
pytest plugin, loaded through its entry point: this project declares no ``pytest_plugins``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tornado.httpserver
import tornado.netutil
from inventory_service.app import AUDIENCE, connect, make_app
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from compass_auth.testing import DevCluster


@pytest.fixture
async def inventory(devcluster_kubeconfig: Path) -> AsyncIterator[str]:
    """The service on a loopback port, verifying against the emulator; yields its base URL."""
    authenticator = await connect({"KUBECONFIG": str(devcluster_kubeconfig)})
    await authenticator.wait_started()
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(make_app(authenticator))
    server.add_sockets(sockets)
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    finally:
        server.stop()
        await server.close_all_connections()
        await authenticator.close()


async def call(url: str, token: str, method: str = "GET") -> tuple[HTTPResponse, dict[str, object]]:
    response = await AsyncHTTPClient().fetch(
        url,
        method=method,
        body=b"" if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}"},
        raise_error=False,
    )
    return response, json.loads(response.body)


CHECKOUT_POD = "checkout-7d9f8c6b5-q2w4e"


def checkout_token(
    cluster: DevCluster, audiences: tuple[str, ...] = (AUDIENCE,), pod: str | None = CHECKOUT_POD
) -> str:
    """A token of the checkout workload, bound to its pod (or, with ``pod=None``, only to its
    service account)."""
    return cluster.mint(namespace="shop", service_account="checkout", audiences=audiences,
                        pod=pod, node="kind-worker" if pod else None)


async def test_checkout_reads_stock_and_sees_its_identity(
    inventory: str, devcluster: DevCluster
) -> None:
    response, body = await call(f"{inventory}/stock/widget", checkout_token(devcluster))
    assert response.code == 200
    assert body == {
        "sku": "widget",
        "available": 12,
        "caller": {
            "subject": "system:serviceaccount:shop:checkout",
            "namespace": "shop",
            "service_account": "checkout",
            "pod": CHECKOUT_POD,
        },
    }


async def test_token_for_another_audience_is_401(inventory: str, devcluster: DevCluster) -> None:
    token = checkout_token(devcluster, audiences=("billing",))
    response, body = await call(f"{inventory}/stock/widget", token)
    assert response.code == 401
    assert body["reason"] == "audience_mismatch"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_caller_outside_the_allowed_subjects_is_403(
    inventory: str, devcluster: DevCluster
) -> None:
    token = devcluster.mint(namespace="shop", service_account="search", audiences=(AUDIENCE,))
    response, body = await call(f"{inventory}/stock/widget", token)
    assert response.code == 403
    assert body["reason"] == "subject_not_allowed"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_reservation_needs_a_pod_bound_token(inventory: str, devcluster: DevCluster) -> None:
    url = f"{inventory}/reservations/widget"
    unbound = checkout_token(devcluster, pod=None)
    response, body = await call(url, unbound, method="POST")
    assert response.code == 403
    assert body["error_description"] == "reservations need a pod-bound token"
    response, body = await call(url, checkout_token(devcluster), method="POST")
    assert response.code == 201
    assert body["caller"] == {
        "subject": "system:serviceaccount:shop:checkout",
        "namespace": "shop",
        "service_account": "checkout",
        "pod": CHECKOUT_POD,
    }
