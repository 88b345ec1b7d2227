"""Connection slots: how many client connections are open, in all and per client address.

A slot is taken when a connection is accepted and given back when its socket is closed, whatever
the connection became meanwhile: a plain HTTP connection, a WebSocket (which leaves the HTTP
server's own bookkeeping at the upgrade), or a 431 refusal still lingering. So the total is the
number of descriptors clients hold, the figure the descriptor budget (``service/fd_budget.py``)
is checked with.

The per-address share stops one address from holding every slot: a client that reopens each
connection as it is cut (issue 18, finding 12) keeps at most its share, and the rest stay free
for others. In a cluster several callers can share an address (a node's address after SNAT, a
proxy, a service mesh's sidecar), which is why the share is a setting.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

Refusal = Literal["total", "address"]


class Slot:
    """One accepted connection's place; ``release()`` is idempotent."""

    __slots__ = ("_address", "_slots")

    def __init__(self, slots: ConnectionSlots, address: str) -> None:
        self._slots: ConnectionSlots | None = slots
        self._address = address

    def release(self) -> None:
        if self._slots is not None:
            self._slots._release(self._address)
            self._slots = None


class ConnectionSlots:
    """At most ``max_total`` slots, and at most ``max_per_address`` for one address."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        if max_total < 1 or max_per_address < 1:
            raise ValueError("connection limits must be at least 1")
        self.max_total = max_total
        self.max_per_address = min(max_per_address, max_total)
        self.total = 0
        self._by_address: Counter[str] = Counter()

    def acquire(self, address: str) -> Slot | Refusal:
        """A slot for a connection from ``address``, or why there is none."""
        if self.total >= self.max_total:
            return "total"
        if self._by_address[address] >= self.max_per_address:
            return "address"
        self.total += 1
        self._by_address[address] += 1
        return Slot(self, address)

    def held_by(self, address: str) -> int:
        return self._by_address[address]

    def _release(self, address: str) -> None:
        self.total -= 1
        self._by_address[address] -= 1
        if not self._by_address[address]:
            del self._by_address[address]  # bounded by the open connections, not by history
