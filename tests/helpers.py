"""Plain helpers shared by the test modules: functions and constants, no fixtures.

Fixtures live in the ``conftest.py`` nearest their users; test modules import helpers from
here (or a helper module of their own directory), never from another test module:
tests/test_layout.py checks that.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import AuthenticationV1Api, V1TokenReview, V1TokenReviewSpec
from tornado.httpclient import AsyncHTTPClient

from compass_auth import AuthSettings
from compass_auth.apiserver.connection import ApiServer
from compass_auth.core.verifier import VerificationPolicy
from compass_auth.testing import DevCluster
from service.limits import MAX_HEADER_BYTES

from .conftest import AUDIENCE

#: The repository's root: the service runs from here (``python -m service``).
ROOT = Path(__file__).resolve().parent.parent


def now() -> int:
    """The current time in whole seconds, as tokens carry it."""
    return int(time.time())


# -- Answers of the service ------------------------------------------------------------------

def claims_of(token: str) -> dict[str, Any]:
    """A token's payload, unverified (to read what the emulator put in it)."""
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def body(response: Any) -> dict[str, Any]:
    """The JSON body of one of the service's answers (every answer, even an error, is JSON)."""
    assert response.headers["Content-Type"].startswith("application/json")
    result: dict[str, Any] = json.loads(response.body)
    return result


async def raw_request(port: int, head: bytes) -> tuple[int, bytes]:
    """Send bytes the HTTP client would refuse to send; return (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        data = b""  # the server closed the connection without answering
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data.partition(b"\r\n\r\n")[2]


@dataclass
class Answer:
    """One raw HTTP/1.1 response, read until the server closed the connection."""

    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    @classmethod
    def parse(cls, data: bytes) -> Answer:
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert status_line.startswith("HTTP/1.1 "), data[:200]
        fields = dict(line.split(":", 1) for line in lines)
        return cls(int(status_line.split(" ")[1]),
                   {name.lower(): value.strip() for name, value in fields.items()}, body)


TOO_LARGE = {"error": "request_header_fields_too_large",
             "error_description": f"the request line and headers exceed {MAX_HEADER_BYTES} bytes"}


def assert_431(answer: Answer) -> None:
    """The whole answer to a head over the cap (the connection closed after it)."""
    assert answer.status == 431, answer
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert json.loads(answer.body) == TOO_LARGE


# -- The service as a process ----------------------------------------------------------------

def service_process(environ: dict[str, str], *flags: str) -> subprocess.Popen[str]:
    """``python -m service serve`` on a free port, with the tests' audience unless ``environ``
    sets another (the service has no default audience)."""
    return subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", "0",
         "--drain-seconds", "5", *flags],
        cwd=ROOT, env={**os.environ, "AUTH_AUDIENCE": AUDIENCE, **environ},
        stderr=subprocess.PIPE, text=True,
    )


def stop_process(process: subprocess.Popen[str]) -> str:
    """SIGTERM (nothing if it has exited), up to 20 s to exit, then SIGKILL; returns the rest
    of its stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, rest = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return rest or ""


async def wait_ready(port: int) -> None:
    """Until the service on ``port`` answers /readyz with 200 (about 10 s at the most)."""
    client = AsyncHTTPClient()
    for _ in range(200):
        response = await client.fetch(f"http://127.0.0.1:{port}/readyz", raise_error=False)
        if response.code == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the service did not become ready")


def settings_from(environ: Mapping[str, str]) -> AuthSettings:
    """``AuthSettings.from_env`` with the tests' audience unless ``environ`` sets another (the
    library has no default audience)."""
    return AuthSettings.from_env({"AUTH_AUDIENCE": AUDIENCE, **environ})


def wait_for_port(process: subprocess.Popen[str], lines: list[str]) -> int:
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r'msg=listening .*port=(\d+)', line)
        if match:
            return int(match.group(1))
    raise AssertionError("service did not start:\n" + "".join(lines))


# -- The library's own API client ------------------------------------------------------------

async def review_once(api: ApiServer, token: str) -> int:
    """POST one TokenReview through the service's own client; the raw answer's status."""
    review = V1TokenReview(api_version="authentication.k8s.io/v1", kind="TokenReview",
                           spec=V1TokenReviewSpec(token=token, audiences=["compass-internal"]))
    response = await AuthenticationV1Api(api.client).create_token_review(
        review, _preload_content=False, _request_timeout=api.request_timeout())
    response.release()
    return int(response.status)


# -- Tables of the pure verifier (with the ``cluster`` and ``keys`` fixtures) ----------------

POLICY = VerificationPolicy(audience=AUDIENCE, issuers=(), clock_skew=60, max_token_bytes=8192)


def mint(cluster: DevCluster, **kwargs: Any) -> str:
    arguments: dict[str, Any] = {
        "namespace": "default",
        "service_account": "collector",
        "audiences": (AUDIENCE,),
        "pod": "collector-abc",
        "node": "kind-worker",
    }
    arguments.update(kwargs)
    return cluster.mint(**arguments)


# --- authorization: the check /whoami requires, and RBAC that grants it to the collector ---

SERVICE_NAMESPACE = "compass-system"  # the emulator's default account for the service
WHOAMI_CHECK = "verb=get,group=compass.example,resource=whoami,namespace={service_namespace}"
#: The collector's service account as an RBAC subject (YAML flow mapping, for role_binding).
COLLECTOR_SUBJECT = "{kind: ServiceAccount, name: collector, namespace: default}"


def group_subject(group: str) -> str:
    """A group as an RBAC subject (YAML flow mapping, for role_binding)."""
    return f'{{kind: Group, name: "{group}", apiGroup: rbac.authorization.k8s.io}}'


def role_binding(name: str, namespace: str, role: str, subject: str,
                 role_kind: str = "Role") -> str:
    """A RoleBinding (YAML) of ``role`` to one ``subject``, a YAML flow mapping such as
    :data:`COLLECTOR_SUBJECT`."""
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {role_kind}, name: {role}}}
subjects:
  - {subject}
"""


def grant_to_collector(role: str, binding: str, namespace: str, group: str,
                       resource: str) -> str:
    """A Role that may ``get`` ``resource`` of API ``group`` in ``namespace``, bound to the
    collector (YAML for ``DevCluster.load_rbac``)."""
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {role}, namespace: {namespace}}}
rules:
  - {{apiGroups: [{group}], resources: [{resource}], verbs: [get]}}
---""" + role_binding(binding, namespace, role, COLLECTOR_SUBJECT)


RBAC = grant_to_collector(role="whoami-caller", binding="collector-calls-whoami",
                          namespace="compass-system", group="compass.example", resource="whoami")
#: The collector may get reports.example.com reports in team-a.
REPORTS_GRANT = grant_to_collector(role="report-reader", binding="collector-reads-reports",
                                   namespace="team-a", group="reports.example.com",
                                   resource="reports")
