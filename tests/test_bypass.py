"""DNS bypass (issue 5): connect to KUBERNETES_SERVICE_IP, verify TLS and the issuer by name.

The emulator listens on 127.0.0.1 with its own CA. ``api.compass-test.invalid`` can never resolve
(RFC 6761 reserves ``.invalid``), so a 200 through that name proves the pinned address was used,
and a certificate valid for 127.0.0.1 but not for the name proves TLS checks the name.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
import yaml

from compass_auth.apiserver.connection import connect
from compass_auth.apiserver.discovery import DiscoveryClient, FetchError
from compass_auth.apiserver.resolver import Bypass, PinnedResolver, plan_bypass
from compass_auth.testing import DevCluster
from compass_auth.testing.core import DEFAULT_SERVER_CERT_NAMES

from .conftest import StartService
from .helpers import settings_from

NAME = "api.compass-test.invalid"
#: An issuer that is neither the URL we dial nor the emulator's default issuer.
EXTERNAL_ISSUER = "https://oidc.compass-test.invalid/clusters/c1"


@pytest.fixture
def unresolvable() -> str:
    # Precondition, so the 200s below cannot come from a resolver that knows the name.
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(NAME, 443)
    return NAME


@pytest.fixture
def cert_for_name(devcluster: DevCluster) -> None:
    devcluster.set_server_certificate(names=(*DEFAULT_SERVER_CERT_NAMES, NAME))


# --- the plan (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "service_ip", "expected"),
    [
        ("https://10.96.0.1:443", None, None),
        ("https://10.96.0.1:443", "10.96.0.1",
         Bypass("kubernetes.default.svc", "10.96.0.1", "https://kubernetes.default.svc:443")),
        ("https://[fd00::1]:6443", "fd00::1",
         Bypass("kubernetes.default.svc", "fd00::1", "https://kubernetes.default.svc:6443")),
        ("https://Kubernetes.Default.Svc.:443", "10.96.0.1",
         Bypass("kubernetes.default.svc", "10.96.0.1", "https://Kubernetes.Default.Svc.:443")),
        ("https://10.0.0.5/k8s/clusters/c-1", "10.0.0.5",
         Bypass("kubernetes.default.svc", "10.0.0.5", "https://kubernetes.default.svc/k8s/clusters/c-1")),
    ],
)
def test_plan(url: str, service_ip: str | None, expected: Bypass | None) -> None:
    assert plan_bypass(url, service_ip, "kubernetes.default.svc") == expected


async def test_the_resolver_pins_one_name_and_asks_the_fallback_for_others() -> None:
    import aiohttp

    resolver = PinnedResolver({"Kubernetes.Default.Svc": "10.96.0.1"},
                              fallback=aiohttp.ThreadedResolver())
    try:
        [pinned] = await resolver.resolve("kubernetes.default.svc.", 443, socket.AF_UNSPEC)
        assert (pinned["host"], pinned["port"], pinned["family"]) == ("10.96.0.1", 443,
                                                                      socket.AF_INET)
        assert pinned["hostname"] == "kubernetes.default.svc."
        others = await resolver.resolve("localhost", 80, socket.AF_INET)
        assert {item["host"] for item in others} == {"127.0.0.1"}
        with pytest.raises(socket.gaierror):
            await resolver.resolve(NAME, 443, socket.AF_INET)
    finally:
        await resolver.close()


# --- through the emulator -------------------------------------------------------------------


def bypass_environ(devcluster: DevCluster, sa_dir: Path, **env: str) -> dict[str, str]:
    return {**devcluster.incluster_environ(), "AUTH_SERVICEACCOUNT_DIR": str(sa_dir),
            "KUBERNETES_SERVICE_IP": "127.0.0.1", **env}


@pytest.mark.usefixtures("cert_for_name")
async def test_service_host_that_does_not_resolve_with_an_ip_that_serves_it(
    start_service: StartService, devcluster: DevCluster, unresolvable: str
) -> None:
    running = await start_service(in_cluster=True, KUBERNETES_SERVICE_HOST=unresolvable,
                                  KUBERNETES_SERVICE_IP="127.0.0.1")
    response = await running.get(token=running.token())
    assert response.code == 200, response.body
    assert json.loads(response.body)["verified_by"] == "jwks"
    ready = await running.get("/readyz")
    assert json.loads(ready.body)["issuer"] == devcluster.issuer
    # Every call went through the bypass: discovery and the JWKS, and at most the background
    # revocation confirmation of the token verified locally (docs/verification.md#revocation).
    endpoints = [r.endpoint for r in devcluster.request_log]
    assert set(endpoints) - {"tokenreview"} == {"discovery", "jwks"}
    assert endpoints.count("tokenreview") <= 1


@pytest.mark.usefixtures("cert_for_name")
async def test_an_address_in_the_url_is_verified_against_the_api_server_name(
    devcluster: DevCluster, devcluster_sa_dir: Path, unresolvable: str
) -> None:
    environ = bypass_environ(devcluster, devcluster_sa_dir, AUTH_API_SERVER_NAME=unresolvable)
    api = await connect(settings_from(environ), environ)
    try:
        assert api.host == f"https://{NAME}:{devcluster.port}"
        assert api.bypass == Bypass(NAME, "127.0.0.1", api.host)
        assert (await DiscoveryClient(api).fetch()).issuer == devcluster.issuer
    finally:
        await api.close()


async def test_the_default_name_is_kubernetes_default_svc(
    devcluster: DevCluster, devcluster_sa_dir: Path
) -> None:
    environ = bypass_environ(devcluster, devcluster_sa_dir)
    api = await connect(settings_from(environ), environ)
    try:
        assert api.host == f"https://kubernetes.default.svc:{devcluster.port}"
        assert (await DiscoveryClient(api).fetch()).keys
    finally:
        await api.close()


async def test_kubeconfig_server_by_name_with_the_bypass(
    devcluster: DevCluster, tmp_path: Path, cert_for_name: None, unresolvable: str
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc")
    document = yaml.safe_load(kubeconfig.read_text())
    document["clusters"][0]["cluster"]["server"] = f"https://{NAME}:{devcluster.port}"
    kubeconfig.write_text(yaml.safe_dump(document))
    environ = {"KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_IP": "127.0.0.1"}
    api = await connect(settings_from(environ), environ)
    try:
        assert (await DiscoveryClient(api).fetch()).issuer == devcluster.issuer
    finally:
        await api.close()


@pytest.mark.parametrize("names", [
    pytest.param(("127.0.0.1", "localhost"), id="valid for the address only"),
    pytest.param(("kubernetes.default.svc.cluster.local", "127.0.0.1"), id="another name"),
])
async def test_a_certificate_not_valid_for_the_name_is_refused(
    devcluster: DevCluster, devcluster_sa_dir: Path, names: tuple[str, ...]
) -> None:
    devcluster.set_server_certificate(names=names)
    environ = bypass_environ(devcluster, devcluster_sa_dir)
    api = await connect(settings_from(environ), environ)
    try:
        with pytest.raises(FetchError, match=r"kubernetes\.default\.svc") as caught:
            await DiscoveryClient(api).fetch()
    finally:
        await api.close()
    assert "certificate" in str(caught.value).lower()
    # Refused in the handshake: no request ever reached the emulator.
    assert devcluster.request_log == []


async def test_the_service_never_answers_200_behind_a_wrong_certificate(
    start_service: StartService, devcluster: DevCluster
) -> None:
    devcluster.set_server_certificate(names=("127.0.0.1",))
    # Not waiting for start-up: it retries the handshake 1 s, 2 s and 4 s apart meanwhile.
    running = await start_service(wait=False, in_cluster=True, KUBERNETES_SERVICE_IP="127.0.0.1")
    for _ in range(3):
        response = await running.get(token=running.token())
        assert response.code == 503
        # keys_unavailable (and, with a TokenReview fallback, tokenreview_unavailable: the
        # fallback's handshake is refused the same way).
        assert json.loads(response.body)["reason"].endswith("_unavailable")
        await asyncio.sleep(0.1)
    ready = await running.get("/readyz")
    assert (ready.code, json.loads(ready.body)["ready"]) == (503, False)
    assert devcluster.request_log == []


@pytest.mark.usefixtures("cert_for_name")
async def test_the_issuer_is_the_declared_one_not_the_url(
    start_service: StartService, devcluster: DevCluster, unresolvable: str
) -> None:
    devcluster.set_issuer(EXTERNAL_ISSUER)
    running = await start_service(in_cluster=True, KUBERNETES_SERVICE_HOST=unresolvable,
                                  KUBERNETES_SERVICE_IP="127.0.0.1")
    accepted = await running.get(token=running.token())
    assert accepted.code == 200, accepted.body
    for other in (f"https://{NAME}:{devcluster.port}", f"https://{NAME}",
                  "https://kubernetes.default.svc.cluster.local", "https://127.0.0.1"):
        refused = await running.get(token=running.token(issuer=other))
        assert refused.code == 401, other
        assert json.loads(refused.body)["reason"] == "issuer_mismatch"


@pytest.mark.usefixtures("cert_for_name")
async def test_pinned_issuers_in_bypass_mode(
    start_service: StartService, devcluster: DevCluster, unresolvable: str
) -> None:
    devcluster.set_issuer(EXTERNAL_ISSUER)
    old = "https://kubernetes.default.svc.cluster.local"
    running = await start_service(in_cluster=True, KUBERNETES_SERVICE_HOST=unresolvable,
                                  KUBERNETES_SERVICE_IP="127.0.0.1",
                                  AUTH_ISSUER=f"{EXTERNAL_ISSUER},{old}")
    for issuer in (EXTERNAL_ISSUER, old):
        assert (await running.get(token=running.token(issuer=issuer))).code == 200
    refused = await running.get(token=running.token(issuer="https://kubernetes.default.svc"))
    assert refused.code == 401
