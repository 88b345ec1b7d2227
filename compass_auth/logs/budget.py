"""A budget for log lines caused by requests: a token bucket per reason.

A rejected or shed request writes a log line; a client that sends garbage as fast as it can
would otherwise write lines as fast as it can (issue 18: 27,263 lines in ten seconds). Every
request is still counted by the metrics (``auth.verifications``); the log keeps a sample: per
reason, the first ``burst`` lines, then one line per ``interval`` seconds carrying how many lines
of that reason were left out since the last one written. A token bucket as in client-go's
``flowcontrol.NewTokenBucketRateLimiter(qps, burst)``, one per key, with the "N callbacks
suppressed" count of the Linux kernel's ``lib/ratelimit.c``.

Pure: the clock is a constructor parameter, so tests pass a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: Lines of one reason written at once before the budget applies: enough to see a new problem
#: and its first few callers.
BURST = 10
#: Seconds between lines of one reason once the burst is spent.
INTERVAL = 10.0
#: Reasons tracked; the keys come from small fixed sets (error reasons, statuses, Tornado's
#: message templates), and any key past this shares one bucket, so memory stays bounded.
MAX_KEYS = 256
OVERFLOW_KEY = "(other)"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


class LogBudget:
    """``admit(key)`` before writing a line of that key: ``None`` means drop it (it is counted);
    a number means write it and say that many lines of the key were dropped before it."""

    def __init__(self, burst: int = BURST, interval: float = INTERVAL, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError("a log budget needs burst >= 1 and interval > 0")
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: str) -> int | None:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                key = OVERFLOW_KEY
                bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        # One token back per interval, up to the burst.
        bucket.tokens = min(float(self.burst),
                            bucket.tokens + (now - bucket.updated) / self.interval)
        bucket.updated = now
        if bucket.tokens < 1.0:
            bucket.suppressed += 1
            return None
        bucket.tokens -= 1.0
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return suppressed

    def take_suppressed(self) -> dict[str, int]:
        """The keys with lines dropped since their last line written, with how many; their
        counts restart at zero. For a last report at shutdown, so that the counts add up."""
        taken = {key: bucket.suppressed for key, bucket in self._buckets.items()
                 if bucket.suppressed}
        for key in taken:
            self._buckets[key].suppressed = 0
        return taken
