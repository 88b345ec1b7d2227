"""``AuthenticatedWebSocketHandler``: a Tornado WebSocket that ends with its caller's token.

A bound service-account token expires (an hour by default; the kubelet replaces it long before),
but a WebSocket opened with it can stay open for days. This handler authenticates the upgrade
request like any ``AuthenticatedHandler`` and then closes the connection when the token expires::

    class Feed(AuthenticatedWebSocketHandler):
        allowed_subjects = {"system:serviceaccount:default:collector"}

        def open(self) -> None:
            self.write_message({"hello": self.identity.subject})

* **Refused before the upgrade.** ``WebSocketHandler.get`` runs after ``prepare()`` and only
  then answers 101 (tornado/websocket.py), so a refusal is the plain HTTP answer of
  ``AuthenticatedHandler`` (400/401/403/503 with its JSON body, challenge or ``Retry-After``),
  never an upgraded socket. Whatever ``AuthenticatedHandler.prepare`` checks applies here too:
  this class *is* an ``AuthenticatedHandler``, with Tornado's ``WebSocketHandler`` behind it.
* **Closed at expiry.** At ``identity.expires_at`` plus the grace period the connection is closed
  with code 1008 (policy violation, RFC 6455 §7.4.1) and the reason ``token expired``; the client
  reconnects with its current token. A token accepted within the clock-skew leeway
  (``AUTH_CLOCK_SKEW``) may be past that time already: its connection is closed at once, after
  ``open()``. An identity without an expiry (no verification path produces one; a custom path
  might) is closed at once too, with the reason ``token expiry unknown``: fail closed.
* **A memory budget** (issue 18, findings 1 and 4). ``write_message`` refuses to let more than
  ``AUTH_WEBSOCKET_MAX_PENDING_BYTES`` wait for a client that does not read: the message that
  would pass the bound closes the connection with 1008 ``too much unread output`` instead of
  being buffered. Pings carry a random payload and only the pong that echoes it counts, so a
  client that never reads (and sends unsolicited pongs) is closed with 1008 ``ping not
  answered``. One caller (subject) holds at most ``AUTH_WEBSOCKET_MAX_PER_CALLER`` connections;
  one more handshake gets 429 with ``Retry-After``, before the upgrade.
* **Counted.** Every close of an upgraded connection counts in ``auth.websocket.closes`` by who
  ended it (``token_expired``, ``unread_output``, ``ping_timeout``, ``client``, ``server``); a
  close by this class also logs one INFO line with the subject and the token's fingerprint.
* **Closed at revocation.** When the background confirmation of the token
  (verification/revocation.py) finds it refused by the API server (pod or service account
  deleted), the connection is closed with 1008 and the reason ``token revoked``. An open
  connection counts as a use of its token: it is confirmed within every window and a half.

Browsers cannot send an ``Authorization`` header on a WebSocket handshake; this is for workload
clients.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import weakref
from asyncio import Future
from typing import Any, ClassVar, Literal

import tornado.web
import tornado.websocket
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamBufferFullError

from ..core.answers import too_many_connections
from ..core.bearer import Bearer, fingerprint, read_bearer
from ..core.caller_slots import CallerSlots
from .handler import AuthenticatedHandler
from .pings import OwnPings

logger = logging.getLogger(__name__)

#: RFC 6455 §7.4.1: "an endpoint is terminating the connection because it has received a
#: message that violates its policy"; the generic code when no other one fits.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_REASON_EXPIRED = "token expired"
CLOSE_REASON_EXPIRY_UNKNOWN = "token expiry unknown"
CLOSE_REASON_UNREAD_OUTPUT = "too much unread output"
CLOSE_REASON_PING_TIMEOUT = "ping not answered"
CLOSE_REASON_REVOKED = "token revoked"
#: Log messages operators grep for; keep them stable (docs/websocket.md).
MSG_EXPIRED = "websocket closed: token expired"
MSG_EXPIRY_UNKNOWN = "websocket closed: token expiry unknown"
MSG_UNREAD_OUTPUT = "websocket closed: too much unread output"
MSG_PING_TIMEOUT = "websocket closed: ping not answered"
MSG_REVOKED = "websocket closed: token revoked"
#: ``Retry-After`` of the 429 for a caller at its cap: a place frees only when one of its own
#: connections ends, which the server cannot foresee; a few seconds spares a retry storm.
CALLER_LIMIT_RETRY_AFTER = 5

#: Who ended an upgraded connection: the ``auth.reason`` of ``auth.websocket.closes``.
ClosedBy = Literal["token_expired", "expiry_unknown", "token_revoked", "unread_output",
                   "ping_timeout", "client", "server"]

#: The per-caller counts of each application (``get_caller_slots``); gone with the application.
_CALLER_SLOTS: weakref.WeakKeyDictionary[Any, CallerSlots] = weakref.WeakKeyDictionary()


class AuthenticatedWebSocketHandler(AuthenticatedHandler, OwnPings):
    """A WebSocket for authenticated callers only, closed when their token expires, with a
    memory budget per connection and a cap per caller.

    Class attributes (besides ``AuthenticatedHandler``'s, such as ``allowed_subjects``):

    * ``expiry_grace_seconds``: how long a connection may outlive its token's ``exp``; ``None``
      (the default) takes ``AUTH_WEBSOCKET_GRACE`` from the authenticator's settings.
    * ``max_pending_output_bytes``: bytes of output that may wait for the client; a message that
      would take the waiting output past it closes the connection with 1008. ``None`` takes
      ``AUTH_WEBSOCKET_MAX_PENDING_BYTES``. A message into an empty buffer is always accepted, so
      the bound holds output to at most the bound or one message, whichever is larger.
    * ``max_connections_per_caller``: connections one caller may hold open (all the handlers of
      the application count together); ``None`` takes ``AUTH_WEBSOCKET_MAX_PER_CALLER``.

    Write ``open``, ``on_message`` and ``on_close`` as for any ``WebSocketHandler``;
    ``self.identity`` is the caller. ``write_message`` raises ``WebSocketClosedError`` on a
    closed connection as Tornado's does, including for the message that closed it for unread
    output: catch it where a closed client is not an error. ``on_close`` also runs after a
    handshake that was refused or not upgraded, without ``open`` (see ``on_finish``; Tornado
    does the same when a client hangs up during ``prepare``). Do not override ``get``: it
    schedules the expiry close and the pings, and counts the end of the connection (Tornado's
    ``get`` runs for the connection's whole life). Overrides of ``prepare``, ``on_pong``,
    ``on_finish`` and ``on_connection_close`` must call ``super()``. ``close()`` from your code
    counts as a ``server`` close.

    Pings follow Tornado's ``websocket_ping_interval`` and ``websocket_ping_timeout``
    application settings (no pings when unset), but this class sends them (``OwnPings``,
    tornado/pings.py): only a pong that echoes a ping's payload answers it, and a ping left
    unanswered closes the connection with 1008 ``ping not answered``.
    """

    expiry_grace_seconds: ClassVar[float | None] = None
    max_pending_output_bytes: ClassVar[int | None] = None
    max_connections_per_caller: ClassVar[int | None] = None

    _compass_closed_by: ClosedBy | None = None
    #: The caller key whose slot this connection holds, until it is given back.
    _compass_slot: str | None = None
    _compass_send_buffer_set: bool = False

    def get_expiry_grace(self) -> float:
        """Seconds past ``exp`` before the connection is closed; override to decide per caller."""
        if self.expiry_grace_seconds is not None:
            return self.expiry_grace_seconds
        return self.get_authenticator().settings.websocket_grace

    def get_max_pending_output_bytes(self) -> int:
        """The bound on unread output of this connection; override to decide per caller."""
        if self.max_pending_output_bytes is not None:
            return self.max_pending_output_bytes
        return self.get_authenticator().settings.websocket_max_pending_bytes

    def get_max_connections_per_caller(self) -> int:
        """How many connections this caller may hold open; override to decide per caller."""
        if self.max_connections_per_caller is not None:
            return self.max_connections_per_caller
        return self.get_authenticator().settings.websocket_max_per_caller

    def get_caller_key(self) -> str:
        """Who a connection counts against: the subject, so that one workload's pods and
        rotated tokens share one cap. Override to count by ``identity.credential_id`` or by
        namespace."""
        return self.identity.subject

    def get_caller_slots(self) -> CallerSlots:
        """The per-caller counts this handler shares: one table per Tornado ``Application``, so
        that every ``AuthenticatedWebSocketHandler`` of an application counts together."""
        return caller_slots(self.application)

    async def prepare(self) -> None:
        """Authenticate (``AuthenticatedHandler.prepare``), then take one of the caller's
        connection slots; a caller at its cap gets 429 before the upgrade."""
        await super().prepare()
        if self.current_user is None:
            return  # a CORS preflight let through without a token: not a connection
        caller = self.get_caller_key()
        if not self.get_caller_slots().take(caller, self.get_max_connections_per_caller()):
            # The ASGI adapter's 429 too (core/answers.py): the same bytes whichever serves it.
            answer = too_many_connections(CALLER_LIMIT_RETRY_AFTER)
            self.set_status(answer.status)
            for name, value in answer.headers:
                self.set_header(name, value)
            self.finish(answer.body)
            raise tornado.web.Finish()
        self._compass_slot = caller

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # prepare() has authenticated the caller (the guard AuthenticatedHandler puts on every
        # HTTP method makes sure of it). No await separates this from the 101 answer and
        # open(), so the close cannot run before the connection exists; it is cancelled when
        # Tornado's get returns, which is when the connection has ended (or was never upgraded:
        # not a WebSocket request, a foreign Origin).
        io_loop = IOLoop.current()
        expiry = io_loop.call_later(self._seconds_left(), self._close_at_expiry)
        unwatch = self.get_authenticator().watch_revocation(
            self.request.headers.get_list("Authorization"), self.identity,
            self._close_at_revocation)
        self.start_pings()
        try:
            await super().get(*args, **kwargs)
        finally:
            io_loop.remove_timeout(expiry)
            unwatch()
            self.stop_pings()
            self._give_back_slot()
            if self.get_status() == 101:
                self.get_authenticator().telemetry.websocket_closed(
                    self._compass_closed_by or "client")

    def write_message(
        self, message: bytes | str | dict[str, Any], binary: bool = False
    ) -> Future[None]:
        """Tornado's ``write_message``, bounded: when output is already waiting for the client
        and this message would take it past ``get_max_pending_output_bytes()``, the connection
        is closed with 1008 ``too much unread output`` and ``WebSocketClosedError`` raised; the
        message is not buffered. The returned Future need not be awaited (its error, if the
        connection drops, is marked retrieved)."""
        connection = self.ws_connection
        stream = connection.stream if connection is not None else None
        if stream is None or connection is None or connection.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        # IOStream.write refuses data that would take its buffer past max_write_buffer_size with
        # StreamBufferFullError, before buffering it (tornado/iostream.py, BaseIOStream.write):
        # the stream's own count of what waits, with no copy of it here. The bound is set for
        # this write only, so that Tornado's control frames (pongs, the close frame) never meet
        # it, and only when output is waiting (``writing()``), so one message always goes.
        if not self._compass_send_buffer_set:
            self._compass_send_buffer_set = True
            self._limit_send_buffer(stream)
        previous = stream.max_write_buffer_size
        if stream.writing():
            stream.max_write_buffer_size = self.get_max_pending_output_bytes()
        try:
            future = super().write_message(message, binary=binary)
        except StreamBufferFullError:
            future = None
        finally:
            stream.max_write_buffer_size = previous
        if future is None:
            self._close_for("unread_output", CLOSE_REASON_UNREAD_OUTPUT, MSG_UNREAD_OUTPUT)
            raise tornado.websocket.WebSocketClosedError()
        # A write that is not awaited and fails (the client left) would otherwise log "Task
        # exception was never retrieved" when collected: one line per dropped client.
        future.add_done_callback(_retrieve)
        return future

    def on_finish(self) -> None:
        """After the answer to the handshake. One that was not upgraded (a refusal, a GET that is
        not a WebSocket request) ends here as a dropped connection does: ``on_close`` runs.

        Tornado calls ``on_close`` only when a connection closes, but OpenTelemetry's Tornado
        instrumentation ends a ``WebSocketHandler``'s server span there and nowhere else
        (opentelemetry-python-contrib#3498): without this, a refused handshake's span would end
        when the handler is garbage-collected, without its status, logging an ERROR
        "Failed to detach context" for every refusal. An override must call
        ``super().on_finish()``."""
        if self.get_status() != 101:
            self.on_connection_close()

    def on_connection_close(self) -> None:
        """The connection ended (or the handshake was not upgraded): its slot is given back."""
        self._give_back_slot()
        super().on_connection_close()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (Tornado's ``close``); the first close while it is open says who
        ended it."""
        if self._compass_closed_by is None and self.ws_connection is not None:
            self._compass_closed_by = "server"
        super().close(code, reason)

    def _limit_send_buffer(self, stream: IOStream) -> None:
        # The kernel's send buffer is unread output too, charged to the process's memory cgroup,
        # and Linux grows it on its own up to net.ipv4.tcp_wmem's maximum (4 MiB by default;
        # 2.8 MiB of echoes sat there for a client that did not read, before the stream's own
        # buffer held anything). Setting SO_SNDBUF turns that growth off (tcp(7)), so a
        # connection's unread output is about twice the bound, in the process and the kernel.
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                     self.get_max_pending_output_bytes())

    def _give_back_slot(self) -> None:
        if self._compass_slot is not None:
            self.get_caller_slots().give_back(self._compass_slot)
            self._compass_slot = None

    def _seconds_left(self) -> float:
        expires_at = self.identity.expires_at
        if expires_at is None:
            return 0.0
        return max(0.0, expires_at + self.get_expiry_grace() - time.time())

    def _close_at_expiry(self) -> None:
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return  # already ending: the client's close, or ours, is under way
        identity = self.identity
        if identity.expires_at is None:
            self._close_for("expiry_unknown", CLOSE_REASON_EXPIRY_UNKNOWN, MSG_EXPIRY_UNKNOWN)
        else:
            self._close_for("token_expired", CLOSE_REASON_EXPIRED, MSG_EXPIRED,
                            expires_at=identity.expires_at,
                            grace_seconds=self.get_expiry_grace())

    def on_ping_timeout(self) -> None:
        self._close_for("ping_timeout", CLOSE_REASON_PING_TIMEOUT, MSG_PING_TIMEOUT,
                        ping_timeout=self.get_ping_timeout())

    def _close_at_revocation(self) -> None:
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return
        self._close_for("token_revoked", CLOSE_REASON_REVOKED, MSG_REVOKED)

    def _close_for(self, closed_by: ClosedBy, reason: str, message: str, **extra: Any) -> None:
        """Close with 1008 and ``reason``, counted as ``closed_by``, logged as ``message``."""
        identity = self.identity
        self._compass_closed_by = closed_by
        credential = read_bearer(self.request.headers.get_list("Authorization"), _no_key)
        token_fp = fingerprint(credential.token) if isinstance(credential, Bearer) else "none"
        # The subject and fingerprint are in the text too, for plain logging.basicConfig().
        logger.info("%s (subject=%s, token_fp=%s)", message, identity.subject, token_fp,
                    extra={"subject": identity.subject, "token_fp": token_fp, **extra})
        self.close(CLOSE_POLICY_VIOLATION, reason)


def caller_slots(application: object) -> CallerSlots:
    """The per-caller counts of an application's ``AuthenticatedWebSocketHandler``s."""
    slots = _CALLER_SLOTS.get(application)
    if slots is None:
        slots = _CALLER_SLOTS[application] = CallerSlots()
    return slots


def _retrieve(future: Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _no_key(token: str) -> bytes:
    return b""  # only the token is read here, no cache is asked
