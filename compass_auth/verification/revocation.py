"""Revocation at local speed: locally verified tokens confirmed by TokenReview in the background.

A signature check cannot tell that a token's pod or service account is gone; only the API server
can (upstream ``pkg/serviceaccount/claims.go``, ``validator.Validate``: the service account,
secret, pod or node is missing, has another UID, or was deleted more than 60 s ago). Asking it
before every first sight is ``AUTH_MODE=review``. Here the request never waits for it:

* **Off the request path.** The first sight of a token is answered by local verification and
  starts a confirmation (one TokenReview) in a task of its own; a cache hit costs a dict lookup
  and a clock compare (``use``), and starts a confirmation only when the token's window has
  passed. A token not used costs nothing: confirmations follow use, there is no timer per token.
* **Bounded.** At most one confirmation per token per window (the due time is set when it
  starts, whatever its answer); at most ``max_in_flight`` at once, in an in-flight budget of their
  own (``ReviewClient.review``'s ``budget``), so they never take a slot a request waits for; with
  no slot free nothing is queued: the next use of the token tries again. The due times and the
  refusals are bounded like the verified-token cache (``capacity``, its size).
* **Revocation.** When the API server refuses a token local verification accepted,
  ``forget(key, identity)`` drops it from the verified-token cache and the caller's authorization
  decisions (the factory wires it), the WebSockets opened with it are closed (``watch``), and
  the token is refused with ``TokenRevoked`` until its ``exp`` (``refused``). An open WebSocket
  is a use of its token: a sweep every half window confirms the watched tokens that are due.
* **Outages never deny.** An error, timeout, 429/``Retry-After`` hold or full budget of the
  review client leaves the token served locally; one log line when confirmations become
  unavailable, one when they are answered again, the ``auth.revocation.available`` gauge and the
  readiness detail (``state``), never a readiness failure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from ..apiserver.budget import InFlightBudget
from ..apiserver.tokenreview import TokenReviewer
from ..core.bearer import Bearer, fingerprint
from ..core.cache import VerdictCache
from ..core.errors import ReviewRejected, TokenReviewUnavailable
from ..core.identity import Identity
from ..logs.text import clip, render
from ..telemetry import Telemetry
from ..telemetry.revocation import RevocationTelemetry

logger = logging.getLogger(__name__)

#: Log messages operators grep for; keep them stable.
MSG_REVOKED = "token revoked: the API server refused a token verified locally"
MSG_UNAVAILABLE = "revocation checks unavailable; tokens are still verified locally"
MSG_RECOVERED = "revocation checks answered again"
#: The claim every service-account token carries (its pod, service account, node bindings):
#: the tokens whose objects TokenReview checks.
KUBERNETES_CLAIM = "kubernetes.io"
#: Seconds a refusal is remembered when the token has no ``exp`` (no local path gives one).
REFUSAL_WITHOUT_EXPIRY = 3600.0

State = Literal["off", "available", "unavailable"]


class RevocationCheck:
    """Confirms locally verified tokens with TokenReview, off the request path."""

    def __init__(
        self,
        reviewer: TokenReviewer,
        *,
        forget: Callable[[bytes, Identity], None],
        window: float,
        capacity: int,
        max_in_flight: int,
        telemetry: Telemetry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._reviewer = reviewer
        self._forget = forget
        self.window = window
        self._capacity = max(1, capacity)
        self._telemetry: RevocationTelemetry = (telemetry or Telemetry()).revocations
        self._telemetry.observe_available(lambda: self.available)
        self._clock, self._wall_clock = clock, wall_clock
        #: Per token (its HMAC), when (monotonic) its next confirmation is due, least recently
        #: confirmed first: bounded like the verified-token cache.
        self._due: OrderedDict[bytes, float] = OrderedDict()
        #: Tokens the API server refused, until their ``exp`` (bounded, segmented LRU).
        self._refused: VerdictCache[str] = VerdictCache(self._capacity, clock)
        self.budget = InFlightBudget(max_in_flight, what="revocation confirmations",
                                     setting="AUTH_REVOCATION_WINDOW")
        self._tasks: set[asyncio.Task[None]] = set()
        #: Open connections by token HMAC: how to close each (``watch``); bounded by the open
        #: connections themselves (each removes itself when it ends).
        self._connections: dict[bytes, dict[int, Callable[[], None]]] = {}
        self._next_watch = 0
        #: The token and identity of each watched key, for the sweep.
        self._watched_tokens: dict[bytes, tuple[Bearer, Identity]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self.available = True
        self.last_error: str | None = None

    # --- the request path -------------------------------------------------------------------

    def use(self, bearer: Bearer, identity: Identity) -> None:
        """A request used ``bearer``, verified locally (first sight or cache hit): start its
        confirmation when one is due. A dict lookup and a clock compare when none is."""
        due = self._due.get(bearer.key)
        if due is not None and due > self._clock():
            return
        self._start(bearer, identity)

    def refused(self, bearer: Bearer) -> str | None:
        """Why the API server refused this token, while it is remembered; ``None`` if it did
        not (read on the uncached path only: a refused token is in no verdict cache)."""
        return self._refused.get(bearer.key)

    def watch(self, bearer: Bearer, identity: Identity,
              close: Callable[[], None]) -> Callable[[], None]:
        """Call ``close()`` when ``bearer`` is found revoked (an open WebSocket); returns the
        function that stops watching (call it when the connection ends). An open connection is
        a use of its token: every half window, a sweep over the watched tokens starts the
        confirmations due (one timer for all, armed while any connection is watched)."""
        key = bearer.key
        self._next_watch += 1
        handle = self._next_watch
        self._connections.setdefault(key, {})[handle] = close
        self._watched_tokens[key] = (bearer, identity)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self._sweep_interval(),
                                                                self._sweep_watched)

        def unwatch() -> None:
            closers = self._connections.get(key)
            if closers is not None:
                closers.pop(handle, None)
                if not closers:
                    del self._connections[key]
                    self._watched_tokens.pop(key, None)

        return unwatch

    # --- status -----------------------------------------------------------------------------

    def state(self) -> State:
        return "available" if self.available else "unavailable"

    def in_flight(self) -> int:
        """Confirmations outstanding (started, not finished)."""
        return len(self._tasks)

    def tracked(self) -> int:
        """Tokens with a due time (at most ``capacity``)."""
        return len(self._due)

    def watched(self) -> int:
        return sum(len(closers) for closers in self._connections.values())

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- confirmations ----------------------------------------------------------------------

    def _start(self, bearer: Bearer, identity: Identity) -> None:
        if identity.authenticator or KUBERNETES_CLAIM not in identity.claims:
            # Not one of this cluster's service-account tokens: an OIDC issuer's, or another
            # cluster's (it carries the claim too) verified through AUTH_AUTHENTICATION_CONFIG.
            # This API server's TokenReview does not know its issuer and would refuse it, and
            # the rule for deleted objects is the other cluster's: never confirmed here.
            self._due[bearer.key] = math.inf
            self._trim()
            return
        if len(self._tasks) >= self.budget.capacity:
            self._telemetry.confirmation("skipped")  # no queue: the next use tries again
            return
        key = bearer.key
        self._due[key] = self._clock() + self.window
        self._due.move_to_end(key)
        self._trim()
        linked = self._telemetry.request_context()
        # The budget's slot is taken inside the review (ReviewClient.review), when the task
        # runs; the tasks alive are at most the budget's capacity (checked above), so that take
        # never fails.
        task = asyncio.create_task(self._confirm(bearer, identity, linked),
                                   name="compass-auth-revocation")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _confirm(self, bearer: Bearer, identity: Identity, linked: object) -> None:
        with self._telemetry.confirm_span(linked) as span:  # type: ignore[arg-type]
            try:
                await self._reviewer.review(bearer.token, bearer.key, identity.expires_at,
                                            None, self.budget)
            except ReviewRejected as refusal:
                result = "revoked"
                self._recovered()
                self._revoke(bearer, identity, refusal.detail)
            except TokenReviewUnavailable as error:
                result = "unavailable"
                self._unavailable(error.detail)
            except Exception as error:  # noqa: BLE001 - never a task error nobody retrieves
                result = "unavailable"
                self._unavailable(f"{type(error).__name__}: {error}")
            else:
                result = "confirmed"
                self._recovered()
            span.set_attribute("auth.result", result)
        self._telemetry.confirmation(result)

    def _sweep_interval(self) -> float:
        # Half a window: a token whose confirmation came due just after a sweep waits half a
        # window more, so a connection's token is confirmed within one and a half windows.
        return self.window / 2

    def _trim(self) -> None:
        while len(self._due) > self._capacity:
            self._due.popitem(last=False)

    def _sweep_watched(self) -> None:
        """The open connections' tokens are in use: start the confirmations due (within the
        budget; the next sweep retries what did not fit)."""
        self._sweep = None
        for bearer, identity in list(self._watched_tokens.values()):
            self.use(bearer, identity)
        if self._watched_tokens:
            self._sweep = asyncio.get_running_loop().call_later(self._sweep_interval(),
                                                                self._sweep_watched)

    def _revoke(self, bearer: Bearer, identity: Identity, detail: str) -> None:
        key = bearer.key
        lifetime = (REFUSAL_WITHOUT_EXPIRY if identity.expires_at is None
                    else identity.expires_at - self._wall_clock())
        self._refused.put(key, detail, lifetime)
        self._due.pop(key, None)
        self._forget(key, identity)
        closers = self._connections.pop(key, {})
        self._watched_tokens.pop(key, None)
        fields = {"credential_id": identity.credential_id or "none",
                  "token_fp": fingerprint(bearer.token), "subject": identity.subject,
                  "error": clip(detail), "connections": len(closers)}
        logger.warning(render(MSG_REVOKED, fields), extra=fields)
        for close in closers.values():
            close()

    def _unavailable(self, why: str) -> None:
        self.last_error = why
        if self.available:
            self.available = False
            fields = {"error": clip(why)}
            logger.warning(render(MSG_UNAVAILABLE, fields), extra=fields)

    def _recovered(self) -> None:
        if not self.available:
            self.available = True
            self.last_error = None
            logger.info(MSG_RECOVERED)
