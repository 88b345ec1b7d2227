"""Authorization per handler (issue 15): RBAC objects in the emulator decide, through real HTTP,
on both verification paths; the decision cache, singleflight, the cap and the fault cases."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from compass_auth import AuthenticatedHandler, Authenticator, ResourceCheck
from compass_auth.apiserver.connection import KubeConfigError
from compass_auth.core.access import review_body
from compass_auth.testing import DevCluster, Fault

from .conftest import AUDIENCE, COLLECTOR, RunningService, StartService, log_text
from .helpers import (
    COLLECTOR_SUBJECT,
    RBAC,
    SERVICE_NAMESPACE,
    WHOAMI_CHECK,
    body,
    group_subject,
    role_binding,
    settings_from,
)

MODES = ["local", "review", "fallback"]


async def start(devcluster: DevCluster, start_service: StartService, mode: str = "local",
                **env: Any) -> RunningService:
    """The service with /whoami requiring the check, the RBAC loaded, verifying by ``mode``."""
    devcluster.load_rbac(RBAC)
    if mode == "fallback":
        devcluster.set_fault("discovery", Fault(status=403))  # not retried: TokenReview at once
    environment = {"AUTH_REQUIRED_ACCESS": WHOAMI_CHECK, "AUTH_REDISCOVERY_INTERVAL": "60",
                   **({"AUTH_MODE": "review"} if mode == "review" else {}), **env}
    running: RunningService = await start_service(**environment)
    assert running.authenticator.active_path() == ("jwks" if mode == "local" else "tokenreview")
    return running


def reviews(running: RunningService) -> int:
    return running.api_calls("subjectaccessreview")


@pytest.mark.parametrize("mode", MODES)
async def test_rbac_lets_the_bound_caller_in_and_refuses_the_other(
    devcluster: DevCluster, start_service: StartService, caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    running = await start(devcluster, start_service, mode)
    allowed = await running.get(token=running.token())
    assert allowed.code == 200
    assert body(allowed)["subject"] == COLLECTOR
    assert body(allowed)["verified_by"] == ("jwks" if mode == "local" else "tokenreview")
    intruder = running.token(service_account="intruder", pod="intruder-0")
    denied = await running.get(token=intruder)
    assert denied.code == 403
    # The body names neither the check nor the API server's reason.
    assert body(denied) == {"error": "insufficient_scope", "reason": "access_denied",
                            "error_description": "the caller is not allowed to call this "
                                                 "endpoint"}
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    assert denied.headers["Cache-Control"] == "no-store"
    assert reviews(running) == 2
    [line] = [r for r in caplog.records if r.getMessage().startswith("access denied")]
    jti = json.loads(_payload(intruder))["jti"]
    # The log line names the check (namespace filled in), the caller, the credential id and
    # why: RBAC says nothing for a denial, and we say so. Never the token.
    assert line.getMessage() == (
        "access denied: verb=get,resource=whoami,group=compass.example,"
        f"namespace={SERVICE_NAMESPACE} for system:serviceaccount:default:intruder "
        f"(credential_id=JTI={jti}): SubjectAccessReview denied verb=get,resource=whoami,"
        f"group=compass.example,namespace={SERVICE_NAMESPACE}: no reason given (no RBAC rule "
        "allows it)")
    assert line.credential_id == f"JTI={jti}"  # type: ignore[attr-defined]
    text = log_text(caplog)
    assert intruder not in text
    assert intruder.split(".")[2] not in text


async def test_the_review_carries_the_groups(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    """A binding to the namespace's group lets its accounts in: the review names the groups
    kube-apiserver would give the caller (on both paths, see the next test)."""
    running = await start(devcluster, start_service)
    devcluster.load_rbac("""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-b-calls-whoami, namespace: compass-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: whoami-caller}
subjects:
  - {kind: Group, name: "system:serviceaccounts:team-b", apiGroup: rbac.authorization.k8s.io}
""")
    assert (await running.get(token=running.token(namespace="team-b",
                                                  service_account="any"))).code == 200
    assert (await running.get(token=running.token(namespace="team-c",
                                                  service_account="any"))).code == 403


async def test_both_verification_paths_fill_the_review_alike(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    local = (await start_service()).authenticator
    review = (await start_service(AUTH_MODE="review")).authenticator
    token = devcluster.mint(audiences=(AUDIENCE,))
    header = [f"Bearer {token}"]
    by_keys = await local.authenticate_request(header)
    by_api_server = await review.authenticate_request(header)
    assert (by_keys.verified_by, by_api_server.verified_by) == ("jwks", "tokenreview")
    check = ResourceCheck("get", "whoami", group="compass.example", namespace="compass")
    assert review_body(by_keys, check) == review_body(by_api_server, check)
    assert by_keys.credential_id == f"JTI={by_keys.token_id}"
    assert by_keys.node_uid
    assert by_keys.pod_uid
    assert by_keys.service_account_uid


async def test_the_subject_lists_decide_first_and_cost_no_review(
    devcluster: DevCluster, start_service: StartService, caplog: pytest.LogCaptureFixture,
) -> None:
    running = await start(devcluster, start_service,
                          AUTH_ALLOWED_SUBJECTS="system:serviceaccount:default:someone-else")
    token = running.token()
    response = await running.get(token=token)
    assert (response.code, body(response)["reason"]) == (403, "subject_not_allowed")
    assert reviews(running) == 0
    # The rejection of a verified token names its credential id.
    [line] = [r for r in caplog.records
              if r.getMessage().startswith("token verification failed")]
    assert line.credential_id == f"JTI={json.loads(_payload(token))['jti']}"  # type: ignore[attr-defined]


async def test_a_cached_decision_costs_one_review(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    running = await start(devcluster, start_service)
    token = running.token()
    for _ in range(50):
        batch = await asyncio.gather(*(running.get(token=token) for _ in range(200)))
        assert {response.code for response in batch} == {200}
    assert reviews(running) == 1  # 10,000 requests
    # Another token of the same pod is another credential: asked once too.
    assert (await running.get(token=running.token())).code == 200
    assert reviews(running) == 2


async def test_decisions_expire_after_their_ttls(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    running = await start(devcluster, start_service, AUTH_AUTHZ_ALLOWED_TTL="0.5",
                          AUTH_AUTHZ_DENIED_TTL="0.5")
    collector = running.token()
    intruder = running.token(service_account="intruder", pod="intruder-0")
    for _ in range(20):
        assert (await running.get(token=collector)).code == 200
        assert (await running.get(token=intruder)).code == 403
    assert reviews(running) == 2
    # The grant goes: the collector is refused once its allowed answer has expired.
    devcluster.load_rbac(RBAC.replace("name: collector, namespace: default",
                                      "name: intruder, namespace: default"))
    assert (await running.get(token=collector)).code == 200  # still cached
    await asyncio.sleep(0.6)
    assert (await running.get(token=collector)).code == 403
    assert (await running.get(token=intruder)).code == 200
    assert reviews(running) == 4


async def test_concurrent_identical_checks_share_one_review(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    running = await start(devcluster, start_service)
    devcluster.set_fault("subjectaccessreview", Fault(delay=0.3))
    token = running.token()
    responses = await asyncio.gather(*(running.get(token=token) for _ in range(100)))
    assert {response.code for response in responses} == {200}
    assert reviews(running) == 1


#: Every service account of the namespace default may call /whoami.
NAMESPACE_CALLS_WHOAMI = role_binding(
    "default-calls-whoami", SERVICE_NAMESPACE, "whoami-caller",
    group_subject("system:serviceaccounts:default"))


async def test_outstanding_reviews_are_capped(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    running = await start(devcluster, start_service, AUTH_AUTHZ_MAX_IN_FLIGHT="2")
    devcluster.load_rbac(NAMESPACE_CALLS_WHOAMI)
    devcluster.set_fault("subjectaccessreview", Fault(delay=0.5))
    # Ten callers: the total cap sheds them, not one caller's share (test_review_budgets.py).
    tokens = [running.token(service_account=f"caller-{index}", pod=None, node=None)
              for index in range(10)]
    responses = await asyncio.gather(*(running.get(token=token) for token in tokens))
    codes = sorted(response.code for response in responses)
    assert codes == [200, 200] + [503] * 8
    refused = [body(r) for r in responses if r.code == 503]
    assert {b["reason"] for b in refused} == {"authorization_unavailable"}
    assert all(r.headers["Retry-After"] == "2" for r in responses if r.code == 503)
    assert reviews(running) == 2


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (Fault(delay=3), "SubjectAccessReview call failed: TimeoutError"),
        (Fault(status=500), "API server answered 500 to SubjectAccessReview"),
        (Fault(drop=True), "SubjectAccessReview call failed"),
        (Fault(status=200, body=b"not json"), "SubjectAccessReview answer is not one"),
        (None, 'cannot create resource "subjectaccessreviews" in API group '
               '"authorization.k8s.io"'),
    ],
    ids=["slow", "5xx", "dropped", "garbage", "no-rbac"],
)
async def test_when_the_api_server_cannot_decide_callers_get_503_and_nothing_is_cached(
    devcluster: DevCluster, start_service: StartService, caplog: pytest.LogCaptureFixture,
    fault: Fault | None, cause: str,
) -> None:
    running = await start(devcluster, start_service, AUTH_API_TIMEOUT="1")
    if fault is None:
        devcluster.set_subjectaccessreview_allowed(False)
    else:
        devcluster.set_fault("subjectaccessreview", fault)
    token = running.token()
    response = await running.get(token=token)
    assert response.code == 503
    assert response.headers["Retry-After"] == "2"
    assert body(response)["reason"] == "authorization_unavailable"
    [line] = [r for r in caplog.records if r.getMessage().startswith("authorization failed")]
    assert line.levelname == "ERROR"
    assert cause in line.getMessage()
    if fault is None:  # the log names the missing permission and how to grant it
        assert "needs `create` on subjectaccessreviews.authorization.k8s.io" in line.error  # type: ignore[attr-defined]
        assert "system:serviceaccount:compass-system:compass-auth" in line.error  # type: ignore[attr-defined]
    assert token not in log_text(caplog)
    # Errors are never cached: once the API server answers, the caller is let in.
    devcluster.clear_faults()
    devcluster.set_subjectaccessreview_allowed(True)
    assert (await running.get(token=token)).code == 200


async def test_retry_after_stops_reviews_until_it_has_passed(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    running = await start(devcluster, start_service)
    devcluster.set_fault("subjectaccessreview", Fault(status=429, retry_after=3, times=1))
    first = await running.get(token=running.token())
    assert (first.code, first.headers["Retry-After"]) == (503, "3")
    # Within the window other callers get 503 at once, without a review, told how long.
    other = await running.get(token=running.token(pod="collector-1"))
    assert other.code == 503
    assert 1 <= int(other.headers["Retry-After"]) <= 3
    assert reviews(running) == 1
    await asyncio.sleep(3.1)
    assert (await running.get(token=running.token(pod="collector-1"))).code == 200


class NamespaceHandler(AuthenticatedHandler):
    """A route whose check takes its namespace from the path."""

    required_access = (ResourceCheck("get", "reports", group="compass.example",
                                     namespace="{namespace}"),)

    def get(self, namespace: str) -> None:
        self.write({"namespace": namespace})


REPORTS_RBAC = role_binding(
    "collector-reads-reports", "team-a", "report-reader", COLLECTOR_SUBJECT,
    role_kind="ClusterRole",
) + """---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: report-reader}
rules:
  - {apiGroups: [compass.example], resources: [reports], verbs: [get]}
"""


async def test_the_namespace_comes_from_the_route(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    devcluster.load_rbac(REPORTS_RBAC)
    running: RunningService = await start_service(service_options={"extra_rules": [
        (r"/reports/(?P<namespace>[^/]+)", NamespaceHandler)]})
    token = running.token()
    allowed = await running.get("/reports/team-a", token=token)
    assert (allowed.code, body(allowed)) == (200, {"namespace": "team-a"})
    assert (await running.get("/reports/team-b", token=token)).code == 403
    before = reviews(running)
    # No namespace has this name, so no rule can grant it: refused without a review.
    invalid = await running.get("/reports/Team_A%2F..", token=token)
    assert (invalid.code, body(invalid)["reason"]) == (403, "access_denied")
    assert reviews(running) == before
    # A route that cannot fill its handler's template: tests/test_routes.py (refused at start).


async def test_an_unknown_service_namespace_stops_the_start(
    devcluster: DevCluster, tmp_path: Any,
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="")
    environ = {"KUBECONFIG": str(kubeconfig), "AUTH_REQUIRED_ACCESS": WHOAMI_CHECK}
    with pytest.raises(KubeConfigError, match=r"AUTH_REQUIRED_ACCESS uses \{service_namespace\}"):
        await Authenticator.connect(settings_from(environ), environ)


async def test_the_service_namespace_comes_from_the_pod(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    devcluster.load_rbac(RBAC.replace("compass-system", "team-x"))
    running: RunningService = await start_service(
        in_cluster=True, account=("team-x", "compass-auth"), AUTH_REQUIRED_ACCESS=WHOAMI_CHECK)
    assert running.authenticator.authorizer.service_namespace == "team-x"
    assert (await running.get(token=running.token())).code == 200
    intruder = running.token(service_account="intruder", pod="intruder-0")
    assert (await running.get(token=intruder)).code == 403


async def test_no_required_access_means_no_review(running: RunningService) -> None:
    assert (await running.get(token=running.token())).code == 200
    assert reviews(running) == 0


def _payload(token: str) -> str:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


async def test_each_decision_is_a_span_and_counted(
    devcluster: DevCluster, start_service: StartService, telemetry_setup: Any,
) -> None:
    setup, spans, reader = telemetry_setup
    running = await start(devcluster, start_service, telemetry=setup)
    collector = running.token()
    intruder = running.token(service_account="intruder", pod="intruder-0")
    assert (await running.get(token=collector)).code == 200
    assert (await running.get(token=collector)).code == 200  # from the cache
    assert (await running.get(token=intruder)).code == 403
    devcluster.set_fault("subjectaccessreview", Fault(status=500))
    assert (await running.get(token=running.token(pod="collector-1"))).code == 503
    finished = list(spans.get_finished_spans())
    decisions = [s for s in finished if s.name == "auth.authorize"]
    check = f"verb=get,resource=whoami,group=compass.example,namespace={SERVICE_NAMESPACE}"
    assert [(s.attributes["auth.outcome"], s.attributes["auth.reason"],  # type: ignore[index]
             s.attributes["auth.cache_hit"]) for s in decisions] == [  # type: ignore[index]
        ("allowed", "ok", False), ("allowed", "ok", True), ("denied", "access_denied", False),
        ("unavailable", "authorization_unavailable", False)]
    first = decisions[0]
    assert dict(first.attributes or {}) == {
        "auth.check": check, "auth.outcome": "allowed", "auth.reason": "ok",
        "auth.cache_hit": False, "auth.subject": COLLECTOR, "auth.namespace": "default",
        "auth.service_account": "collector", "auth.pod": "collector-6c9d8b7f5-x2k9q",
        "auth.credential_id": f"JTI={json.loads(_payload(collector))['jti']}",
    }
    # The review is a client span under its decision, which is under the request's span.
    [review] = [s for s in finished if s.name == "auth.subjectaccessreview"
                and s.parent is not None and s.parent.span_id == first.context.span_id]
    assert review.attributes["http.response.status_code"] == 201  # type: ignore[index]
    server = [s for s in finished if s.context.span_id == first.parent.span_id]  # type: ignore[union-attr]
    assert server[0].name.startswith("GET")
    assert [s.status.status_code.name for s in decisions] == ["UNSET", "UNSET", "UNSET", "ERROR"]
    counts = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "auth.authorizations":
                    counts = {(p.attributes["auth.outcome"], p.attributes["auth.reason"]): p.value
                              for p in metric.data.data_points}
    assert counts == {("allowed", "ok"): 2, ("denied", "access_denied"): 1,
                      ("unavailable", "authorization_unavailable"): 1}


class Reports(AuthenticatedHandler):
    """Requires a check of its own: the authorizer of the application's settings decides."""

    required_access = (ResourceCheck("get", "whoami", group="compass.example",
                                     namespace=SERVICE_NAMESPACE),)

    async def get(self) -> None:
        self.write({"caller": self.identity.subject})


async def serve(application: tornado.web.Application) -> tuple[HTTPServer, str]:
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(application)
    server.add_sockets(sockets)
    return server, f"http://127.0.0.1:{sockets[0].getsockname()[1]}/reports"


async def test_the_handler_takes_the_authorizer_from_the_application_settings(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    """``authorizer=`` in the application's settings decides; an application that passes only
    ``authenticator=`` gets the authorizer built with it (issue 20: the Authenticator no longer
    hands the handler its authorizer)."""
    devcluster.load_rbac(RBAC)
    first = (await start_service()).authenticator
    second = (await start_service()).authenticator
    token = devcluster.mint(audiences=(AUDIENCE,))
    client = AsyncHTTPClient()
    for settings, deciding, idle in (
        ({"authenticator": first, "authorizer": second.authorizer}, second, first),
        ({"authenticator": first}, first, second),
    ):
        server, url = await serve(tornado.web.Application([(r"/reports", Reports)], **settings))
        try:
            before = (deciding.authorizer.reviewer.cache_size(),
                      idle.authorizer.reviewer.cache_size())
            answer = await client.fetch(url, headers={"Authorization": f"Bearer {token}"},
                                        raise_error=False)
            assert answer.code == 200
            assert (deciding.authorizer.reviewer.cache_size(),
                    idle.authorizer.reviewer.cache_size()) == (before[0] + 1, before[1])
        finally:
            server.stop()
            await server.close_all_connections()
