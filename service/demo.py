"""``python -m service demo``: the emulator and the example service in one process.

Starts the built-in cluster emulator (HTTPS on loopback, its own CA), points the service at it
through a kubeconfig, calls ``/whoami`` with one token per case and prints what happened, then
opens the WebSocket ``/ws/whoami`` with a token that expires in a few seconds and shows it being
closed at expiry; then fallback, authorization, another cluster's token accepted through
``AUTH_AUTHENTICATION_CONFIG`` (``demo_issuers.py``), and the example ASGI service
(examples/asgi_service) on uvicorn against the same emulator. Exits 0 when every case got the
answer it should.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import websocket_connect

from compass_auth import Authenticator, AuthSettings
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster, Fault

from . import otel
from .app import Service
from .demo_issuers import run_other_cluster
from .logs import LogfmtFormatter
from .settings import AUDIENCE

CALLER = ("default", "collector")
CALLER_POD = "collector-6c9d8b7f5-x2k9q"
#: Lifetime of the WebSocket case's token: the demo waits this long (at most) for the close.
WEBSOCKET_TOKEN_LIFETIME = 3


@dataclass(frozen=True)
class Case:
    name: str
    make_token: Callable[[DevCluster], str]
    status: int
    reason: str | None


def _valid(cluster: DevCluster) -> str:
    return cluster.mint(namespace=CALLER[0], service_account=CALLER[1],
                        audiences=(AUDIENCE,), pod=CALLER_POD, node="kind-worker")


def _expired(cluster: DevCluster) -> str:
    return cluster.mint(namespace=CALLER[0], service_account=CALLER[1], audiences=(AUDIENCE,),
                        pod=CALLER_POD, issued_at=int(time.time()) - 7200, lifetime=3600)


def _wrong_audience(cluster: DevCluster) -> str:
    return cluster.mint(namespace=CALLER[0], service_account=CALLER[1],
                        audiences=("vault",), pod=CALLER_POD)


def _not_allowed(cluster: DevCluster) -> str:
    return cluster.mint(namespace="default", service_account="intruder",
                        audiences=(AUDIENCE,), pod="intruder-7d4f9c-abcde")


def _alg_none(cluster: DevCluster) -> str:
    # A real token's claims, re-signed with "alg": "none" and an empty signature.
    now = int(time.time())
    payload = {
        "aud": [AUDIENCE], "exp": now + 3600, "iat": now, "iss": cluster.issuer, "nbf": now,
        "kubernetes.io": {"namespace": CALLER[0],
                          "serviceaccount": {"name": CALLER[1], "uid": "forged"}},
        "sub": f"system:serviceaccount:{CALLER[0]}:{CALLER[1]}",
    }
    return cluster.sign_raw({"alg": "none", "kid": cluster.signing_key_id}, payload, alg="none")


CASES = (
    Case("valid token", _valid, 200, None),
    Case("expired token", _expired, 401, "expired"),
    Case("wrong audience", _wrong_audience, 401, "audience_mismatch"),
    Case("subject not allowed", _not_allowed, 403, "subject_not_allowed"),
    Case("forged, alg: none", _alg_none, 401, "unsupported_algorithm"),
)


@dataclass(frozen=True)
class Row:
    case: str
    status: int
    who: str
    verified_by: str
    reason: str
    ok: bool


async def run_cases(base_url: str, cluster: DevCluster) -> list[Row]:
    client = AsyncHTTPClient()
    rows = []
    for case in CASES:
        response = await client.fetch(
            base_url + "/whoami",
            headers={"Authorization": f"Bearer {case.make_token(cluster)}"},
            raise_error=False,
        )
        rows.append(_row(case, response))
    return rows


def _row(case: Case, response: HTTPResponse, verified_by: str | None = None) -> Row:
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        body = {}
    who = body.get("subject", "-") if response.code == 200 else "-"
    reason = body.get("reason", "-") if response.code != 200 else "-"
    ok = response.code == case.status and (case.reason is None or reason == case.reason)
    if verified_by is not None and response.code == 200:
        ok = ok and body.get("verified_by") == verified_by
    return Row(case.name, response.code, who, body.get("verified_by", "-"), reason, ok)


async def run_websocket(base_url: str, cluster: DevCluster) -> list[Row]:
    """``/ws/whoami``: refusals are plain HTTP answers before any upgrade; an accepted
    connection is closed with 1008 when its token expires (``AUTH_WEBSOCKET_GRACE`` is 0)."""
    url = "ws" + base_url.removeprefix("http") + "/ws/whoami"
    rows = await _refused_handshakes(base_url, cluster, (
        Case("websocket: no token", lambda cluster: "", 401, "missing"),
        Case("websocket: subject not allowed", _not_allowed, 403, "subject_not_allowed")))
    token = cluster.mint(namespace=CALLER[0], service_account=CALLER[1], audiences=(AUDIENCE,),
                         pod=CALLER_POD, lifetime=WEBSOCKET_TOKEN_LIFETIME)
    name = f"websocket: token expires in {WEBSOCKET_TOKEN_LIFETIME} s"
    connection = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}))
    hello = json.loads(await connection.read_message() or "{}")
    while await connection.read_message() is not None:  # the server closes; nothing else comes
        pass
    after_exp = time.time() - hello.get("expires_at", 0)
    # Closed at exp (+ grace 0), not before: ``after_exp`` is the close's delay as seen here.
    ok = (connection.close_code == 1008 and connection.close_reason == "token expired"
          and 0 <= after_exp < 1)
    rows.append(Row(name, 101, hello.get("subject", "-"), hello.get("verified_by", "-"),
                    f"closed {connection.close_code} {connection.close_reason!r} "
                    f"{after_exp:.1f} s after exp", ok))
    return rows


async def _refused_handshakes(base_url: str, cluster: DevCluster,
                              cases: tuple[Case, ...]) -> list[Row]:
    """``/ws/whoami`` handshakes that must be refused before the upgrade, with the plain HTTP
    answer of a request."""
    url = "ws" + base_url.removeprefix("http") + "/ws/whoami"
    rows = []
    for case in cases:
        token = case.make_token(cluster)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            connection = await websocket_connect(HTTPRequest(url, headers=headers))
        except HTTPClientError as error:  # not upgraded: the answer is a plain HTTP response
            rows.append(_row(case, error.response) if error.response is not None
                        else Row(case.name, error.code, "-", "-", "-", False))
        else:  # upgraded: the case failed
            connection.close()
            rows.append(Row(case.name, 101, "-", "-", "-", False))
    return rows


def format_table(rows: list[Row]) -> str:
    header = ("case", "HTTP", "who", "verified_by", "reason", "as expected")
    lines = [header] + [
        (row.case, str(row.status), row.who, row.verified_by, row.reason,
         "yes" if row.ok else "NO") for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                for line in lines]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(LogfmtFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The library's and the service's warnings, and the WebSocket expiry line (INFO); not
        # Tornado's access log, not the emulator's.
        if record.levelno < logging.WARNING and record.name != "compass_auth.tornado.websocket":
            return
        if record.name.startswith(("compass_auth.", "service.")) and not record.name.startswith(
                "compass_auth.testing"):
            self.lines.append(self.format(record))


async def _start_service(
    cluster: DevCluster, workdir: str, setup: otel.TelemetrySetup | None = None, **extra: str
) -> tuple[Service, str]:
    kubeconfig = cluster.write_kubeconfig(Path(workdir) / "kubeconfig")
    environ = {
        "KUBECONFIG": str(kubeconfig),
        "AUTH_AUDIENCE": AUDIENCE,
        "AUTH_ALLOWED_SUBJECTS": f"system:serviceaccount:{CALLER[0]}:{CALLER[1]}",
        **extra,
    }
    settings = AuthSettings.from_env(environ)
    telemetry = Telemetry(setup.tracer_provider, setup.meter_provider) if setup else None
    authenticator = await Authenticator.connect(settings, environ, telemetry=telemetry)
    # With the setup, the service's server spans too (the auth.* spans are their children).
    service = Service(authenticator, drain_seconds=1.0, telemetry=setup, owns_telemetry=False)
    port = service.listen("127.0.0.1", 0)
    return service, f"http://127.0.0.1:{port}"


async def run_fallback(
    cluster: DevCluster, workdir: str, setup: otel.TelemetrySetup | None = None
) -> list[Row]:
    """Discovery down at start-up: TokenReview serves; discovery back: local again."""
    cluster.set_fault("discovery", Fault(status=503))
    service, base_url = await _start_service(cluster, workdir, setup,
                                             AUTH_REDISCOVERY_INTERVAL="1")
    client = AsyncHTTPClient()
    rows = []
    for case in (Case("discovery down: valid token", _valid, 200, None),
                 Case("discovery down: expired token", _expired, 401, "expired")):
        response = await client.fetch(
            base_url + "/whoami", raise_error=False,
            headers={"Authorization": f"Bearer {case.make_token(cluster)}"})
        rows.append(_row(case, response, "tokenreview"))
    cluster.clear_faults()
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_keys_loaded(service), 15)
    waited = time.monotonic() - started
    response = await client.fetch(
        base_url + "/whoami", raise_error=False,
        headers={"Authorization": f"Bearer {_valid(cluster)}"})
    rows.append(_row(Case(f"discovery back ({waited:.1f} s later)", _valid, 200, None),
                     response, "jwks"))
    await service.drain()
    return rows


async def _keys_loaded(service: Service) -> None:
    """Until the service verifies tokens locally again: its readiness says ``jwks``, asked as a
    readiness probe would (the library's public answer, not its key cache)."""
    while (await service.authenticator.readiness()).path != "jwks":  # noqa: ASYNC110
        await asyncio.sleep(0.05)


#: The check k8s/ sets for /whoami (docs/authorization.md), and RBAC like the demo component's:
#: a Role in the service's namespace (the emulator's account for it is compass-system/compass-auth)
#: bound to the collector only.
WHOAMI_ACCESS = "verb=get,group=compass.example,resource=whoami,namespace={service_namespace}"
WHOAMI_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "compass-auth:caller", namespace: compass-system}
rules:
  - {apiGroups: [compass.example], resources: [whoami], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: collector-calls-whoami, namespace: compass-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "compass-auth:caller"}
subjects:
  - {kind: ServiceAccount, name: collector, namespace: default}
"""


def _no_grant(cluster: DevCluster) -> str:
    return cluster.mint(namespace="default", service_account="no-grant",
                        audiences=(AUDIENCE,), pod="no-grant-5b8d7c-qwert")


async def run_authorization(
    cluster: DevCluster, workdir: str, setup: otel.TelemetrySetup | None = None
) -> list[Row]:
    """/whoami requires an RBAC check, decided by SubjectAccessReview against the RBAC objects."""
    cluster.load_rbac(WHOAMI_RBAC)
    service, base_url = await _start_service(cluster, workdir, setup,
                                             AUTH_ALLOWED_SUBJECTS="",
                                             AUTH_REQUIRED_ACCESS=WHOAMI_ACCESS)
    await service.authenticator.wait_started()
    client = AsyncHTTPClient()
    rows = []
    for case in (Case("RoleBinding grants it", _valid, 200, None),
                 Case("valid token, no grant", _no_grant, 403, "access_denied")):
        response = await client.fetch(
            base_url + "/whoami", raise_error=False,
            headers={"Authorization": f"Bearer {case.make_token(cluster)}"})
        rows.append(_row(case, response, "jwks"))
    await service.drain()
    return rows


async def run_asgi(
    cluster: DevCluster, workdir: str, setup: otel.TelemetrySetup | None = None
) -> list[Row]:
    """The example ASGI service (Starlette behind ``AuthMiddleware``) on uvicorn, with the same
    settings and RBAC as the authorization section: the Tornado service's answers."""
    try:  # the demo extra (make demo installs it)
        from compass_auth.asgi import Auth
        from examples.asgi_service.app import make_app
        from examples.asgi_service.inprocess import start_uvicorn
    except ImportError as error:
        print(f"  cannot run: {error} (pip install -e '.[demo]'; make demo installs it)")
        return [Row("ASGI example service", 0, "-", "-", "not installed", False)]
    cluster.load_rbac(WHOAMI_RBAC)
    kubeconfig = cluster.write_kubeconfig(Path(workdir) / "kubeconfig")
    telemetry = Telemetry(setup.tracer_provider, setup.meter_provider) if setup else None
    auth = Auth({"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE,
                 "AUTH_REQUIRED_ACCESS": WHOAMI_ACCESS}, telemetry=telemetry)
    server, task, port = await start_uvicorn(make_app(auth), lifespan="on")
    base_url = f"http://127.0.0.1:{port}"
    client = AsyncHTTPClient()
    rows = []
    try:
        for case in (Case("asgi: valid token, granted", _valid, 200, None),
                     Case("asgi: no token", lambda cluster: "", 401, "missing"),
                     Case("asgi: wrong audience", _wrong_audience, 401, "audience_mismatch"),
                     Case("asgi: valid token, no grant", _no_grant, 403, "access_denied")):
            token = case.make_token(cluster)
            response = await client.fetch(
                base_url + "/whoami", raise_error=False,
                headers={"Authorization": f"Bearer {token}"} if token else {})
            rows.append(_row(case, response, "jwks"))
        rows += await _refused_handshakes(base_url, cluster, (
            Case("asgi websocket: no token", lambda cluster: "", 401, "missing"),))
    finally:
        server.should_exit = True
        await task
    return rows


def _span_line(span: ReadableSpan) -> str:
    """One line per span: enough to see the tree, the outcome and why."""
    attributes = dict(span.attributes or {})
    shown = {k: v for k, v in attributes.items()
             if k.startswith("auth.") or k == "http.response.status_code"}
    parent = format(span.parent.span_id, "016x")[:8] if span.parent else "-"
    status = span.status.status_code.name
    return (f"  span trace={format(span.context.trace_id, '032x')[:8]} "
            f"id={format(span.context.span_id, '016x')[:8]} parent={parent} "
            f"{span.name!r} status={status} {json.dumps(shown, default=str)}\n")


async def run_demo(telemetry: str = "none") -> bool:
    collected = _Collect()
    logging.getLogger().addHandler(collected)
    logging.getLogger().setLevel(logging.INFO)
    setup = None
    if telemetry == "console":
        # Spans print as they end, one line each, between the table rows' requests.
        exporter = ConsoleSpanExporter(formatter=_span_line)
        setup = otel.configure({}, extra_span_exporters=(exporter,))
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        service, base_url = await _start_service(cluster, workdir, setup)
        await service.authenticator.wait_started()
        print(f"cluster emulator: {cluster.url} (issuer {cluster.issuer})")
        print(f"example service:  {base_url}  (audience {AUDIENCE}, "
              f"allowed: system:serviceaccount:{CALLER[0]}:{CALLER[1]})\n")
        rows = await run_cases(base_url, cluster)
        print(format_table(rows))
        print("\nWebSocket /ws/whoami: refused before the upgrade, closed when its token expires")
        websocket = await run_websocket(base_url, cluster)
        print(format_table(websocket))
        rows += websocket
        await service.drain()
        print("\nfallback and recovery: a second service starts while discovery answers 503")
        fallback = await run_fallback(cluster, workdir, setup)
        print(format_table(fallback))
        rows += fallback
        print(f"\nauthorization: /whoami requires {WHOAMI_ACCESS} (SubjectAccessReview)")
        authorization = await run_authorization(cluster, workdir, setup)
        print(format_table(authorization))
        rows += authorization
        print("\nanother cluster: trusted through AUTH_AUTHENTICATION_CONFIG, authorized by a "
              "binding to its group")
        other = await run_other_cluster(cluster, workdir, setup)
        print(format_table(other))
        rows += other
        print("\nASGI: the example ASGI service (examples/asgi_service, Starlette) on uvicorn, "
              "the same settings and emulator")
        asgi = await run_asgi(cluster, workdir, setup)
        print(format_table(asgi))
        rows += asgi
    print("\nlog lines (tokens appear only as token_fp fingerprints):")
    for line in collected.lines:
        print("  " + line)
    if setup is not None:
        setup.shutdown()
    ok = all(row.ok for row in rows)
    print("\nevery case as expected" if ok else "\nSOME CASES FAILED")
    return ok


def main(telemetry: str = "none") -> int:
    return 0 if asyncio.run(run_demo(telemetry)) else 1
