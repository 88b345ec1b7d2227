"""Fault switches: make an endpoint fail, stall, lie or vanish on demand."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field, replace

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do instead of (or before) answering normally.

    Attributes:
        status: answer with this HTTP status and a metav1.Status body worded as
            the API server would (302 with ``location`` gives a redirect).
        delay: seconds to wait before answering; an async sleep, so other
            requests are still served meanwhile.
        retry_after: ``Retry-After`` header value in seconds (use with 429/503).
        drop: close the connection without any HTTP answer.
        body: raw bytes to send instead of the normal body (status 200 unless
            ``status`` is set), e.g. ``b"not json"`` or something huge.
        location: ``Location`` header, for redirect tests.
        times: apply only to the next N requests, then clear itself
            (None = until cleared).
    """

    status: int | None = None
    delay: float = 0.0
    retry_after: int | None = None
    drop: bool = False
    body: bytes | None = field(default=None, repr=False)
    location: str | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError("Fault.times must be >= 1 or None")
        if self.delay < 0:
            raise ValueError("Fault.delay must be >= 0")


class FaultBoard:
    """Thread-safe endpoint -> Fault table; the test thread flips, the server reads.

    ``endpoints`` are the names :meth:`set` takes (``endpoints.FAULT_ENDPOINTS``).
    """

    def __init__(self, endpoints: Collection[str]) -> None:
        self._endpoints = tuple(endpoints)
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}

    def set(self, endpoint: str, fault: Fault) -> None:
        """Install ``fault`` for ``endpoint`` (``"all"`` covers every path)."""
        if endpoint not in self._endpoints:
            raise ValueError(f"unknown endpoint {endpoint!r}; want one of {self._endpoints}")
        with self._lock:
            self._faults[endpoint] = fault
        # Never log the body itself: it may be megabytes on purpose.
        logger.info(
            "devcluster fault set endpoint=%s status=%s delay=%s drop=%s body_bytes=%s times=%s",
            endpoint,
            fault.status,
            fault.delay,
            fault.drop,
            None if fault.body is None else len(fault.body),
            fault.times,
        )

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str | None) -> Fault | None:
        """The fault to apply to one request now, counting down ``times``.

        The endpoint's own fault wins over ``"all"``.
        """
        with self._lock:
            for name in (endpoint, "all"):
                if name is None or name not in self._faults:
                    continue
                fault = self._faults[name]
                if fault.times is not None:
                    if fault.times <= 1:
                        del self._faults[name]
                    else:
                        self._faults[name] = replace(fault, times=fault.times - 1)
                return fault
        return None
