"""Several emulated issuers in one process (issue 22 item 7): the session's cluster, a second
cluster and a plain OIDC issuer, each with its own CA, keys, issuer, faults, clock and request
log, over real HTTPS. A second cluster is trusted the way kube-apiserver's JWT authenticator
reaches one: its discovery document through ``discoveryURL`` and the ``jwks_uri`` it names, with
no credentials."""

from __future__ import annotations

import http.client
import ssl
from typing import Any

import jwt
import pytest

from compass_auth.testing import ANONYMOUS_DISCOVERY_RBAC, DevCluster, Fault, OidcIssuer

from .kubehttp import Response, call, get_url, payload_of, review

Issuer = DevCluster | OidcIssuer


def fetch_keys(source: Issuer, token: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Discovery at ``discovery_url``, then the JWKS it names, trusting only the source's CA.

    The session's cluster names a kind node's address as ``jwks_uri`` (not loopback, on
    purpose): its keys are fetched through its served URL instead, never from that address.
    """
    document = get_url(source.discovery_url, source.ca_pem, token=token)
    assert document.status == 200, document.body
    jwks_uri = document.json()["jwks_uri"]
    if not jwks_uri.startswith(source.url):
        assert isinstance(source, DevCluster)
        assert jwks_uri == source.jwks_uri
        jwks_uri = source.url + "/openid/v1/jwks"
    keys = get_url(jwks_uri, source.ca_pem, token=token)
    assert keys.status == 200, keys.body
    return document.json(), keys.json()


def verifies(token: str, jwks: dict[str, Any]) -> bool:
    """Whether ``token``'s signature verifies with a key of ``jwks`` (claims not checked)."""
    kid = jwt.get_unverified_header(token)["kid"]
    try:
        key = jwt.PyJWKSet.from_dict(jwks)[kid]
    except KeyError:
        return False
    try:
        jwt.decode(token, key, algorithms=["RS256", "ES256"],
                   options={"verify_signature": True, "verify_aud": False, "verify_exp": False})
    except jwt.InvalidSignatureError:
        return False
    return True


@pytest.fixture
def three(devcluster: DevCluster, second_cluster: DevCluster,
          oidc_issuer: OidcIssuer) -> tuple[DevCluster, DevCluster, OidcIssuer]:
    return devcluster, second_cluster, oidc_issuer


def test_three_issuers_each_have_their_own_ca_keys_and_issuer(
        three: tuple[DevCluster, DevCluster, OidcIssuer]) -> None:
    local, remote, oidc = three
    assert len({local.port, remote.port, oidc.port}) == 3
    assert len({local.ca_pem, remote.ca_pem, oidc.ca_pem}) == 3
    assert len({local.issuer, remote.issuer, oidc.issuer}) == 3
    fetched = {
        "local": fetch_keys(local, token=local.service_token()),  # RBAC: service accounts only
        "remote": fetch_keys(remote),  # anonymous, as another cluster fetches it
        "oidc": fetch_keys(oidc),
    }
    sources: dict[str, Issuer] = {"local": local, "remote": remote, "oidc": oidc}
    for name, (document, _) in fetched.items():
        assert document["issuer"] == sources[name].issuer
    # The remote cluster's keys are on its own served URL; the local one's on a kind address.
    assert fetched["remote"][0]["jwks_uri"] == remote.url + "/openid/v1/jwks" == remote.jwks_uri
    assert fetched["local"][0]["jwks_uri"] == "https://172.18.0.2:6443/openid/v1/jwks"
    kids = {name: {key["kid"] for key in keys["keys"]} for name, (_, keys) in fetched.items()}
    assert not kids["local"] & kids["remote"]
    assert not kids["remote"] & kids["oidc"]
    assert not kids["local"] & kids["oidc"]
    # Each token verifies with its issuer's keys and no other's.
    for name, source in sources.items():
        token = source.mint()
        assert payload_of(token)["iss"] == source.issuer
        assert {other: verifies(token, keys) for other, (_, keys) in fetched.items()} == {
            other: other == name for other in fetched}


def test_a_ca_trusts_only_its_own_server(three: tuple[DevCluster, DevCluster, OidcIssuer]) -> None:
    local, remote, oidc = three
    for source, stranger in ((remote, oidc), (oidc, remote), (remote, local)):
        with pytest.raises(ssl.SSLCertVerificationError):
            get_url(source.discovery_url, stranger.ca_pem)


def outage(source: Issuer, kind: str) -> None:
    if kind == "paused":
        source.pause()
    else:
        source.set_fault("all", {"500": Fault(status=500), "dropped": Fault(drop=True),
                                  "503": Fault(status=503, retry_after=1)}[kind])


@pytest.mark.parametrize("kind", ["500", "503", "dropped", "paused"])
@pytest.mark.parametrize("broken", ["remote", "oidc"])
def test_an_outage_of_one_leaves_the_others_serving(
        three: tuple[DevCluster, DevCluster, OidcIssuer], broken: str, kind: str) -> None:
    local, remote, oidc = three
    sources: dict[str, Issuer] = {"remote": remote, "oidc": oidc}
    before = {name: fetch_keys(source) for name, source in sources.items()}
    local_token = local.service_token()
    outage(sources[broken], kind)
    try:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError, AssertionError)):
            fetch_keys(sources[broken])
        for name, source in sources.items():
            if name != broken:
                assert fetch_keys(source) == before[name]
        assert fetch_keys(local, token=local_token)[1] == local.jwks()
        assert call(local, "/version").status == 200
    finally:
        sources[broken].reset()
    assert fetch_keys(sources[broken]) == before[broken]
    # Each request log holds its own server's requests only.
    working = "oidc" if broken == "remote" else "remote"
    assert sources[working].request_count("discovery") == 2
    assert local.request_count("discovery") == 1


def test_rotating_one_issuers_keys_leaves_the_others_keys(
        three: tuple[DevCluster, DevCluster, OidcIssuer]) -> None:
    local, remote, oidc = three
    before = {"local": local.jwks(), "oidc": fetch_keys(oidc)[1]}
    old = remote.signing_key_id
    new = remote.rotate_key()
    remote.remove_key(old)
    _, served = fetch_keys(remote)
    # The session's cluster may hold keys an earlier test added: the new one is served, the
    # removed one is not.
    kids = [key["kid"] for key in served["keys"]]
    assert new in kids
    assert old not in kids
    assert verifies(remote.mint(), served)
    assert not verifies(remote.mint(key_id=old), served)
    assert local.jwks() == before["local"]
    assert fetch_keys(oidc)[1] == before["oidc"]


def test_clocks_faults_and_logs_are_per_instance(
        three: tuple[DevCluster, DevCluster, OidcIssuer]) -> None:
    local, remote, oidc = three
    remote.advance_clock(7200)
    assert (local.clock_offset, remote.clock_offset, oidc.clock_offset) == (0, 7200, 0)
    assert payload_of(remote.mint())["iat"] - payload_of(local.mint())["iat"] >= 7199
    # The local TokenReview still accepts its own fresh token (its clock did not move).
    remote.set_fault("tokenreview", Fault(status=500))
    answer = review(local, local.mint(), audiences=["compass-internal"])
    assert answer.json()["status"]["authenticated"] is True
    assert remote.request_count("tokenreview") == 0
    assert local.request_count("tokenreview") == 1
    # A token of one cluster is not a credential at another (different keys, same shape).
    assert call(remote, "/version", token=local.admin_token).status == 401


def discovery_of(cluster: DevCluster, path: str, token: str | None = None) -> Response:
    return get_url(cluster.url + path, cluster.ca_pem, token=token)


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/openid/v1/jwks"])
def test_anonymous_discovery_follows_the_rbac_binding(devcluster: DevCluster, path: str) -> None:
    """By default only service accounts may read discovery (kube-apiserver's bootstrap policy);
    binding ``system:service-account-issuer-discovery`` to ``system:unauthenticated`` opens it
    to another cluster's authenticator, which sends no credentials."""
    assert discovery_of(devcluster, path).status == 403
    devcluster.load_rbac(ANONYMOUS_DISCOVERY_RBAC)
    assert discovery_of(devcluster, path).status == 200
    devcluster.set_discovery_allowed(False)  # the switch still takes it from everyone
    assert discovery_of(devcluster, path).status == 403
    assert discovery_of(devcluster, path, devcluster.admin_token).status == 200
    devcluster.reset()  # drops the test's binding
    assert discovery_of(devcluster, path).status == 403
    assert discovery_of(devcluster, path, devcluster.service_token()).status == 200


def test_external_address_none_serves_the_jwks_on_the_served_url() -> None:
    with DevCluster(issuer="https://third.example", external_address=None) as cluster:
        token = cluster.service_token()
        document = discovery_of(cluster, "/.well-known/openid-configuration", token).json()
        assert document["issuer"] == "https://third.example"
        assert document["jwks_uri"] == cluster.url + "/openid/v1/jwks" == cluster.jwks_uri
        assert get_url(document["jwks_uri"], cluster.ca_pem, token=token).json() == cluster.jwks()
        assert cluster.discovery_url == cluster.url + "/.well-known/openid-configuration"
