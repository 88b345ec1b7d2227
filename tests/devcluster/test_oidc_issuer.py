"""The plain OIDC issuer of the test kit (``OidcIssuer``, issue 22 item 7) over real HTTPS:
discovery under the issuer's path, the JWKS it names, tokens with any claims, key rotation and
retirement, and the fault switches."""

from __future__ import annotations

import http.client
import ssl
import threading
import time

import jwt
import pytest

from compass_auth.testing import Fault, OidcIssuer

from .kubehttp import Response, get_url, payload_of, segments


def discovery(issuer: OidcIssuer) -> Response:
    return get_url(issuer.discovery_url, issuer.ca_pem)


def verify(token: str, jwks: dict[str, object], issuer: str, audience: str) -> dict[str, object]:
    """PyJWT against a fetched key set: the issuer's tokens verify as any OIDC client's would."""
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, object] = jwt.decode(token, key, algorithms=["RS256", "ES256"],
                                           audience=audience, issuer=issuer)
    return claims


def test_discovery_is_served_under_the_issuer_path_and_names_the_jwks(
        oidc_issuer: OidcIssuer) -> None:
    assert oidc_issuer.issuer == oidc_issuer.url + "/realms/compass"
    assert oidc_issuer.discovery_url == oidc_issuer.issuer + "/.well-known/openid-configuration"
    answer = discovery(oidc_issuer)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert "Server" not in answer.headers
    assert answer.json() == {
        "issuer": oidc_issuer.issuer,
        "jwks_uri": oidc_issuer.issuer + "/keys",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    keys = get_url(answer.json()["jwks_uri"], oidc_issuer.ca_pem)
    assert keys.status == 200
    assert keys.headers["Content-Type"] == "application/jwk-set+json"
    assert keys.json() == oidc_issuer.jwks()
    assert [key["kid"] for key in keys.json()["keys"]] == [oidc_issuer.signing_key_id]
    # Nothing else is served, not even discovery at the root.
    assert get_url(oidc_issuer.url + "/.well-known/openid-configuration",
                   oidc_issuer.ca_pem).status == 404
    assert oidc_issuer.request_count("discovery") == 1
    assert oidc_issuer.request_count("jwks") == 1
    assert oidc_issuer.request_count("notfound") == 1


def test_mint_carries_any_claims_and_verifies_against_the_served_keys(
        oidc_issuer: OidcIssuer) -> None:
    token = oidc_issuer.mint("ci:job-42", claims={
        "email": "ci@example.com", "email_verified": True, "groups": ["builders", "readers"],
        "repository": "compass/auth", "nbf": None})
    header, _, _ = segments(token)
    assert header == (b'{"alg":"RS256","kid":"' + oidc_issuer.signing_key_id.encode()
                      + b'","typ":"JWT"}')
    claims = verify(token, get_url(oidc_issuer.jwks_uri, oidc_issuer.ca_pem).json(),
                    oidc_issuer.issuer, "compass-internal")
    assert claims["sub"] == "ci:job-42"
    assert claims["aud"] == "compass-internal"  # a string audience stays a string
    assert claims["groups"] == ["builders", "readers"]
    assert claims["email_verified"] is True
    assert "nbf" not in claims  # None deletes a claim
    assert isinstance(claims["exp"], int)
    assert isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] == 600
    assert len(str(claims["jti"])) == 36
    listed = payload_of(oidc_issuer.mint(audience=("a", "b"), expires_in=30, issued_at=1000))
    assert (listed["aud"], listed["iat"], listed["exp"]) == (["a", "b"], 1000, 1030)


def test_an_ec_issuer_signs_es256() -> None:
    with OidcIssuer(key_type="EC") as issuer:
        assert issuer.issuer == issuer.url  # no path: the served origin
        assert discovery(issuer).json()["id_token_signing_alg_values_supported"] == ["ES256"]
        token = issuer.mint()
        assert verify(token, issuer.jwks(), issuer.issuer, "compass-internal")["sub"] == "alice"


def test_an_issuer_declared_elsewhere_is_served_at_its_discovery_url() -> None:
    """``issuer=``: the discovery document and tokens name it; the configuration then needs
    ``discoveryURL`` (upstream: the document's issuer must equal ``issuer.url``)."""
    with OidcIssuer("/gh", issuer="https://token.actions.example") as issuer:
        assert issuer.issuer == "https://token.actions.example"
        assert issuer.discovery_url == issuer.url + "/gh/.well-known/openid-configuration"
        document = discovery(issuer).json()
        assert document["issuer"] == "https://token.actions.example"
        assert document["jwks_uri"] == issuer.url + "/gh/keys"
        assert payload_of(issuer.mint())["iss"] == "https://token.actions.example"


def test_rotation_publishes_a_new_key_and_retirement_unpublishes_the_old(
        oidc_issuer: OidcIssuer) -> None:
    old = oidc_issuer.signing_key_id
    new = oidc_issuer.rotate_key()
    try:
        assert new != old
        assert oidc_issuer.signing_key_id == new
        served = get_url(oidc_issuer.jwks_uri, oidc_issuer.ca_pem).json()
        assert [key["kid"] for key in served["keys"]] == [old, new]
        assert segments(oidc_issuer.mint())[0].count(new.encode()) == 1
        oidc_issuer.remove_key(old)
        served = get_url(oidc_issuer.jwks_uri, oidc_issuer.ca_pem).json()
        assert [key["kid"] for key in served["keys"]] == [new]
        # A retired key still signs: a token the verifier can no longer find a key for.
        stale = oidc_issuer.mint(kid=old)
        with pytest.raises(KeyError):
            jwt.PyJWKSet.from_dict(served)[old]
        assert jwt.get_unverified_header(stale)["kid"] == old
        with pytest.raises(ValueError, match="current signing key"):
            oidc_issuer.remove_key(new)
        added = oidc_issuer.add_key("EC")  # published, not signing yet
        assert oidc_issuer.signing_key_id == new
        assert discovery(oidc_issuer).json()["id_token_signing_alg_values_supported"] == [
            "RS256", "ES256"]
        oidc_issuer.rotate_key()
        oidc_issuer.remove_key(added)
        oidc_issuer.remove_key(new)
    finally:
        assert len(oidc_issuer.jwks()["keys"]) == 1  # one key left for the next test


@pytest.mark.parametrize("endpoint", ["discovery", "jwks"])
def test_a_fault_breaks_one_endpoint_then_clears(oidc_issuer: OidcIssuer, endpoint: str) -> None:
    url = oidc_issuer.discovery_url if endpoint == "discovery" else oidc_issuer.jwks_uri
    other = oidc_issuer.jwks_uri if endpoint == "discovery" else oidc_issuer.discovery_url
    oidc_issuer.set_fault(endpoint, Fault(status=503, retry_after=7, times=2))
    for _ in range(2):
        answer = get_url(url, oidc_issuer.ca_pem)
        assert answer.status == 503
        assert answer.headers["Retry-After"] == "7"
        assert answer.json() == {"error": "server_error", "status": 503}
        assert get_url(other, oidc_issuer.ca_pem).status == 200
    assert get_url(url, oidc_issuer.ca_pem).status == 200  # times=2 ran out
    assert oidc_issuer.request_count(endpoint) == 3
    oidc_issuer.set_fault(endpoint, Fault(body=b"not json"))
    answer = get_url(url, oidc_issuer.ca_pem)
    assert (answer.status, answer.body) == (200, b"not json")
    oidc_issuer.set_fault("all", Fault(status=500))
    assert get_url(other, oidc_issuer.ca_pem).status == 500
    assert get_url(url, oidc_issuer.ca_pem).status == 200  # the endpoint's own fault wins
    oidc_issuer.reset()
    assert get_url(other, oidc_issuer.ca_pem).status == 200
    assert oidc_issuer.request_count(endpoint) == 0


def test_a_dropped_connection_and_a_paused_issuer(oidc_issuer: OidcIssuer) -> None:
    oidc_issuer.set_fault("jwks", Fault(drop=True, times=1))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        get_url(oidc_issuer.jwks_uri, oidc_issuer.ca_pem)
    assert [record.status for record in oidc_issuer.request_log] == [0]
    oidc_issuer.pause()
    with pytest.raises(ConnectionRefusedError):
        discovery(oidc_issuer)
    oidc_issuer.resume()
    assert discovery(oidc_issuer).status == 200


def test_a_slow_endpoint_does_not_hold_up_the_other(oidc_issuer: OidcIssuer) -> None:
    """The delay is an async sleep: the JWKS answers while discovery is still waiting."""
    oidc_issuer.set_fault("discovery", Fault(delay=3, times=1))
    slow: list[float] = []

    def fetch() -> None:
        started = time.monotonic()
        assert discovery(oidc_issuer).status == 200
        slow.append(time.monotonic() - started)

    thread = threading.Thread(target=fetch)
    thread.start()
    try:
        time.sleep(0.3)  # let the slow request reach the server
        assert get_url(oidc_issuer.jwks_uri, oidc_issuer.ca_pem).status == 200
        assert thread.is_alive()
        assert not slow
    finally:
        thread.join(10)
    assert slow
    assert slow[0] >= 3
    assert [record.endpoint for record in oidc_issuer.request_log] == ["jwks", "discovery"]


def test_its_certificate_is_checked_against_its_own_ca(oidc_issuer: OidcIssuer) -> None:
    with OidcIssuer() as stranger, pytest.raises(ssl.SSLCertVerificationError):
        get_url(oidc_issuer.discovery_url, stranger.ca_pem)
    oidc_issuer.set_server_certificate(self_signed=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        discovery(oidc_issuer)
    oidc_issuer.reset()
    assert discovery(oidc_issuer).status == 200


def test_the_clock_moves_only_this_issuer(oidc_issuer: OidcIssuer) -> None:
    before = int(time.time())
    oidc_issuer.advance_clock(3600)
    assert oidc_issuer.clock_offset == 3600
    assert payload_of(oidc_issuer.mint())["iat"] >= before + 3600
    oidc_issuer.reset()
    assert oidc_issuer.clock_offset == 0


def test_misuse_is_refused_with_a_sentence() -> None:
    unstarted = OidcIssuer("/x")
    with pytest.raises(RuntimeError, match="not started"):
        unstarted.mint()
    with pytest.raises(ValueError, match="path must be empty"):
        OidcIssuer("x/")
    with pytest.raises(ValueError, match="unknown endpoint"):
        unstarted.set_fault("tokenreview", Fault(status=500))
    with pytest.raises(ValueError, match="unsupported key type"):
        OidcIssuer(key_type="DSA")  # type: ignore[arg-type]
