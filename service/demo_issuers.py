"""The demo's "another cluster" section (issue 22): a second emulated cluster is trusted through
``AUTH_AUTHENTICATION_CONFIG`` (docs/authentication-config.md), its service account's token is
accepted, and ``/whoami``'s RBAC check is granted by a binding to that cluster's (prefixed)
group, as kube-apiserver's own structured authentication would do."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tornado.httpclient import AsyncHTTPClient

from compass_auth.testing import DevCluster
from compass_auth.testing.authnconfig import (
    ANONYMOUS_DISCOVERY_RBAC,
    jwt_authenticator,
    write_authentication_config,
)

from . import otel
from .settings import AUDIENCE

if TYPE_CHECKING:
    from .demo import Row

SECOND_ISSUER = "https://second-cluster.example"
#: The other cluster's users and groups get a prefix, so that none can pass for a local one.
CLAIM_MAPPINGS = {
    "username": {"claim": "sub", "prefix": "second:"},
    "groups": {"expression": "['second:system:serviceaccounts:' + "
                             "claims['kubernetes.io'].namespace]"},
}
GROUP = "second:system:serviceaccounts:team-b"
GRANT = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: second-cluster-team-b-calls-whoami, namespace: compass-system}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: "compass-auth:caller"}}
subjects:
  - {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "{GROUP}"}}
"""


async def run_other_cluster(cluster: DevCluster, workdir: str,
                            setup: otel.TelemetrySetup | None = None) -> list[Row]:
    """A token of a second cluster: 403 before the binding to its group, 200 after."""
    # Imported here: demo.py imports this module for its section.
    from .demo import WHOAMI_ACCESS, WHOAMI_RBAC, Case, _row, _start_service

    with DevCluster(issuer=SECOND_ISSUER, external_address=None) as second, \
            tempfile.TemporaryDirectory(dir=workdir) as own:
        second.load_rbac(ANONYMOUS_DISCOVERY_RBAC, persistent=True)
        config = write_authentication_config(
            Path(own) / "authentication-config.yaml",
            [jwt_authenticator(second, audiences=(AUDIENCE,), claim_mappings=CLAIM_MAPPINGS)])
        print(f"  {config.name}: jwt[0].issuer.url={second.issuer}, discoveryURL="
              f"{second.discovery_url}, groups from claims['kubernetes.io'].namespace")
        cluster.load_rbac(WHOAMI_RBAC)
        service, base_url = await _start_service(
            cluster, workdir, setup, AUTH_ALLOWED_SUBJECTS="", AUTH_REQUIRED_ACCESS=WHOAMI_ACCESS,
            AUTH_AUTHENTICATION_CONFIG=str(config), AUTH_AUTHZ_DENIED_TTL="0")
        await service.authenticator.wait_started()
        client = AsyncHTTPClient()

        def token(_: DevCluster) -> str:
            return second.mint(namespace="team-b", service_account="builder",
                               audiences=(AUDIENCE,))

        rows = []
        for case in (Case("second cluster, no binding", token, 403, "access_denied"),
                     Case(f"after a binding to {GROUP}", token, 200, None)):
            if case.status == 200:
                cluster.load_rbac(GRANT)
            response = await client.fetch(base_url + "/whoami", raise_error=False,
                                          headers={"Authorization": f"Bearer {token(second)}"})
            rows.append(_row(case, response, "jwks"))
        await service.drain()
    return rows
