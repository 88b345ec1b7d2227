"""Several issuers in one service (issue 22): ``AUTH_AUTHENTICATION_CONFIG`` names a second
emulated cluster and a plain OIDC issuer besides the cluster the service runs in. Over real HTTPS
against the emulators: each token routes to its own authenticator, one issuer's key rotation or
outage leaves the others untouched, a reload adds and removes an issuer without a restart, and a
remote cluster's service account is authorized through a binding to that cluster's group."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from compass_auth import AuthenticatedHandler, Authenticator, ResourceCheck
from compass_auth.authn_config import AuthenticationConfigError
from compass_auth.core.access import review_body
from compass_auth.testing import DevCluster, Fault, OidcIssuer
from compass_auth.testing.authnconfig import jwt_authenticator
from compass_auth.testing.fixtures import Serve, WriteConfig

from .helpers import claims_of, service_process, settings_from

#: The second cluster's users and groups, prefixed as an administrator would.
SECOND = "second:"
SECOND_MAPPINGS = {
    "username": {"claim": "sub", "prefix": SECOND},
    "groups": {"expression": "['second:system:serviceaccounts', "
                             "'second:system:serviceaccounts:' + "
                             "claims['kubernetes.io'].namespace]"},
    "uid": {"expression": "claims['kubernetes.io'].serviceaccount.uid"},
}
GRANT_SECOND_GROUP = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: report-reader}
rules:
  - {apiGroups: [reports.example.com], resources: [reports], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: second-cluster-team-b-reads-reports}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: report-reader}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group,
     name: "second:system:serviceaccounts:team-b"}
"""


class Who(AuthenticatedHandler):
    async def get(self) -> None:
        identity = self.identity
        self.write({"subject": identity.subject, "groups": list(identity.groups),
                    "authenticator": identity.authenticator, "uid": identity.uid,
                    "pod": identity.pod_name})


class Reports(AuthenticatedHandler):
    required_access = (ResourceCheck("get", "reports", group="reports.example.com"),)

    async def get(self) -> None:
        self.write({"subject": self.identity.subject})


async def get(url: str, token: str) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, headers={"Authorization": f"Bearer {token}"},
                                         raise_error=False)


def body(response: HTTPResponse) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def entries(second_cluster: DevCluster, oidc_issuer: OidcIssuer) -> list[dict[str, Any]]:
    return [jwt_authenticator(second_cluster, claim_mappings=SECOND_MAPPINGS),
            jwt_authenticator(oidc_issuer, prefix="ci:")]


async def serve(devcluster_serve: Serve, path: Path, **environ: str
                ) -> tuple[str, Authenticator]:
    built: list[Authenticator] = []

    def make_app(authenticator: Authenticator) -> tornado.web.Application:
        built.append(authenticator)
        return tornado.web.Application([(r"/who", Who), (r"/reports", Reports)],
                                       authenticator=authenticator)

    url = await devcluster_serve(make_app, {"AUTH_AUTHENTICATION_CONFIG": str(path),
                                            "AUTH_AUTHZ_DENIED_TTL": "0", **environ})
    return url, built[0]


async def test_each_token_routes_to_its_own_authenticator(
    devcluster: DevCluster, second_cluster: DevCluster, oidc_issuer: OidcIssuer,
    devcluster_serve: Serve, authentication_config_file: WriteConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = authentication_config_file(entries(second_cluster, oidc_issuer))
    url, _ = await serve(devcluster_serve, path)

    own = await get(f"{url}/who", devcluster.mint(namespace="default",
                                                  service_account="collector"))
    assert own.code == 200
    assert body(own)["subject"] == "system:serviceaccount:default:collector"
    assert body(own)["authenticator"] is None

    remote_token = second_cluster.mint(namespace="team-b", service_account="builder")
    remote = await get(f"{url}/who", remote_token)
    assert remote.code == 200, remote.body
    answer = body(remote)
    assert answer["subject"] == "second:system:serviceaccount:team-b:builder"
    assert answer["groups"] == ["second:system:serviceaccounts",
                                "second:system:serviceaccounts:team-b", "system:authenticated"]
    assert answer["authenticator"] == second_cluster.issuer
    assert answer["uid"]  # from the expression over kubernetes.io.serviceaccount.uid
    assert answer["pod"] is None  # service-account-only fields stay empty

    ci = await get(f"{url}/who", oidc_issuer.mint("job-7", claims={"groups": ["builders"]}))
    assert ci.code == 200, ci.body
    assert body(ci)["subject"] == "ci:job-7"
    assert body(ci)["groups"] == ["ci:builders", "system:authenticated"]
    assert body(ci)["authenticator"] == oidc_issuer.issuer

    # A token of neither: refused with a stable reason; the cluster never saw a review of it.
    with OidcIssuer("/realms/stranger") as stranger:
        refused = await get(f"{url}/who", stranger.mint("x"))
    assert (refused.code, body(refused)["reason"]) == (401, "issuer_unknown")
    # Another issuer's token for the wrong audience, or signed by the wrong issuer's key.
    wrong_audience = await get(f"{url}/who", oidc_issuer.mint("job-7", audience="vault"))
    assert (wrong_audience.code, body(wrong_audience)["reason"]) == (401, "audience_mismatch")
    # Keys are per issuer: the OIDC issuer's claims under the second cluster's kid (signed by
    # the OIDC key) find no such key among the OIDC issuer's; a symmetric alg is never tried.
    payload = claims_of(oidc_issuer.mint("job-7"))
    foreign_kid = oidc_issuer.sign_raw({"alg": "RS256", "kid": second_cluster.signing_key_id},
                                       payload)
    crossed = await get(f"{url}/who", foreign_kid)
    assert (crossed.code, body(crossed)["reason"]) == (401, "unknown_key")
    hmac = oidc_issuer.sign_raw({"alg": "HS256", "kid": oidc_issuer.signing_key_id}, payload)
    refused_alg = await get(f"{url}/who", hmac)
    assert (refused_alg.code, body(refused_alg)["reason"]) == (401, "unsupported_algorithm")
    # The log line names the authenticator that refused it (telemetry: the same attribute).
    assert any("audience_mismatch (token_fp=" in record.getMessage()
               and f"authenticator={oidc_issuer.issuer})" in record.getMessage()
               for record in caplog.records)
    # The one TokenReview is the background confirmation of the cluster's own token (issue 21,
    # docs/verification.md#revocation). The other cluster's service-account token carries the
    # kubernetes.io claim too, but this API server cannot review it (it would refuse it as
    # revoked): never confirmed here, and still accepted once confirmations had their time.
    assert devcluster.request_count("tokenreview") <= 1
    await asyncio.sleep(0.5)
    again = await get(f"{url}/who", remote_token)
    assert again.code == 200, again.body
    assert devcluster.request_count("tokenreview") <= 1


async def test_subject_lists_match_the_mapped_username(
    devcluster: DevCluster, oidc_issuer: OidcIssuer, devcluster_serve: Serve,
    authentication_config_file: WriteConfig,
) -> None:
    path = authentication_config_file([jwt_authenticator(oidc_issuer, prefix="ci:")])
    url, _ = await serve(devcluster_serve, path, AUTH_ALLOWED_SUBJECTS="ci:job-7")
    assert (await get(f"{url}/who", oidc_issuer.mint("job-7"))).code == 200
    other = await get(f"{url}/who", oidc_issuer.mint("job-8"))
    assert (other.code, body(other)["reason"]) == (403, "subject_not_allowed")
    # The unprefixed claim is not the username: "job-7" alone is not on the list.
    with_sub = await get(f"{url}/who", oidc_issuer.mint("ci:job-7"))
    assert with_sub.code == 403


async def test_a_remote_service_account_is_authorized_by_a_binding_to_its_clusters_group(
    devcluster: DevCluster, second_cluster: DevCluster, oidc_issuer: OidcIssuer,
    devcluster_serve: Serve, authentication_config_file: WriteConfig,
) -> None:
    path = authentication_config_file(entries(second_cluster, oidc_issuer))
    url, authenticator = await serve(devcluster_serve, path)
    token = second_cluster.mint(namespace="team-b", service_account="builder")

    # The review carries exactly the mapped user: name, groups, uid and extra (credential id).
    identity = await authenticator.authenticate_request([f"Bearer {token}"])
    spec = review_body(identity, Reports.required_access[0])["spec"]
    claims = claims_of(token)
    assert spec["user"] == "second:system:serviceaccount:team-b:builder"
    assert spec["groups"] == ["second:system:serviceaccounts",
                              "second:system:serviceaccounts:team-b", "system:authenticated"]
    assert spec["uid"] == claims["kubernetes.io"]["serviceaccount"]["uid"]
    assert spec["extra"] == {"authentication.kubernetes.io/credential-id":
                             [f"JTI={claims['jti']}"]}

    denied = await get(f"{url}/reports", token)
    assert denied.code == 403, denied.body
    devcluster.load_rbac(GRANT_SECOND_GROUP)
    allowed = await get(f"{url}/reports", token)
    assert allowed.code == 200, allowed.body
    assert body(allowed)["subject"] == "second:system:serviceaccount:team-b:builder"
    # The same namespace in the other cluster's own group name is not bound: prefixes keep the
    # two clusters' users apart.
    local = await get(f"{url}/reports", devcluster.mint(namespace="team-b",
                                                         service_account="builder"))
    assert local.code == 403


async def test_one_issuers_rotation_or_outage_leaves_the_others_untouched(
    devcluster: DevCluster, second_cluster: DevCluster, oidc_issuer: OidcIssuer,
    devcluster_serve: Serve, authentication_config_file: WriteConfig,
) -> None:
    # The OIDC issuer is down from the start: its tokens get 503, nobody else's.
    oidc_issuer.set_fault("discovery", Fault(status=503))
    path = authentication_config_file(entries(second_cluster, oidc_issuer))
    # A short cool-down, so that the rotated key is looked for at once (each issuer's own).
    url, authenticator = await serve(devcluster_serve, path,
                                     AUTH_JWKS_MIN_REFRESH_INTERVAL="0.1")
    down = await get(f"{url}/who", oidc_issuer.mint("job-7"))
    assert down.code == 503, down.body
    assert int(down.headers["Retry-After"]) >= 1
    remote = await get(f"{url}/who", second_cluster.mint(namespace="team-b"))
    own = await get(f"{url}/who", devcluster.mint())
    assert (remote.code, own.code) == (200, 200)
    assert authenticator.issuers is not None
    detail = (await authenticator.readiness()).as_dict()
    assert detail["ready"] is True
    issuers = detail["authentication_config"]["issuers"]
    assert issuers[oidc_issuer.issuer]["ready"] is False
    assert "503" in issuers[oidc_issuer.issuer]["last_error"]
    assert issuers[second_cluster.issuer]["ready"] is True

    # A flood of its tokens while it is down: its discovery is asked at most once per
    # cool-down (0.1 s here), not once per token, and no TokenReview is sent for them.
    asked = oidc_issuer.request_count("discovery")
    answers = await asyncio.gather(*(get(f"{url}/who", oidc_issuer.mint(f"job-{n}"))
                                     for n in range(50)))
    assert {answer.code for answer in answers} == {503}
    assert oidc_issuer.request_count("discovery") - asked <= 10
    # At most the background confirmation of the cluster's own token (issue 21); none for the
    # down issuer's tokens.
    assert devcluster.request_count("tokenreview") <= 1

    # The second cluster rotates its key: only its JWKS is fetched again.
    oidc_issuer.clear_faults()
    await asyncio.sleep(0.3)  # past the cool-down: the next token of it fetches its keys
    recovered = await get(f"{url}/who", oidc_issuer.mint("job-7"))
    assert recovered.code == 200, recovered.body
    await asyncio.sleep(0.3)  # any fetch scheduled at the end of the cool-down is done
    before = oidc_issuer.request_count("jwks")
    before_own = devcluster.request_count("jwks")
    second_cluster.rotate_key()
    await asyncio.sleep(0.2)  # past the cool-down since the start-up fetch
    rotated = await get(f"{url}/who", second_cluster.mint(namespace="team-b"))
    assert rotated.code == 200, rotated.body
    assert oidc_issuer.request_count("jwks") == before
    assert devcluster.request_count("jwks") == before_own


async def test_a_reload_adds_and_removes_an_issuer_without_a_restart(
    devcluster: DevCluster, second_cluster: DevCluster, oidc_issuer: OidcIssuer,
    devcluster_serve: Serve, authentication_config_file: WriteConfig,
) -> None:
    path = authentication_config_file([jwt_authenticator(oidc_issuer, prefix="ci:")])
    url, authenticator = await serve(devcluster_serve, path)
    issuers = authenticator.issuers
    assert issuers is not None
    ci_token = oidc_issuer.mint("job-7")
    remote_token = second_cluster.mint(namespace="team-b")
    assert (await get(f"{url}/who", ci_token)).code == 200
    refused = await get(f"{url}/who", remote_token)
    assert (refused.code, body(refused)["reason"]) == (401, "issuer_unknown")

    # Add the second cluster: the OIDC issuer's keys are kept (no second fetch).
    fetched = oidc_issuer.request_count("jwks")
    authentication_config_file(entries(second_cluster, oidc_issuer))
    assert await issuers.reload() is True
    assert (await get(f"{url}/who", remote_token)).code == 200
    assert (await get(f"{url}/who", oidc_issuer.mint("job-8"))).code == 200
    assert oidc_issuer.request_count("jwks") == fetched

    # A broken version is refused: the last good one keeps serving, readiness says why.
    authentication_config_file([jwt_authenticator(oidc_issuer, audiences=())])
    assert await issuers.reload() is False
    assert (await get(f"{url}/who", remote_token)).code == 200
    status = (await authenticator.readiness()).as_dict()["authentication_config"]
    assert "audiences" in status["reload_error"]
    assert issuers.reloads == {"applied": 1, "refused": 1}

    # A version naming the cluster's own issuer (known from discovery) is refused too.
    authentication_config_file([jwt_authenticator(devcluster)])
    assert await issuers.reload() is False
    assert "disallowed issuers" in str(issuers.reload_error)

    # Remove the OIDC issuer: its token, verified and cached before, is refused at once.
    authentication_config_file([jwt_authenticator(second_cluster,
                                                  claim_mappings=SECOND_MAPPINGS)])
    assert await issuers.reload() is True
    gone = await get(f"{url}/who", ci_token)
    assert (gone.code, body(gone)["reason"]) == (401, "issuer_unknown")
    assert (await get(f"{url}/who", remote_token)).code == 200


async def test_the_file_is_polled(
    devcluster: DevCluster, oidc_issuer: OidcIssuer, second_cluster: DevCluster,
    devcluster_serve: Serve, authentication_config_file: WriteConfig,
) -> None:
    path = authentication_config_file([jwt_authenticator(oidc_issuer)])
    url, authenticator = await serve(devcluster_serve, path)
    assert authenticator.issuers is not None
    assert authenticator.issuers.reload_interval == 10.0
    authenticator.issuers.reload_interval = 0.05  # the next wait; the loop reads it each time
    authentication_config_file(entries(second_cluster, oidc_issuer))
    for _ in range(400):  # up to ~20 s: the loop's current wait is 10 s
        if second_cluster.issuer in authenticator.issuers.states:
            break
        await asyncio.sleep(0.05)
    assert (await get(f"{url}/who", second_cluster.mint(namespace="team-b"))).code == 200


async def test_a_bad_file_stops_start_up_naming_the_file_the_field_and_the_rule(
    devcluster: DevCluster, oidc_issuer: OidcIssuer, authentication_config_file: WriteConfig,
) -> None:
    from compass_auth.verification.factory import load_config

    path = authentication_config_file([jwt_authenticator(oidc_issuer, audiences=("a", "b"))
                                       | {"issuer": {"url": devcluster.issuer,
                                                     "audiences": ["a", "b"]}}])
    settings = settings_from({"AUTH_AUTHENTICATION_CONFIG": str(path),
                              "AUTH_ISSUER": devcluster.issuer})
    with pytest.raises(AuthenticationConfigError) as raised:
        load_config(settings)
    text = str(raised.value)
    assert str(path) in text
    assert "jwt[0].issuer.url" in text
    assert "disallowed issuers" in text
    assert "jwt[0].issuer.audienceMatchPolicy" in text


def test_the_service_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "authn.yaml"
    bad.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n"
                   "jwt:\n- issuer: {url: 'http://ci.example.com', audiences: [a]}\n"
                   "  claimMappings: {username: {claim: sub, prefix: ''}}\n")
    process = service_process({"AUTH_AUTHENTICATION_CONFIG": str(bad)})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr
    assert str(bad) in stderr
    assert "jwt[0].issuer.url" in stderr
    assert "URL scheme must be https" in stderr
