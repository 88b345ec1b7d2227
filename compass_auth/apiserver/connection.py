"""The connection to the Kubernetes API server (kubernetes-asyncio), and raw bounded GETs.

Where the API server is:

* in a pod (``KUBERNETES_SERVICE_HOST`` set): kubernetes-asyncio's ``InClusterConfigLoader`` with
  the ``token`` and ``ca.crt`` of ``AUTH_SERVICEACCOUNT_DIR``; the namespace file is read here
  (the library never reads it). The token follows the kubelet's rotations
  (``apiserver/tokenfile.py``):
  checked before every call, re-read and retried once after a 401 (``apiserver/middlewares.py``);
* elsewhere: ``load_kube_config`` on ``KUBECONFIG`` or ``~/.kube/config`` (token, token file or
  client certificate of the chosen context), with ``persist_config=False`` so nothing is written
  back.

We decide explicitly instead of calling ``config.load_config()``, which prefers a kubeconfig
whenever one exists, even inside a pod.

With ``KUBERNETES_SERVICE_IP`` set, connections are pinned to that address while TLS keeps
verifying the API server's host name (DNS bypass, ``apiserver/resolver.py``).

Every call is bounded: a timeout (kubernetes-asyncio has none by default), a connection limit, a
response-size cap, and no redirects (a redirect would send our credentials where discovery did
not point us). Only this module and its two callers (``discovery``, ``tokenreview``) import
``kubernetes_asyncio``.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, load_kube_config
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

from ..logs.text import render
from ..settings import AuthSettings
from . import middlewares, troubleshoot
from .resolver import Bypass, PinnedResolver, plan_bypass
from .tokenfile import Stat, TokenFile, TokenFileError

logger = logging.getLogger(__name__)

#: Connections to the API server besides TokenReview's (which has its own cap,
#: AUTH_TOKENREVIEW_MAX_IN_FLIGHT): discovery and JWKS need one or two. kubernetes-asyncio's
#: default limit (100) is far more than an auth component should hold open.
SPARE_CONNECTIONS = 4


class KubeConfigError(Exception):
    """The API server connection cannot be configured (missing files, bad kubeconfig)."""


class RedirectRefused(aiohttp.ClientError):
    """The API server answered with a redirect; we never follow one."""


class ResponseTooLarge(aiohttp.ClientError):
    """The API server's answer exceeded our size cap."""


@dataclass
class ApiServer:
    """An authenticated, CA-pinned client for one API server."""

    client: ApiClient
    host: str
    source: Literal["in-cluster", "kubeconfig"]
    #: The namespace the service runs in (in-cluster), or the kubeconfig context's namespace.
    namespace: str | None
    #: Seconds for each call, connect and read together.
    timeout: float
    #: The service's own projected token (in-cluster only): followed across kubelet rotations.
    token_file: TokenFile | None = None
    #: Where connections really go when ``KUBERNETES_SERVICE_IP`` pins them (DNS bypass).
    bypass: Bypass | None = None
    resolver: PinnedResolver | None = None
    #: Logs the operator-facing failures of calls through this connection
    #: (apiserver/troubleshoot.py);
    #: the session's middlewares report to it, other callers may too.
    troubleshooter: troubleshoot.Troubleshooter = field(
        default_factory=troubleshoot.Troubleshooter
    )

    async def close(self) -> None:
        await self.client.close()
        if self.resolver is not None:
            # A resolver handed to the connector is not closed by it (aiohttp connector.py).
            await self.resolver.close()

    def request_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.timeout, connect=self.timeout)

    def own_token(self) -> str | None:
        """The service's own service-account token (in-cluster), for diagnostics."""
        return self.token_file.token if self.token_file is not None else None


async def connect(
    settings: AuthSettings,
    environ: Mapping[str, str],
    *,
    stat: Stat = os.stat,
) -> ApiServer:
    """Build the client; raise ``KubeConfigError`` with a sentence an operator can act on.

    ``stat`` is what the token file is watched with (tests play a filesystem that hides changes).
    """
    configuration = Configuration()
    token_file: TokenFile | None = None
    if settings.in_cluster:
        source: Literal["in-cluster", "kubeconfig"] = "in-cluster"
        # Our own checks first: each missing file gets its troubleshooting line with the fix.
        token_file = _open_token_file(settings, stat)
        _check_ca_file(settings.serviceaccount_dir / "ca.crt", settings)
        namespace = _load_in_cluster(settings, environ, configuration)
        _follow_token_file(token_file, configuration)
    else:
        source = "kubeconfig"
        namespace = await _load_kubeconfig(settings, configuration)
        _check_ca_file(configuration.ssl_ca_cert, settings)
    if not configuration.verify_ssl:
        raise KubeConfigError(
            f"the kubeconfig {settings.kubeconfig} sets insecure-skip-tls-verify; compass-auth "
            "only talks to an API server whose certificate it can verify"
        )
    bypass = plan_bypass(str(configuration.host), settings.service_ip, settings.api_server_name)
    if bypass is not None:
        configuration.host = bypass.url
        fields = {"api_server_name": bypass.name, "address": bypass.address}
        logger.info(render("DNS bypass: API server connections go to KUBERNETES_SERVICE_IP; "
                           "TLS verifies the host name", fields), extra=fields)
    troubleshooter = troubleshoot.Troubleshooter()
    session_middlewares = _middlewares(configuration, bypass, token_file, troubleshooter)
    client = ApiClient(configuration=configuration)
    resolver = await _install_session(
        client,
        configuration,
        settings.tokenreview_max_in_flight + SPARE_CONNECTIONS,
        bypass,
        session_middlewares,
    )
    fields = {"host": str(configuration.host), "source": source, "namespace": namespace or ""}
    logger.info(render("API server configured", fields), extra=fields)
    return ApiServer(
        client=client,
        host=str(configuration.host),
        source=source,
        namespace=namespace,
        timeout=settings.api_timeout,
        token_file=token_file,
        bypass=bypass,
        resolver=resolver,
        troubleshooter=troubleshooter,
    )


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read a response body of at most ``limit`` bytes, then release the connection."""
    try:
        if response.content_length is not None and response.content_length > limit:
            raise ResponseTooLarge(f"response of {response.content_length} bytes exceeds {limit}")
        chunks: list[bytes] = []
        size = 0
        while chunk := await response.content.read(min(65536, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(f"response exceeds {limit} bytes")
        return b"".join(chunks)
    finally:
        response.release()


def _load_in_cluster(
    settings: AuthSettings, environ: Mapping[str, str], configuration: Configuration
) -> str | None:
    directory = settings.serviceaccount_dir
    loader = InClusterConfigLoader(
        token_filename=str(directory / "token"),
        cert_filename=str(directory / "ca.crt"),
        environ=dict(environ),
    )
    try:
        loader.load_and_set(configuration)
    except (ConfigException, OSError) as error:
        raise KubeConfigError(
            f"in-cluster configuration failed: {error} (AUTH_SERVICEACCOUNT_DIR={directory}; "
            "is automountServiceAccountToken off or the projected volume missing?)"
        ) from None
    return _read_namespace(directory / "namespace")


def _open_token_file(settings: AuthSettings, stat: Stat) -> TokenFile:
    path = settings.serviceaccount_dir / "token"
    try:
        return TokenFile(path, stat=stat)
    except TokenFileError as error:
        troubleshoot.log(troubleshoot.diagnose_token_file(path, str(error)))
        raise KubeConfigError(
            f"in-cluster configuration failed: {error} (AUTH_SERVICEACCOUNT_DIR="
            f"{settings.serviceaccount_dir}; is automountServiceAccountToken off or the "
            "projected volume missing?)"
        ) from None


def _check_ca_file(path: Path | str | None, settings: AuthSettings) -> None:
    diagnosis = troubleshoot.diagnose_ca_file(path, in_cluster=settings.in_cluster)
    if diagnosis is None:
        return
    troubleshoot.log(diagnosis)
    where = (
        f"AUTH_SERVICEACCOUNT_DIR={settings.serviceaccount_dir}"
        if settings.in_cluster
        else f"kubeconfig {settings.kubeconfig}"
    )
    raise KubeConfigError(
        f"{troubleshoot.MSG_CA_FILE}: {path}: {diagnosis.fields['error']} ({where})"
    )


def _follow_token_file(token_file: TokenFile, configuration: Configuration) -> None:
    """Replace the loader's once-a-minute token hook with ours (see ``apiserver/tokenfile.py``)."""

    def refresh(current: Configuration) -> None:
        # Runs before every request (Configuration.get_api_key_with_prefix). The prefix lives
        # in the value, as InClusterConfigLoader stores it.
        token_file.refresh()
        current.api_key["BearerToken"] = f"Bearer {token_file.token}"

    refresh(configuration)
    configuration.refresh_api_key_hook = refresh


async def _load_kubeconfig(settings: AuthSettings, configuration: Configuration) -> str | None:
    path = settings.kubeconfig
    if not path.is_file():
        raise KubeConfigError(
            f"no kubeconfig at {path} and KUBERNETES_SERVICE_HOST is not set: run inside a "
            "cluster, set KUBECONFIG, or use `python -m service demo` for the built-in emulator"
        )
    try:
        loader = await load_kube_config(
            config_file=str(path),
            context=settings.kube_context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError, KeyError) as error:
        raise KubeConfigError(f"kubeconfig {path} could not be loaded: {error}") from None
    context: Any = getattr(loader, "current_context", None)
    try:
        namespace = context["context"]["namespace"] if context else None
    except (KeyError, TypeError):
        namespace = None
    return namespace if isinstance(namespace, str) else None


def _read_namespace(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _middlewares(
    configuration: Configuration,
    bypass: Bypass | None,
    token_file: TokenFile | None,
    troubleshooter: troubleshoot.Troubleshooter,
) -> tuple[aiohttp.ClientMiddlewareType, ...]:
    """Outermost first: no redirects, then diagnosis of what reaches us, then the 401 retry."""
    # The name TLS verifies: the bypass's, else the URL's host (a name or an address).
    host = bypass.name if bypass is not None else urlsplit(str(configuration.host)).hostname
    diagnosis = middlewares.diagnose(
        troubleshooter,
        host=host or str(configuration.host),
        bypass_address=bypass.address if bypass is not None else None,
        ca_file=configuration.ssl_ca_cert,
        token_file=token_file,
    )
    if token_file is None:
        return (_refuse_redirects, diagnosis)
    return (_refuse_redirects, diagnosis, middlewares.retry_on_401(token_file))


async def _install_session(
    client: ApiClient,
    configuration: Configuration,
    max_connections: int,
    bypass: Bypass | None,
    session_middlewares: tuple[aiohttp.ClientMiddlewareType, ...],
) -> PinnedResolver | None:
    """Replace kubernetes-asyncio's ``ClientSession`` with a bounded one that refuses redirects.

    ``rest_client.pool_manager`` is private API (pinned in setup.py and covered by the emulator
    tests). The SSL context is rebuilt from the same configuration fields the library uses
    (rest.py), so certificate verification is unchanged. Its ``TCPConnector`` is also the only
    place a resolver can be given, which the DNS bypass needs.
    """
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if configuration.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    rest = client.rest_client
    previous = rest.pool_manager
    # None: the connector creates (and closes) aiohttp's default resolver itself.
    resolver: PinnedResolver | None = None
    if bypass is not None:
        resolver = PinnedResolver({bypass.name: bypass.address}, fallback=aiohttp.DefaultResolver())
    rest.pool_manager = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, ssl=context, resolver=resolver),
        # Honour HTTPS_PROXY/NO_PROXY like the library's own session does.
        trust_env=True,
        middlewares=session_middlewares,
    )
    await previous.close()
    return resolver


async def _refuse_redirects(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    # aiohttp runs client middlewares once per hop, before its redirect logic: raising here
    # stops the redirect before a second request (with our credentials) is ever sent.
    response = await handler(request)
    if 300 <= response.status < 400:
        location = response.headers.get("Location", "")[:200]
        response.release()
        raise RedirectRefused(f"API server redirected {request.url.path} to {location!r}")
    return response
