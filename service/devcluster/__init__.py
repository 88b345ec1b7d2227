"""A kube-apiserver emulator for testing service-account token verification.

Shipped with compass-auth so downstream users can test their own handlers::

    from service.devcluster import DevCluster, Fault

    with DevCluster() as cluster:
        token = cluster.mint(audiences=("my-service",))
        cluster.set_fault("jwks", Fault(status=503, times=1))

It shares no code with ``service.auth`` (the verifier) on purpose: a bug in
one must not be mirrored in the other.  See README.md beside this file.
"""

from __future__ import annotations

from service.devcluster.ca import Issued
from service.devcluster.cluster import DevCluster
from service.devcluster.faults import Fault
from service.devcluster.requestlog import RequestRecord

__all__ = ["DevCluster", "Fault", "Issued", "RequestRecord"]
