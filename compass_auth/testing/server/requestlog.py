"""A thread-safe record of the requests the emulator served (never the tokens)."""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


def fingerprint(token: str) -> str:
    """``sha256(token)[:12]``: enough to correlate, useless to replay."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One served request.

    ``endpoint`` is "discovery", "jwks", "tokenreview", "tokenrequest",
    "selfsubjectreview" or the name of another route ("version", "healthz",
    "notfound", ...). ``status`` is 0 for a dropped connection.
    ``headers_subset`` holds the request's ``Cache-Control`` and ``Content-Type``
    (if sent) and ``Authorization-Fingerprint`` (sha256 of the bearer token,
    first 12 hex digits, if a bearer token was sent).
    """

    endpoint: str
    method: str
    path: str
    status: int
    headers_subset: dict[str, str] = field(default_factory=dict)
    time: float = 0.0


class RequestLog:
    """Append-only log with per-endpoint counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._counts: collections.Counter[str] = collections.Counter()

    def add(self, record: RequestRecord) -> None:
        """Record one request."""
        with self._lock:
            self._records.append(record)
            self._counts[record.endpoint] += 1

    def count(self, endpoint: str) -> int:
        """How many requests hit ``endpoint`` since the last clear."""
        with self._lock:
            return self._counts[endpoint]

    def records(self) -> list[RequestRecord]:
        """A copy of the log, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget everything (between tests)."""
        with self._lock:
            self._records.clear()
            self._counts.clear()
