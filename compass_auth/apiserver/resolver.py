"""DNS bypass: send API-server connections to a fixed address, keep TLS on the host name.

Some clusters' pods cannot resolve ``kubernetes.default.svc``. The system this is modelled on
then connects to ``KUBERNETES_SERVICE_IP`` by rewriting the URL to the address, which loses the
name that TLS and the issuer check need, so it skips the issuer check. Here the URL keeps a host
name and only the *resolution* of that name is pinned, by an aiohttp resolver in the connector
that kubernetes-asyncio's client uses (``kube._install_session``):

* the TCP connection goes to the pinned address;
* SNI and certificate verification use the host name of the URL, against the cluster CA, exactly
  as without the bypass (aiohttp passes ``server_hostname`` = the URL host), so a certificate
  that is not valid for the name is refused even when it is valid for the address;
* the issuer check is unaffected: the issuer is the one the discovery document declares, never
  derived from the URL (apiserver/discovery.py).

Which host name: the API server URL's own host when it is a name (a kubeconfig ``server`` or a
``KUBERNETES_SERVICE_HOST`` that names a host); when the URL holds an address (in a pod,
``KUBERNETES_SERVICE_HOST`` is the Service's ClusterIP), ``AUTH_API_SERVER_NAME``
(``kubernetes.default.svc``, a name that kube-apiserver's serving certificate carries,
docs/kubernetes-api.md#in-cluster-conventions). Without ``KUBERNETES_SERVICE_IP`` nothing changes:
in a pod the URL holds an address already, so no DNS lookup happens at all, and the certificate is
checked against it.

Not bypassed: a proxy from ``HTTPS_PROXY`` (the session trusts the environment) resolves the
name itself; list the name in ``NO_PROXY`` to use the bypass.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from aiohttp.abc import AbstractResolver, ResolveResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bypass:
    """Connections to ``name`` go to ``address``; TLS still verifies ``name``."""

    name: str
    address: str
    #: The API server URL to use: the original one, or the same with ``name`` as its host.
    url: str


def plan_bypass(api_url: str, service_ip: str | None, api_server_name: str) -> Bypass | None:
    """The bypass for ``api_url`` when ``service_ip`` (``KUBERNETES_SERVICE_IP``) is set."""
    if service_ip is None:
        return None
    parts = urlsplit(api_url)
    host = parts.hostname or ""
    if _is_address(host):
        port = f":{parts.port}" if parts.port is not None else ""
        url = urlunsplit(parts._replace(netloc=f"{api_server_name}{port}"))
        return Bypass(name=api_server_name, address=service_ip, url=url)
    return Bypass(name=host.rstrip(".").lower(), address=service_ip, url=api_url)


class PinnedResolver(AbstractResolver):
    """Answers pinned names with their address; asks ``fallback`` about every other name."""

    def __init__(self, pins: Mapping[str, str], fallback: AbstractResolver) -> None:
        self._pins = {name.rstrip(".").lower(): address for name, address in pins.items()}
        self._fallback = fallback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self._pins.get(host.rstrip(".").lower())
        if address is None:
            return await self._fallback.resolve(host, port, family)
        version = ipaddress.ip_address(address).version
        return [
            ResolveResult(
                # hostname is the name asked for: aiohttp verifies the certificate against the
                # request's host, never against the address.
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        await self._fallback.close()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
