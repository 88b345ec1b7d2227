"""Authorization figures (issue 15), in process against the emulator (docs/authorization.md):

* the cost of a cached decision: ``Authorizer.authorize_cached`` for one check whose allowed
  answer is cached, after a cached authentication, with telemetry off and with a recording SDK
  (the request's server span current, as in the service), and its templated variant (the
  namespace filled from the route per request);
* reviews per distinct (caller, check): distinct callers, each asking several times, some at
  once, against the number of SubjectAccessReviews the emulator answered.

``python -m benchmarks.authorization [--iterations N] [--rounds R] [--callers C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from compass_auth import Authenticator, AuthSettings, Identity, ResourceCheck
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster

from .micro import DiscardExporter, Figure, interleaved, summarize

AUDIENCE = "compass-internal"
CHECK = ResourceCheck("get", "whoami", group="compass.example", namespace="{service_namespace}")
ROUTE_CHECK = ResourceCheck("get", "whoami", group="compass.example", namespace="{namespace}")
RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: whoami-caller, namespace: compass-system}
rules: [{apiGroups: [compass.example], resources: [whoami], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: serviceaccounts-call-whoami, namespace: compass-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: whoami-caller}
subjects: [{kind: Group, name: system:serviceaccounts, apiGroup: rbac.authorization.k8s.io}]
"""


async def connect(kubeconfig: Path, telemetry: Telemetry) -> Authenticator:
    environ = {"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE}
    authenticator = await Authenticator.connect(AuthSettings.from_env(environ), environ,
                                                telemetry=telemetry)
    authenticator.start()
    await authenticator.wait_started()
    return authenticator


async def cached_decision(cluster: DevCluster, kubeconfig: Path, iterations: int,
                          rounds: int) -> list[Figure]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()],
                                   exemplar_filter=AlwaysOffExemplarFilter())
    off = await connect(kubeconfig, Telemetry(trace.NoOpTracerProvider()))
    sdk = await connect(kubeconfig, Telemetry(tracer_provider, meter_provider))
    header = [f"Bearer {cluster.mint(audiences=(AUDIENCE,))}"]
    arguments = {"namespace": "compass-system"}
    for authenticator in (off, sdk):  # the first sight: verified, then one review each
        identity = await authenticator.authenticate_request(header)
        await authenticator.authorizer.authorize(identity, (CHECK, ROUTE_CHECK), arguments)
    server_span = tracer_provider.get_tracer("bench").start_span("GET /whoami")

    def authenticated(authenticator: Authenticator) -> Identity:
        answer = authenticator.authenticate_cached(header)
        assert isinstance(answer, Identity)
        return answer

    def authorized(authenticator: Authenticator, check: ResourceCheck) -> None:
        assert authenticator.authorizer.authorize_cached(authenticated(authenticator), (check,),
                                                         arguments) is None

    def with_server_span(call: object) -> object:
        def run() -> None:
            with trace.use_span(server_span, end_on_exit=False):
                call()  # type: ignore[operator]
        return run

    variants = {
        "authentication only, telemetry off": lambda: authenticated(off),
        "+ cached decision, telemetry off": lambda: authorized(off, CHECK),
        "+ cached decision (route template), off": lambda: authorized(off, ROUTE_CHECK),
        "authentication only, recording SDK": with_server_span(lambda: authenticated(sdk)),
        "+ cached decision, recording SDK": with_server_span(lambda: authorized(sdk, CHECK)),
    }
    results = interleaved(variants, iterations, rounds)  # type: ignore[arg-type]
    for authenticator in (off, sdk):
        await authenticator.close()
    tracer_provider.shutdown()
    return summarize(results)


async def reviews_per_pair(cluster: DevCluster, kubeconfig: Path, callers: int) -> str:
    """Each distinct caller asks 20 times, the first 10 at once: how many reviews per pair."""
    authenticator = await connect(kubeconfig, Telemetry(trace.NoOpTracerProvider()))
    tokens = [cluster.mint(service_account=f"caller-{index}", pod=None, node=None,
                           audiences=(AUDIENCE,)) for index in range(callers)]
    before = cluster.request_count("subjectaccessreview")
    for token in tokens:
        identity = await authenticator.authenticate_request([f"Bearer {token}"])
        asks = [authenticator.authorizer.authorize(identity, (CHECK,), {}) for _ in range(10)]
        await asyncio.gather(*asks)
        for _ in range(10):
            assert authenticator.authorizer.authorize_cached(identity, (CHECK,), {}) is None
    reviews = cluster.request_count("subjectaccessreview") - before
    await authenticator.close()
    return (f"{callers} distinct (caller, check) pairs x 20 decisions (10 at once): "
            f"{reviews} SubjectAccessReviews, {reviews / callers:.2f} per pair")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callers", type=int, default=200)
    options = parser.parse_args()
    with DevCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        cluster.load_rbac(RBAC, persistent=True)
        kubeconfig = cluster.write_kubeconfig(Path(workdir) / "kubeconfig")
        figures = asyncio.run(cached_decision(cluster, kubeconfig, options.iterations,
                                              options.rounds))
        pairs = asyncio.run(reviews_per_pair(cluster, kubeconfig, options.callers))
    for figure in figures:
        print(f"{figure.name:<44} {figure.median_us:8.2f} µs "
              f"({figure.min_us:.2f}-{figure.max_us:.2f})")
    print(pairs)


if __name__ == "__main__":
    main()
