"""OIDC discovery and JWKS of one issuer of the AuthenticationConfiguration file (issue 22).

Unlike ``apiserver/discovery.py`` (the cluster's own issuer, through the API-server connection
and its credentials), a ``jwt`` authenticator's documents are fetched as kube-apiserver's JWT
authenticator fetches them (``staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/
oidc.go``): without credentials, from ``issuer.discoveryURL`` or else
``issuer.url + /.well-known/openid-configuration``, over TLS trusted by
``issuer.certificateAuthority`` when given (else the system's roots). The discovery document
must declare ``issuer.url`` as its issuer (go-oidc's rule, ``oidc.go``: a document served for
one issuer cannot speak for another), and its ``jwks_uri`` must be https. Nothing here is taken
from a token: the URLs come from the file, the keys from the issuer.
"""

from __future__ import annotations

import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..apiserver.backoff import retry_after_header
from ..apiserver.connection import ResponseTooLarge, read_capped
from ..apiserver.discovery import MAX_DISCOVERY_BYTES, MAX_JWKS_BYTES, FetchError
from ..core.keyset import InvalidKeySet, KeySet

#: Where the discovery document is when the entry names no ``discoveryURL`` (upstream:
#: ``strings.TrimSuffix(url, "/") + "/.well-known/openid-configuration"``).
WELL_KNOWN = "/.well-known/openid-configuration"
#: Seconds for one document (connect, TLS, body): an issuer that hangs costs its own tokens a
#: 503, never a request of another issuer.
FETCH_TIMEOUT = 10.0


def discovery_url_of(url: str, discovery_url: str) -> str:
    return discovery_url or url.rstrip("/") + WELL_KNOWN


class OidcKeyFetcher:
    """``fetch(force) -> KeySet`` for one issuer (a ``keys.cache.FetchKeys``)."""

    def __init__(self, issuer: str, discovery_url: str = "", certificate_authority: str = "",
                 *, timeout: float = FETCH_TIMEOUT) -> None:
        self.issuer = issuer
        self.discovery_url = discovery_url_of(issuer, discovery_url)
        self._ca = certificate_authority
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context = (ssl.create_default_context(cadata=self._ca) if self._ca
                       else ssl.create_default_context())
            # One connection per issuer is plenty: a fetch every few minutes. Proxies from the
            # environment are not used: the file names where the issuer is.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=2), timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, force: bool = False) -> KeySet:
        headers = {"Cache-Control": "no-cache"} if force else {}
        document = await self._get_json(self.discovery_url, "discovery document",
                                        MAX_DISCOVERY_BYTES, headers)
        if not isinstance(document, dict):
            raise FetchError("discovery document is not a JSON object", transient=False)
        declared, jwks_uri = document.get("issuer"), document.get("jwks_uri")
        if declared != self.issuer:
            raise FetchError(f"discovery document declares issuer {str(declared)[:200]!r}, "
                             f"not {self.issuer!r}", transient=False)
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme != "https":
            raise FetchError("discovery document has no https jwks_uri", transient=False)
        jwks = await self._get_json(jwks_uri, "JWKS", MAX_JWKS_BYTES, headers)
        try:
            return KeySet.from_jwks(jwks, issuer=self.issuer)
        except InvalidKeySet as error:
            raise FetchError(f"JWKS is unusable: {error}", transient=False) from None

    async def _get_json(self, url: str, what: str, limit: int, headers: dict[str, str]) -> Any:
        try:
            async with self._client().get(url, headers=headers, allow_redirects=False) as answer:
                status = answer.status
                retry_after = retry_after_header(answer.headers, time.time())
                body = await read_capped(answer, limit)
        except (TimeoutError, aiohttp.ClientConnectionError) as error:
            raise FetchError(f"{what} of {self.issuer}: {type(error).__name__}: {error}",
                             transient=True) from None
        except (aiohttp.ClientError, ResponseTooLarge, ssl.SSLError) as error:
            raise FetchError(f"{what} of {self.issuer}: {type(error).__name__}: {error}",
                             transient=False) from None
        if status != 200:
            raise FetchError(f"{what} of {self.issuer}: answered {status}",
                             transient=status == 429 or status >= 500, status=status,
                             retry_after=retry_after)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(f"{what} of {self.issuer}: answer is not JSON",
                             transient=False) from None
