"""A kube-apiserver emulator for testing service-account token verification.

Shipped with compass-auth so downstream users can test their own handlers::

    from compass_auth.testing import DevCluster, Fault

    with DevCluster() as cluster:
        token = cluster.mint(audiences=("my-service",))
        cluster.set_fault("jwks", Fault(status=503, times=1))

``OidcIssuer`` is a plain OIDC issuer beside it, and ``write_authentication_config`` writes an
``AuthenticationConfiguration`` that trusts either. It shares no code with ``compass_auth`` (the
verifier) on purpose: a bug in one must not be mirrored in the other.  See README.md beside this
file.
"""

from __future__ import annotations

from compass_auth.testing.authnconfig import (
    ANONYMOUS_DISCOVERY_RBAC,
    authentication_config,
    jwt_authenticator,
    write_authentication_config,
)
from compass_auth.testing.cluster import DevCluster
from compass_auth.testing.credentials.ca import Issued
from compass_auth.testing.issuer.emulator import OidcIssuer
from compass_auth.testing.server.faults import Fault
from compass_auth.testing.server.requestlog import RequestRecord

__all__ = [
    "ANONYMOUS_DISCOVERY_RBAC",
    "DevCluster",
    "Fault",
    "Issued",
    "OidcIssuer",
    "RequestRecord",
    "authentication_config",
    "jwt_authenticator",
    "write_authentication_config",
]
