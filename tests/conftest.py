"""Shared fixtures: the cluster emulator (compass_auth.testing) and the example service on loopback.

Everything runs over real sockets: the service talks to the emulator over HTTPS verified against
the emulator's CA, and the tests talk to the service over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tornado.web
import yaml
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from compass_auth import Authenticator, AuthSettings
from compass_auth.core.bearer import fingerprint
from compass_auth.core.keyset import KeySet
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster
from service import otel
from service.app import Service
from service.otel import TelemetrySetup

from .otlp_receiver import OtlpHandler, Received

AUDIENCE = "compass-internal"
COLLECTOR = "system:serviceaccount:default:collector"
#: The issuer of the pure verifier's tables (the ``cluster`` fixture).
ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class RunningService:
    """The example service started against the emulator, with helpers to call it."""

    cluster: DevCluster
    service: Service
    authenticator: Authenticator
    environ: dict[str, str]
    base_url: str
    #: Fingerprint of the service's own credential, to tell its API calls from other tests'.
    credential_fp: str
    client: AsyncHTTPClient = field(default_factory=AsyncHTTPClient)

    def api_calls(self, endpoint: str) -> int:
        """How many requests this service (not an earlier test's) sent to an emulator endpoint."""
        return sum(
            1 for record in self.cluster.request_log
            if record.endpoint == endpoint
            and record.headers_subset.get("Authorization-Fingerprint") == self.credential_fp
        )

    async def get(
        self, path: str = "/whoami", token: str | None = None, **headers: str
    ) -> HTTPResponse:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.fetch(
            self.base_url + path, headers=headers, raise_error=False, request_timeout=20
        )

    def token(self, **kwargs: Any) -> str:
        """A valid token for the collector workload (override any ``mint`` argument)."""
        arguments: dict[str, Any] = {
            "namespace": "default",
            "service_account": "collector",
            "audiences": (AUDIENCE,),
            "pod": "collector-6c9d8b7f5-x2k9q",
            "node": "kind-worker",
        }
        arguments.update(kwargs)
        return self.cluster.mint(**arguments)


StartService = Callable[..., Any]


@pytest.fixture
async def start_service(
    devcluster: DevCluster, tmp_path: Path
) -> AsyncIterator[StartService]:
    """Factory: ``await start_service(**env)`` runs the service with extra environment."""
    started: list[Service] = []

    async def start(
        wait: bool = True,
        in_cluster: bool = False,
        telemetry: TelemetrySetup | None = None,
        service_options: dict[str, Any] | None = None,
        account: tuple[str, str] | None = None,
        **env: str,
    ) -> RunningService:
        # The service's own (namespace, service account); the emulator's default otherwise.
        own = {} if account is None else {"namespace": account[0],
                                          "service_account": account[1]}
        if in_cluster:
            sa_dir = devcluster.write_serviceaccount_dir(tmp_path / "sa", **own)
            environ = {**devcluster.incluster_environ(), "AUTH_SERVICEACCOUNT_DIR": str(sa_dir)}
            credential = (sa_dir / "token").read_text()
        else:
            kubeconfig = devcluster.write_kubeconfig(tmp_path / "kubeconfig", **own)
            environ = {"KUBECONFIG": str(kubeconfig)}
            credential = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        environ.update({"AUTH_AUDIENCE": AUDIENCE, **env})
        settings = AuthSettings.from_env(environ)
        library_telemetry = (
            Telemetry(telemetry.tracer_provider, telemetry.meter_provider) if telemetry else None
        )
        authenticator = await Authenticator.connect(settings, environ, telemetry=library_telemetry)
        service = Service(authenticator, drain_seconds=2.0, telemetry=telemetry,
                          **(service_options or {}))
        port = service.listen("127.0.0.1", 0)
        started.append(service)
        if wait:
            await authenticator.wait_started()
        return RunningService(
            cluster=devcluster,
            service=service,
            authenticator=authenticator,
            environ=environ,
            base_url=f"http://127.0.0.1:{port}",
            credential_fp=fingerprint(credential),
        )

    yield start
    for service in started:
        await service.drain()


@pytest.fixture
async def running(start_service: StartService) -> RunningService:
    """The service with default settings, keys loaded."""
    result: RunningService = await start_service()
    return result


@pytest.fixture
def telemetry_setup() -> Iterator[
    tuple[TelemetrySetup, InMemorySpanExporter, InMemoryMetricReader]
]:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    setup = otel.configure({}, extra_span_exporters=(spans,), extra_metric_readers=(reader,))
    yield setup, spans, reader
    setup.shutdown()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Received]]:
    """A real OTLP/HTTP receiver on loopback: (endpoint, what it received)."""
    received = Received()
    app = tornado.web.Application([(r"/v1/(traces|metrics)", OtlpHandler, {"received": received})])
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}", received
    server.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[DevCluster]:
    """An emulator of the pure verifier's tables, one per test module, with an EC key
    published beside the RSA signing key (tests/helpers.py ``mint`` and ``POLICY``)."""
    with DevCluster(issuer=ISSUER) as started:
        started.add_key("EC")  # published, not current: the RSA key stays the signing key
        yield started


@pytest.fixture(scope="module")
def keys(cluster: DevCluster) -> KeySet:
    return KeySet.from_jwks(cluster.jwks(), issuer=ISSUER)


@pytest.fixture
def no_sleep() -> Callable[[float], Any]:
    """An ``asyncio.sleep`` replacement that records the waits instead of waiting."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    sleep.waits = waits  # type: ignore[attr-defined]
    return sleep


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds: wait for a state, not for a fixed time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes; a reset (it closed with our request
    unread) counts as closing without an answer."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""


async def raw_get(port: int | None, headers: dict[str, str], path: str = "/whoami") -> int:
    """GET from a client no instrumentation touches, so only the given headers are sent
    (Tornado's instrumented AsyncHTTPClient would inject a traceparent of its own)."""
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1])


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record with its extra fields, as an operator would see them."""
    from service.logs import LogfmtFormatter

    formatter = LogfmtFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


@pytest.fixture(autouse=True)
def _capture_info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
