"""The plugin's ``devcluster_serve`` fixture (issue 19, finding 4): a user's application on
loopback with a started authenticator whose keys are loaded, over real HTTP; and the decision
cache that the testing README documents with the one-line way to turn it off."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from compass_auth import AuthenticatedHandler, Authenticator, AuthSettings, ResourceCheck
from compass_auth.testing import DevCluster, Fault
from compass_auth.testing.appserver import KeysNotLoaded, serve_app
from compass_auth.testing.fixtures import Serve

from .helpers import REPORTS_GRANT

COLLECTOR = "system:serviceaccount:default:collector"


class Hello(AuthenticatedHandler):
    async def get(self) -> None:
        self.write({"subject": self.identity.subject,
                    "verified_by": self.identity.verified_by})


class Reports(AuthenticatedHandler):
    required_access = (ResourceCheck("get", "reports", group="reports.example.com",
                                     namespace="team-a"),)

    async def get(self) -> None:
        self.write({"subject": self.identity.subject})


GRANT = REPORTS_GRANT


async def get(url: str, token: str) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, headers={"Authorization": f"Bearer {token}"},
                                         raise_error=False)


def body(response: HTTPResponse) -> dict[str, object]:
    answer: dict[str, object] = json.loads(response.body)
    return answer


async def test_rules_are_served_and_the_first_request_is_verified_locally(
    devcluster: DevCluster, devcluster_serve: Serve,
) -> None:
    url = await devcluster_serve([(r"/hello", Hello)])
    assert urlsplit(url).hostname == "127.0.0.1"
    response = await get(f"{url}/hello", devcluster.mint())
    assert response.code == 200
    # Keys were loaded before the URL was handed out: no TokenReview, not even for the first.
    assert body(response) == {"subject": COLLECTOR, "verified_by": "jwks"}
    assert devcluster.request_count("tokenreview") == 0
    refused = await get(f"{url}/hello", devcluster.mint(audiences=("vault",)))
    assert (refused.code, body(refused)["reason"]) == (401, "audience_mismatch")


async def test_an_application_or_a_factory_is_served_too(
    devcluster: DevCluster, devcluster_serve: Serve,
) -> None:
    application = tornado.web.Application([(r"/hello", Hello)])
    made: list[Authenticator] = []

    def make_app(authenticator: Authenticator) -> tornado.web.Application:
        made.append(authenticator)
        return tornado.web.Application([(r"/hi", Hello)], authenticator=authenticator)

    first = await devcluster_serve(application)
    second = await devcluster_serve(make_app)
    assert first != second
    assert isinstance(application.settings["authenticator"], Authenticator)
    assert len(made) == 1
    token = devcluster.mint()
    assert (await get(f"{first}/hello", token)).code == 200
    assert (await get(f"{second}/hi", token)).code == 200


async def test_an_application_with_another_authenticator_is_refused(
    devcluster_serve: Serve,
) -> None:
    application = tornado.web.Application([(r"/hello", Hello)], authenticator=object())
    with pytest.raises(ValueError, match="already has an authenticator"):
        await devcluster_serve(application)


async def test_only_the_given_variables_apply(
    devcluster: DevCluster, devcluster_serve: Serve, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_AUDIENCE", "from-the-shell")  # the process environment is not read
    url = await devcluster_serve([(r"/hello", Hello)], {"AUTH_AUDIENCE": "inventory"})
    assert (await get(f"{url}/hello", devcluster.mint(audiences=("inventory",)))).code == 200
    other = await get(f"{url}/hello", devcluster.mint(audiences=("from-the-shell",)))
    assert (other.code, body(other)["reason"]) == (401, "audience_mismatch")


async def test_without_keys_it_refuses_unless_told_to_test_the_fallback(
    devcluster: DevCluster, devcluster_serve: Serve,
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))  # not retried: start-up ends at once
    with pytest.raises(KeysNotLoaded, match="require_local_keys=False"):
        await devcluster_serve([(r"/hello", Hello)])
    url = await devcluster_serve([(r"/hello", Hello)], require_local_keys=False)
    response = await get(f"{url}/hello", devcluster.mint())
    assert body(response) == {"subject": COLLECTOR, "verified_by": "tokenreview"}


async def test_review_mode_needs_no_keys(
    devcluster: DevCluster, devcluster_serve: Serve,
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    url = await devcluster_serve([(r"/hello", Hello)], {"AUTH_MODE": "review"})
    assert body(await get(f"{url}/hello", devcluster.mint()))["verified_by"] == "tokenreview"


@pytest.mark.parametrize(("environ", "after_the_grant"), [
    ({}, 403),  # the denial is cached for AUTH_AUTHZ_DENIED_TTL (30 s)
    ({"AUTH_AUTHZ_DENIED_TTL": "0"}, 200),  # the testing README's one line
])
async def test_a_denial_is_cached_unless_the_denied_ttl_is_zero(
    devcluster: DevCluster, devcluster_serve: Serve, environ: dict[str, str],
    after_the_grant: int,
) -> None:
    url = await devcluster_serve([(r"/reports", Reports)], environ)
    token = devcluster.mint()
    denied = await get(f"{url}/reports", token)
    assert (denied.code, body(denied)["reason"]) == (403, "access_denied")
    devcluster.load_rbac(GRANT)
    assert (await get(f"{url}/reports", token)).code == after_the_grant
    assert devcluster.request_count("subjectaccessreview") == (1 if after_the_grant == 403 else 2)


async def test_closing_stops_listening_and_the_authenticator(
    devcluster: DevCluster, devcluster_kubeconfig: Path,
) -> None:
    served = await serve_app([(r"/hello", Hello)], devcluster_kubeconfig)
    port = urlsplit(served.url).port
    assert port is not None
    assert (await get(f"{served.url}/hello", devcluster.mint())).code == 200
    await served.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


async def test_a_bad_setting_fails_before_anything_listens(devcluster_kubeconfig: Path) -> None:
    with pytest.raises(ValueError, match="AUTH_AUTHZ_DENIED_TTL"):
        await serve_app([(r"/hello", Hello)], devcluster_kubeconfig,
                        {"AUTH_AUTHZ_DENIED_TTL": "-1"})
    assert AuthSettings.from_env({"AUTH_AUDIENCE": "a"}).authz_denied_ttl == 30  # documented


def test_a_projects_own_loop_scope_wins_and_the_fixture_still_works(tmp_path: Path) -> None:
    """The plugin only supplies a default for pytest-asyncio's fixture loop scope: a project
    that chose another one (and auto mode) keeps it, and devcluster_serve runs in the test's
    loop regardless."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = module\n")
    (tmp_path / "test_own.py").write_text(
        "from tornado.httpclient import AsyncHTTPClient\n"
        "from compass_auth import AuthenticatedHandler\n\n"
        "class Hello(AuthenticatedHandler):\n"
        "    async def get(self):\n"
        "        self.write({'by': self.identity.verified_by})\n\n"
        "async def test_served(devcluster, devcluster_serve):\n"
        "    url = await devcluster_serve([('/hello', Hello)])\n"
        "    answer = await AsyncHTTPClient().fetch(\n"
        "        url + '/hello', headers={'Authorization': 'Bearer ' + devcluster.mint()})\n"
        "    assert answer.body == b'{\"by\": \"jwks\"}'\n")
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("AUTH_", "PYTEST_"))}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
                         cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "asyncio_default_fixture_loop_scope=module" in output
    assert "1 passed" in output
