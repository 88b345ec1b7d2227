"""Honouring ``Retry-After`` (RFC 9110 §10.2.3) from the API server, within a sane bound.

kube-apiserver's priority and fairness sends ``429`` with ``Retry-After: 1`` when it sheds load,
and a load balancer in front of it may answer ``503`` with its own value. Asking again sooner
than told only adds to the overload, so every retry we make waits at least that long. A server
may also send nonsense (``Retry-After: 86400``): the hint is capped, because a component that
verifies tokens must not go to sleep for a day on one header.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping

from tenacity import RetryCallState
from tenacity.wait import wait_base

#: Longest wait a Retry-After may impose. Longer hints are treated as this long: start-up
#: discovery then moves on (TokenReview serves meanwhile) and the rediscovery loop tries again.
MAX_RETRY_AFTER = 30.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP-date), capped at
    ``MAX_RETRY_AFTER``; ``None`` when absent or unreadable. ``now`` is wall-clock time."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None  # RFC 9110 dates are GMT; a date without a zone is not one
        seconds = moment.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def retry_after_header(headers: Mapping[str, str], now: float) -> float | None:
    """``parse_retry_after`` of a response's headers."""
    return parse_retry_after(headers.get("Retry-After"), now)


class wait_retry_after(wait_base):  # named like tenacity's own wait strategies
    """The longer of ``fallback`` and the failed attempt's ``retry_after`` attribute (seconds,
    already capped by ``parse_retry_after``); ``fallback`` alone when the error has none."""

    def __init__(self, fallback: wait_base) -> None:
        self._fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self._fallback(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(error, "retry_after", None)
        if isinstance(hint, int | float):
            wait = max(wait, min(float(hint), MAX_RETRY_AFTER))
        return wait
