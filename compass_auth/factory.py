"""Wiring: the parts of an ``Authenticator`` built from ``AuthSettings`` and connected.

The one place that knows which part needs which: the API-server connection, discovery and the
key cache, the two verification paths, the TokenReview client, the listeners on key changes
(the verified-token cache, the issuer cross-check, recovery from fallback) and the telemetry
gauges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .authenticator import Authenticator
from .cache import TokenHasher
from .discovery import DiscoveryClient
from .issuer_check import IssuerCrossCheck
from .key_lifecycle import KeyLifecycle
from .keys import KeyCache
from .kube import ApiServer
from .kube import connect as connect_api
from .local_path import LocalPath
from .review_path import ReviewPath
from .settings import AuthSettings
from .telemetry import Telemetry
from .tokenreview import TokenReviewer
from .verifier import VerificationPolicy


async def connect(
    settings: AuthSettings,
    environ: Mapping[str, str],
    telemetry: Telemetry | None = None,
) -> Authenticator:
    """Configure the API-server client (fails fast on bad configuration) and build the
    authenticator; the caller starts it with ``start()``."""
    return build(settings, await connect_api(settings, environ), telemetry=telemetry)


def build(
    settings: AuthSettings,
    api: ApiServer,
    *,
    telemetry: Telemetry | None = None,
    clock: Callable[[], float] = time.time,
) -> Authenticator:
    """An ``Authenticator`` for ``settings`` over an API-server connection."""
    telemetry = telemetry or Telemetry()
    policy = VerificationPolicy.from_settings(settings)
    discovery = DiscoveryClient(api, telemetry=telemetry)
    keys = KeyCache(
        discovery.fetch,
        refresh_interval=settings.jwks_refresh_interval,
        min_refresh_interval=settings.jwks_min_refresh_interval,
        max_stale=settings.jwks_max_stale,
        retry_interval=settings.rediscovery_interval,
    )
    hasher = TokenHasher()
    reviewer = TokenReviewer(
        api,
        settings.audience,
        max_in_flight=settings.tokenreview_max_in_flight,
        accepted_ttl=settings.tokenreview_cache_ttl,
        rejected_ttl=settings.tokenreview_negative_ttl,
        capacity=settings.tokenreview_cache_size,
        hasher=hasher,
        telemetry=telemetry,
    )
    # The verified-token cache is not used in review mode: there every first sight of a token
    # must reach the API server (its answers are cached by the reviewer instead).
    local = LocalPath(keys, policy, cache_size=settings.cache_size if settings.mode == "auto"
                      else 0, cache_ttl=settings.cache_ttl, clock=clock)
    review = ReviewPath(reviewer, policy, keys=keys if settings.mode == "review" else None,
                        clock=clock)
    lifecycle = KeyLifecycle(keys, discovery, api_host=api.host)
    authenticator = Authenticator(settings, api, local=local, review=review, lifecycle=lifecycle,
                                  telemetry=telemetry, hasher=hasher)
    keys.add_listener(lambda previous, current: authenticator.on_keys_loaded(current.issuer))
    # In-cluster quirks: warn when discovery's issuer, AUTH_ISSUER and our own token's iss
    # disagree (at start-up, and whenever the discovered issuer changes).
    keys.add_listener(IssuerCrossCheck(
        settings.issuers, api.own_token, skip=settings.insecure_skip_issuer_check).on_keys)
    telemetry.observe_cache("tokenreview", reviewer.cache_size)
    telemetry.observe_cache("verified", local.cache_size)
    telemetry.observe_path(authenticator.current_path)
    return authenticator
