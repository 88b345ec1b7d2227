"""Orchestration: from an ``Authorization`` header to an ``Identity``, with logging.

The ``Authenticator`` owns the API-server connection and the key cache, runs the start-up
discovery (with retries) and the background refresh, and decides which way a token is verified.
It is framework-neutral: ``handler.AuthenticatedHandler`` is a thin Tornado adapter over it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .bearer import extract_bearer, fingerprint
from .claims import check_subject_allowed
from .discovery import DiscoveryClient
from .errors import AuthError, KeysUnavailable, UnknownKey
from .identity import Identity
from .keys import KeyCache
from .kube import ApiServer, connect
from .settings import AuthSettings
from .troubleshoot import IssuerCrossCheck
from .verifier import VerificationPolicy, verify_local

logger = logging.getLogger(__name__)

#: Log messages operators grep for; keep them stable.
MSG_REJECTED = "token verification failed"
MSG_ACCEPTED = "token verified"
MSG_FATAL = "fatal: failed to create OIDC provider after retries"


class Authenticator:
    """Verifies bearer tokens for one service (one audience)."""

    def __init__(
        self,
        settings: AuthSettings,
        api: ApiServer,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._api = api
        self._clock = clock
        self._discovery = DiscoveryClient(api)
        self._keys = KeyCache(
            self._discovery.fetch,
            refresh_interval=settings.jwks_refresh_interval,
            min_refresh_interval=settings.jwks_min_refresh_interval,
            max_stale=settings.jwks_max_stale,
            retry_interval=settings.rediscovery_interval,
        )
        self.policy = VerificationPolicy.from_settings(settings)
        # In-cluster quirks: warn when discovery's issuer, AUTH_ISSUER and our own token's iss
        # disagree (at start-up, and whenever the discovered issuer changes).
        self._keys.add_listener(IssuerCrossCheck(
            settings.issuers, api.own_token, skip=settings.insecure_skip_issuer_check
        ).on_keys)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._startup_done = asyncio.Event()

    @classmethod
    async def connect(cls, settings: AuthSettings, environ: Mapping[str, str]) -> Authenticator:
        """Configure the API-server client (fails fast on bad configuration); call ``start()``."""
        return cls(settings, await connect(settings, environ))

    @property
    def keys(self) -> KeyCache:
        return self._keys

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin discovery in the background; requests get 503 until keys are loaded."""
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._run(), name="compass-auth-keys"))

    async def wait_started(self) -> None:
        """Wait until the start-up discovery finished (successfully or not)."""
        await self._startup_done.wait()

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._api.close()

    async def _run(self) -> None:
        try:
            keys = await self._discovery.fetch_with_retries()
        except Exception as error:  # noqa: BLE001 - every failure is reported the same way
            self._keys.note_failure(error)
            logger.error(MSG_FATAL, extra={"error": str(error), "api_server": self._api.host})
        else:
            # Seed the cache with what start-up fetched, without a second request.
            self._keys.seed(keys)
        finally:
            self._startup_done.set()
        await self._keys.run(self._stop)

    # --- verification ---------------------------------------------------------------------

    async def authenticate_request(
        self,
        authorization: list[str],
        allowed_subjects: Collection[str] | None = None,
    ) -> Identity:
        """Authenticate the ``Authorization`` header values of one request.

        Raises an ``AuthError`` subclass (already logged) when the caller is not let in.
        """
        token = ""
        try:
            token = extract_bearer(authorization, self.settings.max_token_bytes)
            identity = await self._verify(token)
            check_subject_allowed(
                identity.subject, self.settings.allowed_subjects, allowed_subjects
            )
        except AuthError as error:
            self._log_rejection(error, token)
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(MSG_ACCEPTED, extra=_identity_fields(identity))
        return identity

    async def _verify(self, token: str) -> Identity:
        keys = self._keys.snapshot()
        if keys is None:
            raise KeysUnavailable(
                f"no key set loaded ({self._keys.last_error or 'discovery still running'})"
            )
        now = self._clock()
        try:
            return verify_local(token, keys, self.policy, now)
        except UnknownKey as error:
            # The key may be new: refetch (rate-limited, shared) and try once more.
            keys = await self._keys.refresh_for_kid(error.kid)
            return verify_local(token, keys, self.policy, now)

    # --- status ---------------------------------------------------------------------------

    def readiness(self) -> dict[str, Any]:
        """What ``/readyz`` reports: whether a verification path is available, and which."""
        keys = self._keys.snapshot()
        age = self._keys.age()
        return {
            "ready": keys is not None,
            "path": "jwks" if keys is not None else "none",
            "issuer": keys.issuer if keys is not None else None,
            "keys": sorted(keys.keys) if keys is not None else [],
            "keys_age_seconds": None if age is None else round(age, 1),
            "last_error": self._keys.last_error,
        }

    def retry_after(self) -> int:
        """Seconds a client should wait after a 503 (until our next attempt, 1..60)."""
        return max(1, min(60, round(self._keys.seconds_until_retry())))

    def _log_rejection(self, error: AuthError, token: str) -> None:
        fields: dict[str, Any] = {
            "reason": error.reason,
            "status": error.status,
            "error": error.detail,
        }
        if token:
            fields["token_fp"] = fingerprint(token)
        if error.outcome == "unavailable":
            logger.error(MSG_REJECTED, extra=fields)
        else:
            logger.warning(MSG_REJECTED, extra=fields)


def _identity_fields(identity: Identity) -> dict[str, Any]:
    return {
        "subject": identity.subject,
        "verified_by": identity.verified_by,
        "pod": identity.pod_name or "",
    }
