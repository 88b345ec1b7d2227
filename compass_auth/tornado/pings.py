"""Pings that only their own pong answers, for ``AuthenticatedWebSocketHandler``.

Tornado's own pinger takes any pong as the answer (``WebSocketProtocol13._handle_message`` sets
``_received_pong`` for every pong frame, tornado/websocket.py), so a client that sends unsolicited
pongs and never reads would never be found out (issue 18, finding 4). ``OwnPings`` turns that
pinger off (``ping_interval`` is 0) and sends pings of its own, each with a random payload: only
a pong that echoes it counts (RFC 6455 §5.5.3: "identical Application data"), which a client can
send only after reading everything sent before the ping.
"""

from __future__ import annotations

import hmac
import os

import tornado.websocket
from tornado.ioloop import IOLoop

#: Random bytes in each ping.
PING_PAYLOAD_BYTES = 16


class OwnPings(tornado.websocket.WebSocketHandler):
    """Pings at Tornado's ``websocket_ping_interval`` and ``websocket_ping_timeout`` application
    settings (no pings when unset); a ping left unanswered calls ``on_ping_timeout()``.
    ``start_pings()`` when the connection opens, ``stop_pings()`` when it ends."""

    #: The payload of the ping waiting for its pong, and the timer of the next ping step.
    _compass_ping_payload: bytes | None = None
    _compass_ping_timer: object | None = None

    def get_ping_interval(self) -> float:
        """Seconds between pings: Tornado's ``websocket_ping_interval`` (0 or unset: none)."""
        return float(self.settings.get("websocket_ping_interval") or 0)

    def get_ping_timeout(self) -> float:
        """Seconds a ping waits for its pong: ``websocket_ping_timeout``, by default and at most
        the interval, as in Tornado (0: pings are sent, their pongs not awaited)."""
        interval = self.get_ping_interval()
        timeout = self.settings.get("websocket_ping_timeout")
        return interval if timeout is None else min(float(timeout), interval)

    @property
    def ping_interval(self) -> float | None:
        """0: Tornado's own pings are off; this class pings (``get_ping_interval``)."""
        return 0

    def on_pong(self, data: bytes) -> None:
        """A pong arrived; only the one that echoes the last ping's payload counts. An override
        must call ``super().on_pong(data)``, or the connection is closed as not answering."""
        expected = self._compass_ping_payload
        if expected is not None and hmac.compare_digest(data, expected):
            self._compass_ping_payload = None

    def on_ping_timeout(self) -> None:
        """The last ping went unanswered; by default the connection is closed."""
        self.close()

    def start_pings(self) -> None:
        interval = self.get_ping_interval()
        if interval > 0:
            self._compass_ping_timer = IOLoop.current().call_later(interval, self._send_ping)

    def stop_pings(self) -> None:
        if self._compass_ping_timer is not None:
            IOLoop.current().remove_timeout(self._compass_ping_timer)
            self._compass_ping_timer = None

    def _connection_open(self) -> bool:
        connection = self.ws_connection
        return connection is not None and not connection.is_closing()

    def _send_ping(self) -> None:
        self._compass_ping_timer = None
        if not self._connection_open():
            return
        payload = os.urandom(PING_PAYLOAD_BYTES)
        self._compass_ping_payload = payload
        self.ping(payload)
        interval, timeout = self.get_ping_interval(), self.get_ping_timeout()
        io_loop = IOLoop.current()
        if timeout > 0:
            self._compass_ping_timer = io_loop.call_later(timeout, self._check_pong,
                                                          interval - timeout)
        else:
            self._compass_ping_timer = io_loop.call_later(interval, self._send_ping)

    def _check_pong(self, until_next_ping: float) -> None:
        self._compass_ping_timer = None
        if not self._connection_open():
            return
        if self._compass_ping_payload is not None:
            self.on_ping_timeout()
            return
        self._compass_ping_timer = IOLoop.current().call_later(until_next_ping, self._send_ping)
