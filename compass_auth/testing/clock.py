"""The emulated API server's clock: the host's, plus an offset tests may advance.

Everything in the emulator that reads the time reads this clock: TokenReview's time checks and the
60 s leeway on a bound object's ``deletionTimestamp`` (upstream ``pkg/serviceaccount/claims.go``),
the ``iat`` of minted tokens, TokenRequest, RBAC timestamps and the request log. Advancing it is
how a test sees a deletion "61 seconds later" without waiting a minute, like the ``now`` variable
upstream's own ``claims_test.go`` replaces.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class EmulatorClock:
    """A callable returning seconds since the epoch: ``base() + offset``.

    The offset is one float replaced whole (atomic in CPython), so the server thread may read
    while a test advances it.
    """

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self._base = base
        self._offset = 0.0

    def __call__(self) -> float:
        return self._base() + self._offset

    @property
    def offset(self) -> float:
        """Seconds this clock runs ahead of its base."""
        return self._offset

    def advance(self, seconds: float) -> None:
        """Run ``seconds`` further ahead (never back: a clock that goes back would un-expire
        tokens and un-delete objects, which no API server does)."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward, not by {seconds} s")
        self._offset += seconds
        logger.info("devcluster clock advanced by %s s (offset %s s)", seconds, self._offset)

    def reset(self) -> None:
        """Back to the base clock."""
        self._offset = 0.0
