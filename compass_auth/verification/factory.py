"""Wiring: ``connect()`` builds an ``Authenticator`` and its ``Authorizer`` from ``AuthSettings``.

The one place that knows which part needs which: the API-server connection, discovery, the key
cache and the memory of unknown kids, the two verification paths, the TokenReview client, the
authorizer and its SubjectAccessReview client, the listeners on key changes (the verified-token
cache, the issuer cross-check, recovery from fallback) and the telemetry gauges.

``compass_auth.connect`` is ``connect`` below; ``Authenticator.connect`` forwards to it (this module
installs it there: the authenticator does not import its factory).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from ..apiserver.connection import ApiServer, KubeConfigError
from ..apiserver.connection import connect as connect_api
from ..apiserver.discovery import DiscoveryClient
from ..apiserver.subjectaccess import AccessReviewer
from ..apiserver.tokenreview import TokenReviewer
from ..authn_config import AuthenticationConfig, load_authentication_config
from ..authorization.authorizer import Authorizer
from ..core.access import uses_service_namespace
from ..core.cache import TokenHasher
from ..core.identity import Identity
from ..core.keyset import KeySet
from ..core.verifier import VerificationPolicy
from ..keys.cache import KeyCache
from ..keys.issuer_check import IssuerCrossCheck
from ..keys.lifecycle import KeyLifecycle
from ..keys.unknown import UnknownNames
from ..logs.text import render
from ..settings import AuthSettings
from ..telemetry import Telemetry
from . import authenticator as authenticator_module
from .authenticator import Authenticator
from .issuers import JwtAuthenticators, KeyTimings
from .local import LocalPath
from .review import ReviewPath
from .revocation import RevocationCheck

logger = logging.getLogger(__name__)


async def connect(
    settings: AuthSettings,
    environ: Mapping[str, str],
    telemetry: Telemetry | None = None,
) -> Authenticator:
    """Configure the API-server client (fails fast on bad configuration) and build the
    authenticator (with its authorizer: ``authenticator.authorizer``); the caller starts it
    with ``start()``. A bad ``AUTH_AUTHENTICATION_CONFIG`` file raises its
    ``AuthenticationConfigError`` (a ``SettingsError``) before any connection is made."""
    config = load_config(settings)
    api = await connect_api(settings, environ)
    if uses_service_namespace(settings.required_access) and not api.namespace:
        await api.close()
        raise KubeConfigError(
            "AUTH_REQUIRED_ACCESS uses {service_namespace}, but the service's namespace is "
            "unknown: no namespace file in AUTH_SERVICEACCOUNT_DIR, or no namespace in the "
            "kubeconfig context")
    return build(settings, api, telemetry=telemetry, authentication_config=config)


def load_config(settings: AuthSettings) -> AuthenticationConfig | None:
    """The ``AUTH_AUTHENTICATION_CONFIG`` file, validated, or ``None`` without one.

    The cluster's own issuer is known for sure only after discovery, which runs in the
    background after start-up; so at start-up the issuers of ``AUTH_ISSUER`` are the disallowed
    ones (kube-apiserver refuses an entry naming its ``--service-account-issuer``), and the
    issuer discovery reports is added when it arrives (``_guard_cluster_issuer``). Either way
    a token whose ``iss`` is the cluster's goes to the service-account path first."""
    if not settings.authentication_config:
        return None
    return load_authentication_config(settings.authentication_config,
                                      disallowed_issuers=settings.issuers)


def build(
    settings: AuthSettings,
    api: ApiServer,
    *,
    telemetry: Telemetry | None = None,
    clock: Callable[[], float] = time.time,
    authentication_config: AuthenticationConfig | None = None,
) -> Authenticator:
    """An ``Authenticator`` for ``settings`` over an API-server connection."""
    telemetry = telemetry or Telemetry()
    policy = verification_policy(settings)
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
    unknown = UnknownNames(keys)
    local = LocalPath(keys, policy, unknown=unknown,
                      cache_size=settings.cache_size if settings.mode == "auto" else 0,
                      cache_ttl=settings.cache_ttl, clock=clock)
    review = ReviewPath(reviewer, policy, keys=keys if settings.mode == "review" else None,
                        clock=clock)
    lifecycle = KeyLifecycle(keys, discovery, api_host=api.host, unknown=unknown)
    access_reviewer = AccessReviewer(
        api,
        allowed_ttl=settings.authz_allowed_ttl,
        denied_ttl=settings.authz_denied_ttl,
        capacity=settings.authz_cache_size,
        max_in_flight=settings.authz_max_in_flight,
        telemetry=telemetry,
    )
    authorizer = Authorizer(access_reviewer, telemetry, service_namespace=api.namespace)
    revocation = revocation_check(settings, reviewer, local, authorizer, telemetry)
    authenticator = Authenticator(settings, api, local=local, review=review, lifecycle=lifecycle,
                                  telemetry=telemetry, hasher=hasher, authorizer=authorizer,
                                  revocation=revocation)
    authenticator.on_close(authorizer.report_suppressed)
    keys.add_listener(lambda previous, current: authenticator.on_keys_loaded(current.issuer))
    # In-cluster quirks: warn when discovery's issuer, AUTH_ISSUER and our own token's iss
    # disagree (at start-up, and whenever the discovered issuer changes).
    keys.add_listener(IssuerCrossCheck(
        settings.issuers, api.own_token, skip=settings.insecure_skip_issuer_check).on_keys)
    if authentication_config is not None:
        authenticator.issuers = build_issuers(settings, authentication_config)
        keys.add_listener(_guard_cluster_issuer(authenticator.issuers))
        issuers = authenticator.issuers
        telemetry.observe_cache("verified_other_issuers", issuers.cache_size)
        telemetry.observe_reloads(lambda: dict(issuers.reloads))
    telemetry.observe_cache("tokenreview", reviewer.cache_size)
    telemetry.observe_cache("verified", local.cache_size)
    telemetry.observe_cache("authorization", access_reviewer.cache_size)
    telemetry.observe_path(authenticator.current_path)
    return authenticator


def build_issuers(settings: AuthSettings, config: AuthenticationConfig) -> JwtAuthenticators:
    """The ``jwt`` authenticators, with the cluster's key timings and verified-token cache
    limits (one rule for every issuer)."""
    timings = KeyTimings(refresh_interval=settings.jwks_refresh_interval,
                         min_refresh_interval=settings.jwks_min_refresh_interval,
                         max_stale=settings.jwks_max_stale,
                         retry_interval=settings.rediscovery_interval)
    return JwtAuthenticators(config, timings, cache_size=settings.cache_size,
                             cache_ttl=settings.cache_ttl, leeway=settings.clock_skew,
                             disallowed_issuers=settings.issuers)


def _guard_cluster_issuer(issuers: JwtAuthenticators) -> Callable[[KeySet | None, KeySet], None]:
    """A key-cache listener: the issuer discovery reports is disallowed in later versions of
    the file, and an entry of the file in force that names it is reported (its tokens go to
    the service-account path anyway)."""
    def on_keys(previous: KeySet | None, current: KeySet) -> None:
        issuers.disallowed.add(current.issuer)
        if current.issuer in issuers.states:
            fields = {"issuer": current.issuer, "path": issuers.path}
            logger.error(render("a jwt authenticator names the cluster's own service-account "
                                "issuer; its tokens are verified as the cluster's", fields),
                         extra=fields)
    return on_keys


def revocation_check(settings: AuthSettings, reviewer: TokenReviewer, local: LocalPath,
                     authorizer: Authorizer, telemetry: Telemetry) -> RevocationCheck | None:
    """Background confirmation of locally verified tokens (``AUTH_REVOCATION_CHECK``); none in
    review mode, where every first sight is reviewed before it is answered."""
    if not settings.revocation_check or settings.mode != "auto":
        return None

    def forget(key: bytes, identity: Identity) -> None:
        local.forget(key)
        authorizer.forget(identity)

    window = settings.revocation_window or settings.tokenreview_cache_ttl
    return RevocationCheck(
        reviewer, forget=forget, window=max(1.0, window), capacity=settings.cache_size,
        max_in_flight=confirmations_in_flight(settings.tokenreview_max_in_flight),
        telemetry=telemetry)


def confirmations_in_flight(request_cap: int) -> int:
    """Confirmations outstanding at most: a quarter of the request path's TokenReview cap (2 by
    default), at least one. Their budget is their own (``ReviewClient.review``'s ``budget``), so
    requests keep the whole AUTH_TOKENREVIEW_MAX_IN_FLIGHT; the API server sees at most the sum."""
    return max(1, request_cap // 4)


def verification_policy(settings: AuthSettings) -> VerificationPolicy:
    """The policy that ``settings`` describe (one place, so new options cannot be missed)."""
    return VerificationPolicy(
        audience=settings.audience,
        issuers=settings.issuers,
        clock_skew=settings.clock_skew,
        max_token_bytes=settings.max_token_bytes,
        insecure_skip_issuer_check=settings.insecure_skip_issuer_check,
        require_pod_bound=settings.require_pod_bound,
        max_token_lifetime=settings.max_token_lifetime,
        stale_tokens=settings.stale_tokens,
    )


# ``Authenticator.connect`` forwards here (see authenticator._connect).
authenticator_module._connect = connect
