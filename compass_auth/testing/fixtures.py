"""The pytest plugin of the test kit, registered under the ``pytest11`` entry point: installing
``compass-auth[testing]`` is enough to get the fixtures ``devcluster``, ``devcluster_session``,
``devcluster_sa_dir`` and ``devcluster_kubeconfig``.

One emulator per test session (start-up costs an RSA key), reset before and
after every test so a fault or a revoked switch never leaks into the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from compass_auth.testing.cluster import DevCluster

logger = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def devcluster_session() -> Iterator[DevCluster]:
    """The started session-wide emulator; stopped when the session ends."""
    cluster = DevCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def devcluster(devcluster_session: DevCluster) -> Iterator[DevCluster]:
    """The session emulator with faults, counters, switches, issuer and certificate reset."""
    devcluster_session.reset()
    yield devcluster_session
    devcluster_session.reset()


@pytest.fixture
def devcluster_sa_dir(devcluster: DevCluster, tmp_path: Path) -> Path:
    """A pod-like service-account folder (kubelet layout) for the service account."""
    return devcluster.write_serviceaccount_dir(tmp_path / "serviceaccount")


@pytest.fixture
def devcluster_kubeconfig(devcluster: DevCluster, tmp_path: Path) -> Path:
    """A kubeconfig using the service account's token."""
    return devcluster.write_kubeconfig(tmp_path / "kubeconfig")
