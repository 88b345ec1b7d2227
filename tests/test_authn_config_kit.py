"""The test kit writes AuthenticationConfiguration files for its emulated issuers (issue 22
item 7), and the library reads them: every file written here is loaded with
``compass_auth.authn_config``, so the kit (which shares no code with the library) and the library
agree. Then each entry is followed as kube-apiserver's JWT authenticator follows it, over real
HTTPS: discovery at ``discoveryURL`` or under ``url``, trusting only ``certificateAuthority``,
without credentials; the JWKS the document names; a minted token verified and mapped to a user.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from compass_auth.authn_config import (
    AuthenticationConfig,
    AuthenticationConfigError,
    ClaimRejected,
    IssuerUnknown,
    load_authentication_config,
    user_from_claims,
)
from compass_auth.authn_config.validation import CompiledAuthenticator
from compass_auth.testing import (
    DevCluster,
    OidcIssuer,
    authentication_config,
    jwt_authenticator,
    write_authentication_config,
)
from compass_auth.testing.fixtures import WriteConfig

from .devcluster.kubehttp import get_url

WELL_KNOWN = "/.well-known/openid-configuration"


def follow(entry: CompiledAuthenticator, token: str) -> dict[str, Any]:
    """What the JWT authenticator does with one entry, from the loaded values only: fetch
    discovery (no credentials, the entry's CA), check its issuer, fetch the JWKS, verify."""
    issuer = entry.spec.issuer
    where = issuer.discovery_url or issuer.url.rstrip("/") + WELL_KNOWN
    document = get_url(where, issuer.certificate_authority)
    assert document.status == 200, document.body
    assert document.json()["issuer"] == issuer.url  # go-oidc: the document names the issuer
    keys = get_url(document.json()["jwks_uri"], issuer.certificate_authority)
    assert keys.status == 200, keys.body
    key = jwt.PyJWKSet.from_dict(keys.json())[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256", "ES256"], issuer=issuer.url,
        audience=list(issuer.audiences), options={"require": ["exp", "iat", "iss", "aud"]})
    return claims


def load(path: Path, local: DevCluster) -> AuthenticationConfig:
    # The session cluster's issuer is the local service-account issuer: no entry may name it.
    return load_authentication_config(path, disallowed_issuers=[local.issuer])


def test_a_config_for_a_second_cluster_and_an_oidc_issuer_loads_and_routes(
        devcluster: DevCluster, second_cluster: DevCluster, oidc_issuer: OidcIssuer,
        authentication_config_file: WriteConfig) -> None:
    path = authentication_config_file([oidc_issuer, second_cluster])
    config = load(path, devcluster)
    assert config.issuers == (oidc_issuer.issuer, second_cluster.issuer)
    oidc_entry = config.authenticator_for(oidc_issuer.issuer)
    remote_entry = config.authenticator_for(second_cluster.issuer)
    # Served under its URL: no discoveryURL. The cluster's issuer is not served: discoveryURL.
    assert oidc_entry.spec.issuer.discovery_url == ""
    assert remote_entry.spec.issuer.discovery_url == second_cluster.discovery_url
    assert oidc_entry.spec.issuer.certificate_authority == oidc_issuer.ca_pem.decode()
    assert remote_entry.spec.issuer.certificate_authority == second_cluster.ca_pem.decode()
    assert oidc_entry.spec.issuer.audiences == ("compass-internal",)

    token = oidc_issuer.mint("ci:job-7", claims={"groups": ["builders"]})
    user = user_from_claims(follow(oidc_entry, token), oidc_entry)
    prefix = f"{oidc_issuer.issuer}#"
    assert (user.username, user.groups) == (prefix + "ci:job-7", (prefix + "builders",))

    remote_token = second_cluster.mint(namespace="team-b", service_account="builder")
    user = user_from_claims(follow(remote_entry, remote_token), remote_entry)
    assert user.username == "https://second-cluster.example#system:serviceaccount:team-b:builder"
    assert user.groups == ()  # a service-account token has no groups claim
    # The session cluster's tokens belong to no entry.
    with pytest.raises(IssuerUnknown):
        config.authenticator_for(devcluster.issuer)
    # A cross-issuer token does not verify: the second cluster's keys are not the issuer's.
    with pytest.raises(KeyError):
        follow(oidc_entry, remote_token)


def test_the_written_file_is_the_upstream_shape(
        devcluster: DevCluster, second_cluster: DevCluster, oidc_issuer: OidcIssuer,
        tmp_path: Path) -> None:
    path = write_authentication_config(tmp_path / "authn.yaml", [second_cluster],
                                       audiences=["compass-internal", "reports"], prefix="b:")
    assert yaml.safe_load(path.read_text()) == {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": {
                "url": "https://second-cluster.example",
                "discoveryURL": second_cluster.url + WELL_KNOWN,
                "certificateAuthority": second_cluster.ca_pem.decode(),
                "audiences": ["compass-internal", "reports"],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimMappings": {"username": {"claim": "sub", "prefix": "b:"},
                              "groups": {"claim": "groups", "prefix": "b:"}},
        }],
    }
    config = load(path, devcluster)
    entry = config.authenticator_for(second_cluster.issuer)
    token = second_cluster.mint(audiences=("reports",))
    assert user_from_claims(follow(entry, token), entry).username == (
        "b:system:serviceaccount:default:collector")


@pytest.mark.parametrize("file_format", ["yaml", "json"])
@pytest.mark.parametrize("api_version", ["apiserver.config.k8s.io/v1",
                                         "apiserver.config.k8s.io/v1beta1"])
def test_both_formats_and_versions_load(devcluster: DevCluster, oidc_issuer: OidcIssuer,
                                        tmp_path: Path, file_format: str,
                                        api_version: str) -> None:
    path = write_authentication_config(tmp_path / f"authn.{file_format}", [oidc_issuer],
                                       file_format=file_format,  # type: ignore[arg-type]
                                       api_version=api_version)
    if file_format == "json":
        assert json.loads(path.read_text())["apiVersion"] == api_version
    assert load(path, devcluster).spec.api_version == api_version


def test_claim_rules_and_cel_mappings_are_written_as_given(
        devcluster: DevCluster, oidc_issuer: OidcIssuer,
        authentication_config_file: WriteConfig) -> None:
    """Email as the username, as upstream requires it: with a check of ``email_verified``."""
    path = authentication_config_file(
        [oidc_issuer],
        claim_validation_rules=[{"claim": "repository_owner", "requiredValue": "compass"},
                                {"expression": "claims.email_verified == true",
                                 "message": "email not verified"}],
        claim_mappings={"username": {"expression": "'ci:' + claims.email"},
                        "groups": {"expression": "claims.groups.map(g, 'ci:' + g)"},
                        "extra": [{"key": "example.com/repository",
                                   "valueExpression": "claims.repository"}]},
        user_validation_rules=[{"expression": "!user.username.startsWith('system:')",
                                "message": "no system users"}])
    entry = load(path, devcluster).authenticator_for(oidc_issuer.issuer)
    good = oidc_issuer.mint(claims={"email": "bot@example.com", "email_verified": True,
                                    "groups": ["a", "b"], "repository_owner": "compass",
                                    "repository": "compass/auth"})
    user = user_from_claims(follow(entry, good), entry)
    assert (user.username, user.groups) == ("ci:bot@example.com", ("ci:a", "ci:b"))
    assert user.extra["example.com/repository"] == ("compass/auth",)
    unverified = oidc_issuer.mint(claims={"email": "bot@example.com", "email_verified": False,
                                          "groups": [], "repository_owner": "compass",
                                          "repository": "x"})
    with pytest.raises(ClaimRejected):
        user_from_claims(follow(entry, unverified), entry)


def test_a_remote_cluster_s_groups_through_cel(devcluster: DevCluster,
                                               second_cluster: DevCluster,
                                               authentication_config_file: WriteConfig) -> None:
    """What the API server's TokenReview adds to a service account (its groups), given to
    another cluster's tokens by a mapping, so a binding to that cluster's group can work."""
    path = authentication_config_file([second_cluster], claim_mappings={
        "username": {"claim": "sub", "prefix": "cluster-b:"},
        "groups": {"expression": "['cluster-b:system:serviceaccounts', "
                                 "'cluster-b:system:serviceaccounts:' + "
                                 "claims['kubernetes.io'].namespace]"},
        "uid": {"expression": "claims['kubernetes.io'].serviceaccount.uid"}})
    entry = load(path, devcluster).authenticator_for(second_cluster.issuer)
    token = second_cluster.mint(namespace="team-b", service_account="builder")
    user = user_from_claims(follow(entry, token), entry)
    assert user.username == "cluster-b:system:serviceaccount:team-b:builder"
    assert user.groups == ("cluster-b:system:serviceaccounts",
                           "cluster-b:system:serviceaccounts:team-b")
    assert user.uid == second_cluster.service_account_uid("team-b", "builder")


def test_an_issuer_declared_elsewhere_gets_a_discovery_url(devcluster: DevCluster,
                                                          tmp_path: Path) -> None:
    with OidcIssuer("/gh", issuer="https://token.actions.example") as issuer:
        entry = jwt_authenticator(issuer)
        assert entry["issuer"]["discoveryURL"] == issuer.url + "/gh" + WELL_KNOWN
        path = write_authentication_config(tmp_path / "authn.yaml", [entry])
        loaded = load(path, devcluster).authenticator_for("https://token.actions.example")
        claims = follow(loaded, issuer.mint("repo:compass/auth:ref:refs/heads/main"))
        assert claims["iss"] == "https://token.actions.example"


def test_ready_entries_and_emulators_mix_and_rewriting_replaces_the_file(
        devcluster: DevCluster, second_cluster: DevCluster, oidc_issuer: OidcIssuer,
        authentication_config_file: WriteConfig) -> None:
    custom = jwt_authenticator(oidc_issuer, audiences=["other"], prefix="")
    document = authentication_config([custom, second_cluster], prefix="b:")
    assert document["jwt"][0]["claimMappings"]["username"] == {"claim": "sub", "prefix": ""}
    assert document["jwt"][1]["claimMappings"]["username"] == {"claim": "sub", "prefix": "b:"}
    first = authentication_config_file([custom, second_cluster])
    assert len(load(first, devcluster).authenticators) == 2
    again = authentication_config_file([oidc_issuer])  # same name: a reload
    assert again == first
    assert load(again, devcluster).issuers == (oidc_issuer.issuer,)
    assert [entry.name for entry in again.parent.iterdir()] == [again.name]  # no leftovers


def test_the_library_still_refuses_what_the_kit_is_asked_to_write(
        devcluster: DevCluster, oidc_issuer: OidcIssuer, tmp_path: Path) -> None:
    """The kit writes what it is given; the library judges. Naming the local cluster's issuer, or
    one issuer twice, is refused at load with the field path."""
    path = write_authentication_config(tmp_path / "authn.yaml", [devcluster, oidc_issuer,
                                                                 oidc_issuer])
    with pytest.raises(AuthenticationConfigError) as refused:
        load(path, devcluster)
    message = str(refused.value)
    assert "jwt[0].issuer.url" in message
    assert "disallowed issuers" in message
    assert "jwt[2].issuer.url: Duplicate value" in message
    with pytest.raises(TypeError, match="not a string"):
        jwt_authenticator(oidc_issuer, audiences="compass-internal")
