"""The pytest plugin of the test kit, registered under the ``pytest11`` entry point: installing
``compass-auth[testing]`` is enough to get the fixtures ``devcluster``, ``devcluster_session``,
``devcluster_sa_dir``, ``devcluster_kubeconfig`` and ``devcluster_serve``; for several issuers,
``oidc_issuer``, ``second_cluster`` (and their ``_session`` forms) and
``authentication_config_file``.

One emulator per test session (start-up costs an RSA key), reset before and
after every test so a fault or a revoked switch never leaks into the next one.

Async tests run on pytest-asyncio, which ``[testing]`` installs. ``devcluster_serve`` declares its
own event loop (the test's, function scope), so it works in either of pytest-asyncio's modes and
whatever the project configures; a project that configures nothing gets
``asyncio_default_fixture_loop_scope = function`` from here (``pytest_load_initial_conftests``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest
import pytest_asyncio

from compass_auth.testing.authnconfig import (
    ANONYMOUS_DISCOVERY_RBAC,
    TrustedIssuer,
    write_authentication_config,
)
from compass_auth.testing.cluster import DevCluster
from compass_auth.testing.issuer.emulator import OidcIssuer

if TYPE_CHECKING:  # the library is imported only when an application is served
    from compass_auth.testing.appserver import AppSpec

logger = logging.getLogger(__name__)

#: pytest-asyncio's setting for the event loop of async fixtures. Left unset, it warns on every
#: run and asks the project to choose; "function" is the default its maintainers announce for
#: the next major release, and the loop ``@pytest.mark.asyncio`` tests get by default, so a
#: test and its function-scoped async fixtures share one loop. A project's own value wins.
FIXTURE_LOOP_SCOPE = "asyncio_default_fixture_loop_scope"
#: The issuer of ``second_cluster``: not a served URL (its discovery is reached through
#: ``discoveryURL``), never the first cluster's (an AuthenticationConfiguration may not name the
#: local service-account issuer), and in ``.example``, a name that resolves nowhere (RFC 2606).
SECOND_CLUSTER_ISSUER = "https://second-cluster.example"
#: ``oidc_issuer``'s path: an issuer URL with a path, as Keycloak's and Okta's have.
OIDC_ISSUER_PATH = "/realms/compass"


def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Give pytest-asyncio's fixture loop scope a default when the project sets none.

    Runs after every plugin registered its options and before any reads them. ``addini`` on a
    registered name replaces only its default: a value from the project's configuration or
    ``-o`` still applies."""
    if early_config.pluginmanager.hasplugin("asyncio"):
        parser.addini(FIXTURE_LOOP_SCOPE, "default event loop scope of async fixtures "
                      "(compass-auth's plugin: function unless the project sets one)",
                      default="function")


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


class Serve(Protocol):
    """``devcluster_serve``: start an application, get its base URL."""

    def __call__(
        self, app: AppSpec, environ: Mapping[str, str] | None = None, *,
        require_local_keys: bool = True,
    ) -> Awaitable[str]: ...


@pytest_asyncio.fixture(loop_scope="function")
async def devcluster_serve(
    devcluster: DevCluster, devcluster_kubeconfig: Path
) -> AsyncIterator[Serve]:
    """``url = await devcluster_serve(app, environ=None)``: run ``app`` (an ``Application``,
    its handler rules, or ``make_app(authenticator)``) on a loopback port with a started
    ``Authenticator`` whose keys are loaded, and return its base URL (``http://127.0.0.1:PORT``).

    ``environ`` holds the ``AUTH_*`` variables (``AUTH_AUDIENCE`` defaults to
    ``compass-internal``, the audience ``devcluster.mint()`` puts in tokens); the process
    environment is not read. Everything is stopped when the test ends.
    """
    from compass_auth.testing.appserver import ServedApp, serve_app

    served: list[ServedApp] = []

    async def serve(app: AppSpec, environ: Mapping[str, str] | None = None, *,
                    require_local_keys: bool = True) -> str:
        running = await serve_app(app, devcluster_kubeconfig, environ,
                                  require_local_keys=require_local_keys)
        served.append(running)
        return running.url

    try:
        yield serve
    finally:
        for running in reversed(served):
            await running.close()


# ---- several issuers (AuthenticationConfiguration, issue 22) ------------------------------------


@pytest.fixture(scope="session")
def oidc_issuer_session() -> Iterator[OidcIssuer]:
    """A started plain OIDC issuer (``https://127.0.0.1:PORT/realms/compass``), its own CA and
    keys; stopped when the session ends."""
    issuer = OidcIssuer(OIDC_ISSUER_PATH)
    issuer.start()
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture
def oidc_issuer(oidc_issuer_session: OidcIssuer) -> Iterator[OidcIssuer]:
    """The session issuer with faults, request log, clock and certificate reset (keys kept)."""
    oidc_issuer_session.reset()
    yield oidc_issuer_session
    oidc_issuer_session.reset()


@pytest.fixture(scope="session")
def second_cluster_session() -> Iterator[DevCluster]:
    """Another emulated cluster: issuer ``https://second-cluster.example``, its own CA and keys,
    ``jwks_uri`` on its served URL, discovery readable without credentials
    (``ANONYMOUS_DISCOVERY_RBAC``), as a cluster trusted through ``discoveryURL`` must be."""
    cluster = DevCluster(issuer=SECOND_CLUSTER_ISSUER, external_address=None)
    cluster.start()
    try:
        cluster.load_rbac(ANONYMOUS_DISCOVERY_RBAC, persistent=True)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def second_cluster(second_cluster_session: DevCluster) -> Iterator[DevCluster]:
    """The second cluster, reset before and after each test like ``devcluster``."""
    second_cluster_session.reset()
    yield second_cluster_session
    second_cluster_session.reset()


class WriteConfig(Protocol):
    """``authentication_config_file``: write a configuration, get its path."""

    def __call__(self, issuers: Iterable[TrustedIssuer | Mapping[str, Any]],
                 name: str = "authentication-config.yaml", **options: Any) -> Path: ...


@pytest.fixture
def authentication_config_file(tmp_path: Path) -> WriteConfig:
    """``path = authentication_config_file([oidc_issuer, second_cluster], **options)``: an
    ``AuthenticationConfiguration`` trusting those issuers, in the test's ``tmp_path``
    (``options``: those of ``write_authentication_config``). Calling it again with the same
    ``name`` replaces the file atomically (a reload)."""

    def write(issuers: Iterable[TrustedIssuer | Mapping[str, Any]],
              name: str = "authentication-config.yaml", **options: Any) -> Path:
        return write_authentication_config(tmp_path / name, issuers, **options)

    return write
