"""``CallerSlots``: how many long-lived connections each caller holds, with a cap per caller.

A global cap on WebSockets alone lets one caller take every place (issue 18, finding 4): the
others then get 503 until that caller's connections end. Counting per caller as well keeps a
share for everyone else. The counts live only while connections do: a caller's entry is removed
when its last connection ends, so the table never holds more entries than open connections.
"""

from __future__ import annotations


class CallerSlots:
    """Open connections per caller key (a subject), each caller at most ``limit``."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def take(self, caller: str, limit: int) -> bool:
        """Count one more connection for ``caller``; ``False`` (and nothing counted) when it
        holds ``limit`` already."""
        held = self._held.get(caller, 0)
        if held >= limit:
            return False
        self._held[caller] = held + 1
        return True

    def give_back(self, caller: str) -> None:
        """One of ``caller``'s connections ended."""
        held = self._held.get(caller, 0)
        if held <= 1:
            self._held.pop(caller, None)
        else:
            self._held[caller] = held - 1

    def held(self, caller: str) -> int:
        """Connections ``caller`` holds now."""
        return self._held.get(caller, 0)

    def __len__(self) -> int:
        """Callers holding at least one connection."""
        return len(self._held)
