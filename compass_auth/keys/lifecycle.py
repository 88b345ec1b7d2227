"""The key set's life: loaded at start-up (discovery, with retries), then kept fresh.

Start-up discovery retries on the 1/2/4 s schedule (``discovery.DiscoveryClient``); each failed
attempt is noted at once, so ``/readyz`` shows why during the retries. After that the key cache's
own loop refreshes forever, and while discovery fails retries every ``AUTH_REDISCOVERY_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..apiserver.discovery import DiscoveryClient
from ..logs.text import LogText, clip, render
from .cache import KeyCache
from .unknown import UnknownNames

logger = logging.getLogger(__name__)

#: Log message operators grep for; keep it stable. Until 2026-12 it began with "fatal: ",
#: although the service goes on with TokenReview (docs/troubleshooting.md).
MSG_DISCOVERY_FAILED = "failed to create OIDC provider after retries"


class KeyLifecycle:
    """Runs start-up discovery, then the key cache's refresh loop, until stopped."""

    def __init__(self, keys: KeyCache, discovery: DiscoveryClient, *, api_host: str,
                 unknown: UnknownNames | None = None) -> None:
        self.keys = keys
        self.discovery = discovery
        #: Its fetch at the end of a cool-down stops with the refresh loop.
        self._unknown = unknown
        self._api_host = api_host
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event, on_startup_failure: Callable[[str], None]) -> None:
        """Until ``stop``; ``on_startup_failure(why)`` when start-up discovery gives up."""
        try:
            keys = await self.discovery.fetch_with_retries(on_failure=self.keys.note_failure)
        except Exception as error:  # noqa: BLE001 - every failure is reported the same way
            self.keys.note_failure(error)
            fields = {"api_server": self._api_host, "error": clip(error, 300)}
            # Not fatal: the service goes on. The lines before this one name the cause and fix.
            text = (f"{render(MSG_DISCOVERY_FAILED, fields)}; TokenReview verifies tokens "
                    "meanwhile and discovery is retried every AUTH_REDISCOVERY_INTERVAL")
            logger.error(LogText(text, MSG_DISCOVERY_FAILED), extra=fields)
            on_startup_failure(str(error))
        else:
            # Seed the cache with what start-up fetched, without a second request.
            self.keys.seed(keys)
        finally:
            self.started.set()
        try:
            await self.keys.run(stop)
        finally:
            if self._unknown is not None:
                self._unknown.stop()
