"""Issue 22's cost of several issuers, in process against the emulators, in one run:

* the known-token cost (``Authenticator.authenticate_cached``, telemetry off) of the cluster's
  own token without ``AUTH_AUTHENTICATION_CONFIG`` and with a file of three issuers (a second
  cluster and two OIDC issuers), and of the last issuer's token under that file;
* a first sight of that issuer's token with five CEL claim validation rules (the full
  ``authenticate_uncached``: decode, route, signature, rules, mappings, cache), against the same
  without rules.

``python -m benchmarks.issuers [--iterations N] [--rounds R]`` (needs the ``cel`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from opentelemetry import trace

from compass_auth import Authenticator, AuthSettings, Identity
from compass_auth.telemetry import Telemetry
from compass_auth.testing import DevCluster
from compass_auth.testing.authnconfig import (
    ANONYMOUS_DISCOVERY_RBAC,
    jwt_authenticator,
    write_authentication_config,
)
from compass_auth.testing.issuer.emulator import OidcIssuer

from .micro import interleaved, summarize

AUDIENCE = "compass-internal"
FIVE_RULES = [
    {"expression": "claims.email_verified == true", "message": "verified"},
    {"expression": "claims.sub.startsWith('job-')", "message": "jobs"},
    {"expression": "'builders' in claims.groups", "message": "builders"},
    {"expression": "has(claims.tenant)", "message": "tenant"},
    {"expression": "claims.?tenant.orValue('none') != 'blocked'", "message": "not blocked"},
]


async def connect(kubeconfig: Path, config: Path | None) -> Authenticator:
    environ = {"KUBECONFIG": str(kubeconfig), "AUTH_AUDIENCE": AUDIENCE,
               "AUTH_CACHE_SIZE": "100000"}
    if config is not None:
        environ["AUTH_AUTHENTICATION_CONFIG"] = str(config)
    authenticator = await Authenticator.connect(
        AuthSettings.from_env(environ), environ, telemetry=Telemetry(trace.NoOpTracerProvider()))
    authenticator.start()
    await authenticator.wait_started()
    return authenticator


async def measure(cluster: DevCluster, second: DevCluster, ci: OidcIssuer, ci_rules: OidcIssuer,
                  workdir: Path, iterations: int, rounds: int) -> list[str]:
    kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
    config = write_authentication_config(workdir / "authn.yaml", [
        jwt_authenticator(second, prefix="second:"),
        jwt_authenticator(ci, prefix="ci:"),
        jwt_authenticator(ci_rules, prefix="rules:", claim_validation_rules=FIVE_RULES),
    ])
    none = await connect(kubeconfig, None)
    three = await connect(kubeconfig, config)
    own = [f"Bearer {cluster.mint(audiences=(AUDIENCE,))}"]
    claims = {"email_verified": True, "groups": ["builders"], "tenant": "a"}
    foreign = [f"Bearer {ci_rules.mint('job-1', claims=claims)}"]
    for authenticator, header in ((none, own), (three, own), (three, foreign)):
        await authenticator.authenticate_request(header)

    def known(authenticator: Authenticator, header: list[str]) -> None:
        assert isinstance(authenticator.authenticate_cached(header), Identity)

    results = interleaved({
        "known cluster token, no config": lambda: known(none, own),
        "known cluster token, 3-issuer config": lambda: known(three, own),
        "known token of the 3rd issuer": lambda: known(three, foreign),
    }, iterations, rounds)
    lines = [f"{figure.name:<40} {figure.median_us:7.3f} µs "
             f"({figure.min_us:.3f}-{figure.max_us:.3f})" for figure in summarize(results)]

    # First sights: each token new (minted ahead), verified in full on the jwt path.
    count = max(200, iterations // 20)
    loop_results: dict[str, list[float]] = {}
    for name, issuer in (("first sight, 5 CEL rules", ci_rules), ("first sight, no rules", ci)):
        tokens = [[f"Bearer {issuer.mint(f'job-{n}', claims=claims)}"] for n in range(count)]
        started = asyncio.get_running_loop().time()
        for header in tokens:
            await three.authenticate_request(header)
        loop_results[name] = [(asyncio.get_running_loop().time() - started) / count]
    lines += [f"{name:<40} {values[0] * 1e6:7.1f} µs (mean of {count})"
              for name, values in loop_results.items()]
    for authenticator in (none, three):
        await authenticator.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with DevCluster() as cluster, DevCluster(issuer="https://second-cluster.example",
                                             external_address=None) as second, \
            OidcIssuer("/realms/ci") as ci, OidcIssuer("/realms/rules") as ci_rules, \
            tempfile.TemporaryDirectory() as workdir:
        second.load_rbac(ANONYMOUS_DISCOVERY_RBAC, persistent=True)
        lines = asyncio.run(measure(cluster, second, ci, ci_rules, Path(workdir),
                                    options.iterations, options.rounds))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
