"""inventory-service against compass-auth's cluster emulator, over real HTTP and WebSocket.

Written from compass-auth's documentation alone: the fixtures ``devcluster`` and
``devcluster_serve`` come from the ``compass-auth[testing]`` pytest plugin, loaded through its
entry point, and pytest-asyncio comes with that extra. This project declares no
``pytest_plugins``, no ``conftest.py`` and no pytest-asyncio settings.
"""

from __future__ import annotations

import json
import time

import pytest
import pytest_asyncio
from inventory_service.app import AUDIENCE, make_app
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import websocket_connect

from compass_auth.testing import DevCluster

pytestmark = pytest.mark.asyncio

CHECKOUT_POD = "checkout-7d9f8c6b5-q2w4e"
CHECKOUT = {
    "subject": "system:serviceaccount:shop:checkout",
    "namespace": "shop",
    "service_account": "checkout",
    "pod": CHECKOUT_POD,
}
#: The Role and RoleBinding that let the auditor read the audits of namespace "shop".
AUDITOR_GRANT = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: audit-reader, namespace: shop}
rules:
  - apiGroups: [inventory.example.com]
    resources: [audits]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: auditor-reads-audits, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: audit-reader}
subjects:
  - {kind: ServiceAccount, name: auditor, namespace: compliance}
"""


@pytest_asyncio.fixture
async def inventory(devcluster_serve) -> str:
    """The service on a loopback port, verifying against the emulator; its base URL."""
    url: str = await devcluster_serve(make_app, {"AUTH_AUDIENCE": AUDIENCE})
    return url


async def call(url: str, token: str, method: str = "GET") -> tuple[HTTPResponse, dict[str, object]]:
    response = await AsyncHTTPClient().fetch(
        url,
        method=method,
        body=b"" if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}"},
        raise_error=False,
    )
    return response, json.loads(response.body)


def checkout_token(
    cluster: DevCluster, audiences: tuple[str, ...] = (AUDIENCE,), pod: str | None = CHECKOUT_POD,
    lifetime: int = 3600,
) -> str:
    """A token of the checkout workload, bound to its pod (or, with ``pod=None``, only to its
    service account)."""
    return cluster.mint(namespace="shop", service_account="checkout", audiences=audiences,
                        pod=pod, node="kind-worker" if pod else None, lifetime=lifetime)


def auditor_token(cluster: DevCluster) -> str:
    return cluster.mint(namespace="compliance", service_account="auditor", audiences=(AUDIENCE,))


async def test_checkout_reads_stock_and_sees_its_identity(
    inventory: str, devcluster: DevCluster
) -> None:
    response, body = await call(f"{inventory}/stock/widget", checkout_token(devcluster))
    assert response.code == 200
    assert body == {"sku": "widget", "available": 12, "caller": CHECKOUT}


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
    assert body["caller"] == CHECKOUT


async def test_rbac_lets_the_bound_auditor_in_and_denies_the_rest(
    inventory: str, devcluster: DevCluster
) -> None:
    devcluster.load_rbac(AUDITOR_GRANT)  # dropped again when the test ends
    response, body = await call(f"{inventory}/audits/shop", auditor_token(devcluster))
    assert response.code == 200
    assert body["namespace"] == "shop"
    # The grant is for namespace "shop" only; checkout has none at all.
    response, body = await call(f"{inventory}/audits/billing", auditor_token(devcluster))
    assert (response.code, body["reason"]) == (403, "access_denied")
    response, body = await call(f"{inventory}/audits/shop", checkout_token(devcluster))
    assert (response.code, body["reason"]) == (403, "access_denied")


async def test_denied_then_granted_with_the_denial_cache_off(
    devcluster_serve, devcluster: DevCluster
) -> None:
    # A denial is cached for 30 s per caller; the testing README's one line turns that off.
    url = await devcluster_serve(make_app, {"AUTH_AUDIENCE": AUDIENCE,
                                            "AUTH_AUTHZ_DENIED_TTL": "0"})
    token = auditor_token(devcluster)
    response, _ = await call(f"{url}/audits/shop", token)
    assert response.code == 403
    devcluster.load_rbac(AUDITOR_GRANT)
    response, _ = await call(f"{url}/audits/shop", token)
    assert response.code == 200


async def test_stock_feed_answers_and_is_closed_when_the_token_expires(
    inventory: str, devcluster: DevCluster
) -> None:
    lifetime = 2
    minted = time.monotonic()
    token = checkout_token(devcluster, lifetime=lifetime)
    ws_url = "ws" + inventory.removeprefix("http") + "/ws/stock"
    connection = await websocket_connect(
        HTTPRequest(ws_url, headers={"Authorization": f"Bearer {token}"}))
    assert json.loads(await connection.read_message() or "") == {"hello": CHECKOUT["subject"]}
    await connection.write_message("widget")
    assert json.loads(await connection.read_message() or "") == {"sku": "widget",
                                                                 "available": 12}
    # Nothing more until the token expires; then the server closes with 1008.
    assert await connection.read_message() is None
    assert (connection.close_code, connection.close_reason) == (1008, "token expired")
    # At the token's exp (whole seconds), not before it and not at some later timeout.
    assert lifetime - 1.5 <= time.monotonic() - minted < lifetime + 30


async def test_stock_feed_refuses_another_workload_before_the_upgrade(
    inventory: str, devcluster: DevCluster
) -> None:
    token = devcluster.mint(namespace="shop", service_account="search", audiences=(AUDIENCE,))
    ws_url = "ws" + inventory.removeprefix("http") + "/ws/stock"
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"Bearer {token}"}))
    assert refused.value.code == 403
