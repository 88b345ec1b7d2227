"""The ASGI adapter and the Tornado handler give the same answer to every rejection (issue 23):
the same status, headers and body bytes, from the same code (compass_auth/core/answers.py),
served by uvicorn and by Tornado against the same emulator."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from compass_auth.testing import DevCluster, Fault
from compass_auth.testing.fixtures import Serve

from .apps import APPS, GRANT, TORNADO_RULES
from .conftest import ServeAsgi
from .http import answer


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-4]}AAAA"


#: (reason, path, the Authorization header from the emulator, the expected status)
CASES: list[tuple[str, str, Callable[[DevCluster], str | None], int]] = [
    ("missing", "/whoami", lambda cluster: None, 401),
    ("malformed_header", "/whoami", lambda cluster: "Bearer two tokens", 400),
    ("too_large", "/whoami", lambda cluster: "Bearer " + "a" * 9000, 401),
    ("malformed", "/whoami", lambda cluster: "Bearer abc.def.ghi", 401),
    ("audience_mismatch", "/whoami",
     lambda cluster: "Bearer " + cluster.mint(audiences=("vault",)), 401),
    ("expired", "/whoami",
     lambda cluster: "Bearer " + cluster.mint(issued_at=int(time.time()) - 3000,
                                              lifetime=600), 401),
    ("bad_signature", "/whoami", lambda cluster: "Bearer " + tampered(cluster.mint()), 401),
    ("subject_not_allowed", "/only-other", lambda cluster: "Bearer " + cluster.mint(), 403),
    ("access_denied", "/reports/team-b", lambda cluster: "Bearer " + cluster.mint(), 403),
    ("access_denied", "/reports/Team_A", lambda cluster: "Bearer " + cluster.mint(), 403),
]


async def fetch(url: str, authorization: str | None) -> HTTPResponse:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False,
                                         request_timeout=30)


@pytest.mark.parametrize("framework", sorted(APPS))
async def test_every_rejection_is_answered_alike(
        framework: str, devcluster: DevCluster, devcluster_serve: Serve,
        asgi_serve: ServeAsgi) -> None:
    devcluster.load_rbac(GRANT)
    tornado_url = await devcluster_serve(TORNADO_RULES)
    asgi_url = (await asgi_serve(APPS[framework])).url
    for reason, path, authorization, status in CASES:
        header = authorization(devcluster)
        expected = answer(await fetch(tornado_url + path, header))
        got = answer(await fetch(asgi_url + path, header))
        assert expected[0] == status, (reason, expected)
        assert f'"reason": "{reason}"'.encode() in expected[2], (reason, expected)
        assert got == expected, reason

    # 503 when the API server cannot decide: Retry-After instead of a challenge.
    devcluster.set_fault("subjectaccessreview", Fault(status=500))
    header = "Bearer " + devcluster.mint()
    expected = answer(await fetch(tornado_url + "/reports/team-a", header))
    got = answer(await fetch(asgi_url + "/reports/team-a", header))
    assert expected[0] == 503
    assert "retry-after" in expected[1]
    assert got == expected
