"""OIDC discovery and JWKS, fetched through the API server connection.

Both documents come from the API server the service is configured for, over TLS verified against
the cluster CA and with the service's own credentials (kube-apiserver only serves them to
authenticated service accounts, docs/kubernetes-api.md#access-to-the-discovery-endpoints).

The JWKS is always fetched from ``/openid/v1/jwks`` on that same connection, even when the
discovery document's ``jwks_uri`` names another host: kube-apiserver builds ``jwks_uri`` from its
*external* address (or ``--service-account-jwks-uri``), which pods often cannot reach, while it
always serves the same key set itself.

The issuer that tokens must carry is the one the discovery document declares (it arrived over
verified TLS), not the URL we dialled: ``https://10.96.0.1:443`` serves tokens issued by
``https://kubernetes.default.svc.cluster.local``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict
from urllib.parse import urlsplit

import aiohttp
from kubernetes_asyncio.client import OpenidApi, WellKnownApi
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ..core.keyset import InvalidKeySet, KeySet
from ..logs.text import clip, render
from ..telemetry import (
    AUTH_ATTEMPT,
    AUTH_FORCE,
    ERROR_TYPE,
    HTTP_STATUS,
    SPAN_DISCOVERY,
    SPAN_KEYS_FETCH,
    Telemetry,
    http_attributes,
    trace_event,
)
from .backoff import retry_after_header, wait_retry_after
from .connection import ApiServer, read_capped

logger = logging.getLogger(__name__)

#: A discovery document is ~300 bytes; anything near this cap is not one.
MAX_DISCOVERY_BYTES = 64 * 1024
#: ``keyset.MAX_KEYS`` keys of a few hundred bytes each fit comfortably.
MAX_JWKS_BYTES = 512 * 1024
#: Start-up attempts: the first plus 3 retries, 1 s, 2 s and 4 s apart.
STARTUP_ATTEMPTS = 4
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
_WHAT = {DISCOVERY_PATH: "discovery document", JWKS_PATH: "JWKS"}


class DiscoveryDocument(TypedDict):
    """The fields of ``/.well-known/openid-configuration`` that we use."""

    issuer: str
    jwks_uri: str


class FetchError(Exception):
    """Discovery or the JWKS could not be fetched or parsed.

    ``transient`` errors (timeouts, refused connections, 429, 5xx) are worth retrying; the others
    (401/403 RBAC, 404, invalid documents) need an operator. ``retry_after`` is the server's
    ``Retry-After`` in seconds (capped), when it sent one: no retry comes sooner.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


def is_transient(error: BaseException) -> bool:
    """The retry predicate for discovery and JWKS fetches."""
    return isinstance(error, FetchError) and error.transient


class DiscoveryClient:
    """Fetches the discovery document and the JWKS and builds a ``KeySet``."""

    def __init__(
        self,
        api: ApiServer,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._api = api
        self._sleep = sleep
        self._telemetry = telemetry or Telemetry()
        self._well_known = WellKnownApi(api.client)
        self._openid = OpenidApi(api.client)

    async def fetch(self, force: bool = False) -> KeySet:
        """One attempt: discovery document, then JWKS. ``force`` bypasses HTTP caches."""
        with self._telemetry.internal_span(SPAN_KEYS_FETCH, {AUTH_FORCE: force}):
            try:
                keys = await self._fetch(force)
            except FetchError:
                self._telemetry.key_fetch("error")
                raise
            self._telemetry.key_fetch("ok")
            return keys

    async def _fetch(self, force: bool) -> KeySet:
        headers = {"Cache-Control": "no-cache"} if force else {}
        document = _parse_discovery(
            await self._get(self._well_known.get_service_account_issuer_open_id_configuration,
                            DISCOVERY_PATH, MAX_DISCOVERY_BYTES, headers)
        )
        _note_external_jwks_uri(document["jwks_uri"], self._api.host)
        jwks = await self._get(self._openid.get_service_account_issuer_open_id_keyset,
                               JWKS_PATH, MAX_JWKS_BYTES, headers)
        try:
            return KeySet.from_jwks(jwks, issuer=document["issuer"])
        except InvalidKeySet as error:
            raise FetchError(f"JWKS is unusable: {error}", transient=False) from None

    async def fetch_with_retries(
        self, on_failure: Callable[[BaseException], None] | None = None
    ) -> KeySet:
        """``fetch`` with the start-up retry policy: 3 retries, 1 s, 2 s and 4 s apart, or longer
        when the server asked for it with ``Retry-After`` (429/503, capped at 30 s).

        ``on_failure(error)`` is called for each failed attempt that will be retried, so that
        readiness can say why while the retries go on.
        """

        def before_sleep(state: RetryCallState) -> None:
            _log_retry(state)
            error = state.outcome.exception() if state.outcome else None
            if on_failure is not None and error is not None:
                on_failure(error)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(STARTUP_ATTEMPTS),
            wait=wait_retry_after(wait_exponential(multiplier=1, max=4)),
            retry=retry_if_exception(is_transient),
            reraise=True,
            sleep=self._sleep,
            before_sleep=before_sleep,
        )
        # One parent span; each attempt is a child auth.keys.fetch span, each wait an event.
        with self._telemetry.internal_span(SPAN_DISCOVERY, {}):
            async for attempt in retrying:
                with attempt:
                    return await self.fetch()
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _get(
        self,
        call: Callable[..., Awaitable[Any]],
        path: str,
        limit: int,
        headers: dict[str, str],
    ) -> Any:
        what = _WHAT[path]
        attributes = http_attributes("GET", self._api.host + path)
        with self._telemetry.client_span(f"GET {path}", attributes) as span:
            try:
                response: aiohttp.ClientResponse = await call(
                    # The generated deserializer turns these JSON bodies into str(dict) (a
                    # Python repr); the raw response avoids that and lets us cap the size.
                    _preload_content=False,
                    _request_timeout=self._api.request_timeout(),
                    _headers=headers,
                )
                status = response.status
                span.set_attribute(HTTP_STATUS, status)
                retry_after = retry_after_header(response.headers, time.time())
                body = await read_capped(response, limit)
            except (TimeoutError, aiohttp.ClientConnectionError) as error:
                raise FetchError(f"{what}: {_describe(error)}", transient=True) from None
            except aiohttp.ClientError as error:
                raise FetchError(f"{what}: {_describe(error)}", transient=False) from None
            if status != 200:
                span.set_attribute(ERROR_TYPE, str(status))
                raise FetchError(
                    f"{what}: API server answered {status}{_status_hint(status)}",
                    transient=status == 429 or status >= 500,
                    status=status,
                    retry_after=retry_after,
                )
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(f"{what}: answer is not JSON", transient=False) from None


def _parse_discovery(document: Any) -> DiscoveryDocument:
    if not isinstance(document, dict):
        raise FetchError("discovery document is not a JSON object", transient=False)
    issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
    if not isinstance(issuer, str) or not issuer:
        raise FetchError("discovery document has no issuer", transient=False)
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise FetchError("discovery document has no jwks_uri", transient=False)
    return DiscoveryDocument(issuer=issuer, jwks_uri=jwks_uri)


def _note_external_jwks_uri(jwks_uri: str, api_host: str) -> None:
    if urlsplit(jwks_uri).netloc != urlsplit(api_host).netloc:
        fields = {"jwks_uri": clip(jwks_uri), "api_server": api_host}
        logger.debug(render("jwks_uri names another host; fetching the JWKS through the API "
                            "server", fields), extra=fields)


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return (" (the service account needs the system:service-account-issuer-discovery "
                "ClusterRole, bound to system:serviceaccounts by default)")
    if status == 404:
        return " (ServiceAccountIssuerDiscovery is off or the API server is older than 1.21)"
    return ""


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    # The retry shows in the trace as an event on the auth.discovery span.
    trace_event("retry", {AUTH_ATTEMPT: state.attempt_number, "auth.retry_in_s": wait,
                          ERROR_TYPE: type(error).__name__})
    fields = {"attempt": state.attempt_number, "retry_in": f"{wait:g}s",
              "error": clip(error, 300)}
    logger.warning(render("discovery attempt failed; retrying", fields), extra=fields)
