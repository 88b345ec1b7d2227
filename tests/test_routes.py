"""Each route's protection is declared once and applies alike (issue 18, findings 2 and 9).

- The route table of docs/example-service.md is the running application's, walked by
  ``compass_auth.describe_routes``.
- ``AUTH_REQUIRED_ACCESS`` applies to every authenticated handler, the WebSocket ``/ws/whoami``
  included: a caller without a grant is refused before the upgrade, after a SubjectAccessReview.
- A check that a route cannot fill stops the start (``python -m service serve`` exits 2 with a
  sentence); a value from the URL that no namespace can have (absent, empty, a template itself)
  is 403 without a review, never a 500.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.routing import PathMatches, Rule, RuleRouter
from tornado.websocket import websocket_connect

from compass_auth import (
    AuthenticatedHandler,
    ResourceCheck,
    RouteAccessError,
    check_routes,
    describe_routes,
)
from compass_auth.testing import DevCluster
from compass_auth.tornado.routes import RouteProtection
from service.app import Service

from .conftest import AUDIENCE, COLLECTOR, RunningService, StartService
from .helpers import RBAC, ROOT, WHOAMI_CHECK, body, service_process

DOC = ROOT / "docs" / "example-service.md"


# --- the route table ----------------------------------------------------------------------

def documented_routes(path: Path = DOC) -> list[tuple[str, ...]]:
    """The first six cells of each row of the table under ``## Endpoints``."""
    section = path.read_text().split("\n## Endpoints\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header, _, *body_rows = rows
    assert [cell.strip() for cell in header.strip("|").split("|")][:6] == [
        "route", "methods", "kind", "authentication", "subjects", "checks"]
    return [tuple(cell.strip() for cell in row.strip("|").split("|")[:6]) for row in body_rows]


def as_documented(route: RouteProtection) -> tuple[str, ...]:
    """One row as docs/example-service.md writes it."""
    none = "—"
    subjects = checks = none
    if route.authentication == "bearer":
        subjects = ", ".join(["`AUTH_ALLOWED_SUBJECTS`",
                              *(f"`{subject}`" for subject in sorted(route.subjects))])
        checks = "; ".join(["`AUTH_REQUIRED_ACCESS`", *(f"`{check}`" for check in route.checks)])
        if route.dynamic_checks:
            checks += "; `get_required_access()`"
    return (f"`{route.route}`" if route.route is not None else "any other path",
            ", ".join(route.methods) or none,
            {"http": "HTTP", "websocket": "WebSocket"}[route.kind],
            route.authentication, subjects, checks)


async def test_the_documented_route_table_is_the_applications(
    start_service: StartService, telemetry_setup: Any,
) -> None:
    setup, _, _ = telemetry_setup  # with a metrics registry: /metrics is served
    running: RunningService = await start_service(telemetry=setup)
    served = [as_documented(route) for route in describe_routes(running.service.application)]
    assert served == documented_routes()
    # The two whoami routes are protected alike, by the same declaration.
    whoami = [route for route in describe_routes(running.service.application)
              if route.route in ("/whoami", "/ws/whoami")]
    assert [(r.kind, r.authentication, r.subjects, r.checks, r.dynamic_checks)
            for r in whoami] == [("http", "bearer", frozenset(), (), False),
                                 ("websocket", "bearer", frozenset(), (), False)]


def test_the_table_reader_sees_a_changed_row(tmp_path: Path) -> None:
    """The comparison can fail: a row whose protection differs is read as written."""
    changed = DOC.read_text().replace(
        "| `/ws/whoami` | GET | WebSocket | bearer | `AUTH_ALLOWED_SUBJECTS` | "
        "`AUTH_REQUIRED_ACCESS` |",
        "| `/ws/whoami` | GET | WebSocket | bearer | `AUTH_ALLOWED_SUBJECTS` | — |")
    assert changed != DOC.read_text()
    (tmp_path / "doc.md").write_text(changed)
    assert ("`/ws/whoami`", "GET", "WebSocket", "bearer", "`AUTH_ALLOWED_SUBJECTS`", "—") in \
        documented_routes(tmp_path / "doc.md")


# --- finding 2: /ws/whoami applies AUTH_REQUIRED_ACCESS -----------------------------------

def ws_request(running: RunningService, token: str) -> HTTPRequest:
    url = "ws" + running.base_url.removeprefix("http") + "/ws/whoami"
    return HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}, request_timeout=20)


@pytest.mark.parametrize("mode", ["local", "review"])
async def test_a_caller_without_a_grant_is_refused_before_the_websocket_upgrade(
    devcluster: DevCluster, start_service: StartService, mode: str,
) -> None:
    devcluster.load_rbac(RBAC)
    running: RunningService = await start_service(
        AUTH_REQUIRED_ACCESS=WHOAMI_CHECK, AUTH_REDISCOVERY_INTERVAL="60",
        **({"AUTH_MODE": "review"} if mode == "review" else {}))
    no_grant = running.token(service_account="no-grant", pod="no-grant-5b8d7c-qwert")
    # /whoami refuses it (the behaviour the WebSocket promises to share)...
    assert (await running.get(token=no_grant)).code == 403
    assert running.api_calls("subjectaccessreview") == 1
    # ... and so does the WebSocket's handshake, with a review of its own (another token of
    # the caller: another credential, so not answered by the decision cache).
    other = running.token(service_account="no-grant", pod="no-grant-5b8d7c-qwert")
    try:
        upgraded = await websocket_connect(ws_request(running, other))
    except HTTPClientError as error:  # not upgraded: the answer is a plain HTTP response
        response = error.response
    else:
        upgraded.close()
        raise AssertionError("/ws/whoami upgraded a caller that RBAC denies")
    assert response is not None
    assert response.code == 403
    assert "Sec-WebSocket-Accept" not in response.headers
    assert body(response) == {"error": "insufficient_scope", "reason": "access_denied",
                              "error_description": "the caller is not allowed to call this "
                                                   "endpoint"}
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert running.api_calls("subjectaccessreview") == 2
    # The granted caller is upgraded and learns who it is.
    connection = await websocket_connect(ws_request(running, running.token()))
    try:
        hello = await connection.read_message()
        assert isinstance(hello, str)
        assert COLLECTOR in hello
    finally:
        connection.close()


# --- finding 9: configuration that cannot work does not start -----------------------------

@pytest.mark.parametrize(("access", "sentence"), [
    ("verb=get,resource=pods,namespace={namespace}",
     "AUTH_REQUIRED_ACCESS: check 1 (verb=get,resource=pods,namespace={namespace}) uses "
     "{namespace}, but route /whoami (WhoAmIHandler) has no path argument of that name "
     "(named groups: none; {service_namespace} is the service's namespace)"),
    ("verb=get,resource=pods,namespace={servicenamespace}",
     "uses {servicenamespace}, but route /whoami (WhoAmIHandler) has no path argument of that "
     "name (named groups: none; {service_namespace} is the service's namespace); did you mean "
     "{service_namespace}?"),
], ids=["no-such-group", "typo"])
def test_an_unfillable_template_stops_the_service(
    devcluster: DevCluster, tmp_path: Path, access: str, sentence: str,
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig")
    process = service_process({"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE,
                               "AUTH_REQUIRED_ACCESS": access})
    try:
        _, stderr = process.communicate(timeout=30)
    finally:  # on the old code the service starts and serves: stop it
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 2, stderr
    assert sentence in stderr
    # Both whoami routes are named: the setting applies to the WebSocket too.
    assert "route /ws/whoami (WhoAmISocket)" in stderr
    assert "msg=listening" not in stderr


class Reports(AuthenticatedHandler):
    required_access = (ResourceCheck("get", "reports", group="compass.example",
                                     namespace="{namespace}"),)

    def get(self, namespace: str | None = None) -> None:
        self.write({"namespace": namespace})


class Broken(AuthenticatedHandler):
    """A handler bug: the check names a path argument the route does not have."""

    required_access = (ResourceCheck("get", "reports", namespace="{team}"),)

    def get(self) -> None:
        raise tornado.web.HTTPError(418)  # never reached


#: Reports everywhere, for the collector: any review that is sent is allowed, so a 403 below
#: can only come from the service refusing the value itself.
REPORTS_EVERYWHERE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: report-reader}
rules:
  - {apiGroups: [compass.example], resources: [reports], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: collector-reads-every-report}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: report-reader}
subjects:
  - {kind: ServiceAccount, name: collector, namespace: default}
"""


@pytest.mark.parametrize(("path", "why"), [
    ("/optional", "absent"),  # (?P<namespace>[^/]+)? did not match: Tornado passes None
    ("/empty/", "empty"),  # (?P<namespace>[^/]*) matched nothing
    ("/reports/%7Bservice_namespace%7D", "template"),  # a template sent as a value
    ("/reports/%7Bnamespace%7D", "template"),
    ("/reports/Team_A", "invalid"),
])
async def test_a_value_no_namespace_has_is_403_without_a_review(
    devcluster: DevCluster, start_service: StartService, path: str, why: str,
) -> None:
    devcluster.load_rbac(REPORTS_EVERYWHERE)
    running: RunningService = await start_service(service_options={"extra_rules": [
        (r"/optional/?(?P<namespace>[^/]+)?", Reports),
        (r"/empty/(?P<namespace>[^/]*)", Reports),
        (r"/reports/(?P<namespace>[^/]+)", Reports)]})
    token = running.token()
    assert (await running.get("/reports/team-a", token=token)).code == 200  # the grant works
    assert (await running.get("/optional/team-b", token=token)).code == 200
    before = running.api_calls("subjectaccessreview")
    for _ in range(3):  # never cached as anything else, never a review
        refused = await running.get(path, token=token)
        assert refused.code == 403, why
        assert body(refused)["reason"] == "access_denied"
    assert running.api_calls("subjectaccessreview") == before


async def test_a_flood_of_template_values_sends_no_review(
    devcluster: DevCluster, start_service: StartService, caplog: pytest.LogCaptureFixture,
) -> None:
    """One caller, 2,000 distinct values that are templates or absent: every one 403, no
    review, nothing remembered (the decision cache stays as it was)."""
    caplog.set_level(logging.ERROR)  # one WARN line per denial; keep pytest's capture small
    devcluster.load_rbac(REPORTS_EVERYWHERE)
    running: RunningService = await start_service(service_options={"extra_rules": [
        (r"/reports/?(?P<namespace>[^/]+)?", Reports)]})
    token = running.token()
    authorizer = running.authenticator.authorizer
    assert (await running.get("/reports/team-a", token=token)).code == 200
    before = (running.api_calls("subjectaccessreview"), authorizer.reviewer.cache_size())
    paths = ["/reports"] + [f"/reports/%7Bns{index}%7D" for index in range(1999)]
    codes: collections.Counter[int] = collections.Counter()
    for start in range(0, len(paths), 50):
        batch = await asyncio.gather(*(running.get(path, token=token)
                                       for path in paths[start:start + 50]))
        codes.update(response.code for response in batch)
    assert codes == {403: 2000}
    assert (running.api_calls("subjectaccessreview"),
            authorizer.reviewer.cache_size()) == before


async def test_an_unfillable_handler_check_is_refused_with_the_application(
    running: RunningService,
) -> None:
    with pytest.raises(RouteAccessError, match=re.escape(
            "Broken.required_access: check 1 (verb=get,resource=reports,namespace={team}) uses "
            "{team}, but route /broken/(?P<namespace>[^/]+) (Broken) has no path argument of "
            "that name (named groups: namespace; {service_namespace} is the service's "
            "namespace)")):
        Service(running.authenticator, extra_rules=[(r"/broken/(?P<namespace>[^/]+)", Broken)])
    # The same handler on a route with the argument is fine.
    Service(running.authenticator, extra_rules=[(r"/broken/(?P<team>[^/]+)", Broken)])


async def test_nested_routers_and_the_default_handler_are_checked(
    running: RunningService,
) -> None:
    nested = RuleRouter([Rule(PathMatches(r"/inner"), Broken)])
    application = tornado.web.Application([Rule(PathMatches(r"/outer.*"), nested)])
    with pytest.raises(RouteAccessError, match=r"route /inner \(Broken\)"):
        check_routes(application, running.authenticator)
    default = tornado.web.Application([], default_handler_class=Broken)
    with pytest.raises(RouteAccessError, match=r"the default handler Broken"):
        check_routes(default, running.authenticator)
    # The authenticator defaults to the application's.
    fine = tornado.web.Application([(r"/r/(?P<team>[^/]+)", Broken)],
                                   authenticator=running.authenticator)
    check_routes(fine)
    [route] = describe_routes(fine)
    assert (route.route, route.methods, route.arguments) == ("/r/(?P<team>[^/]+)", ("GET",),
                                                             frozenset({"team"}))


async def test_service_namespace_unknown_is_refused_for_a_handler_check(
    devcluster: DevCluster, start_service: StartService, tmp_path: Path,
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "no-namespace", namespace="")
    running: RunningService = await start_service(KUBECONFIG=str(kubeconfig))
    assert running.authenticator.authorizer.service_namespace is None

    class Own(AuthenticatedHandler):
        required_access = (ResourceCheck("get", "reports", namespace="{service_namespace}"),)

    with pytest.raises(RouteAccessError, match=r"Own.required_access: .* the service's "
                                               r"namespace is unknown"):
        check_routes(tornado.web.Application([(r"/own", Own)]), running.authenticator)


def test_what_the_class_definition_can_check() -> None:
    check = ResourceCheck("get", "pods")
    with pytest.raises(TypeError, match=r"One\.required_access is ResourceCheck.*a tuple"):
        type("One", (AuthenticatedHandler,), {"required_access": check})
    with pytest.raises(TypeError, match=r"Text\.required_access is 'verb=get"):
        type("Text", (AuthenticatedHandler,), {"required_access": "verb=get,resource=pods"})
    with pytest.raises(TypeError, match=r"Many\.required_access holds 17 checks; at most 16"):
        type("Many", (AuthenticatedHandler,), {"required_access": (check,) * 17})
