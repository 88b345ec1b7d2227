"""Accepting without a spin when the process is out of file descriptors.

Tornado's ``netutil.add_accept_handler`` calls ``sock.accept()`` when the listening socket is
readable and catches only ``BlockingIOError`` (nothing more to accept) and
``ConnectionAbortedError``. At the descriptor limit, ``accept()`` fails with ``EMFILE`` (or
``ENFILE`` for the whole system) and leaves the connection in the kernel's queue. The error
escapes to the IOLoop, which logs it with a stack trace, and the socket is still readable, so the
loop calls the handler again at once: one core at 100 % and ~10,000 ERROR lines a second until a
descriptor is freed (issue 18, finding 3: 200,694 lines, 141 MB in 20 s).

``PausingListener`` is the smallest hook that ends this without copying Tornado's accept loop or
reaching into ``TCPServer``'s private fields: a listening socket whose ``accept()`` turns those
errors into a pause. It stops watching itself (``IOLoop.update_handler(sock, 0)``, public API),
raises ``BlockingIOError`` so that Tornado's loop returns as it does when the queue is empty,
and watches itself again after ``pause_seconds``. Connections that arrive meanwhile wait in the
listen backlog and are accepted once descriptors are free (or a client gives up). A pause costs
one failed ``accept()``; at most one log line per ``log_interval`` reports how many there were.

The service's connection budget (``service/fd_budget.py``) is what keeps it away from the limit;
this is the backstop for descriptors used by something else (another file, a lowered limit).
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

logger = logging.getLogger(__name__)

#: ``accept()`` errors that mean "no descriptor or buffer for a new connection now": retrying at
#: once cannot succeed. ``ENOBUFS``/``ENOMEM`` are the same shortage for socket memory.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Seconds the listening socket is not read after such an error: ten failed ``accept()`` calls a
#: second at most, and a freed descriptor is used within this time.
ACCEPT_PAUSE_SECONDS = 0.1
#: At most one "accept paused" line per this many seconds, whatever the count.
ACCEPT_LOG_INTERVAL = 10.0


class PausingListener(socket.socket):
    """A listening socket (made from ``sock``, which it takes over) whose ``accept()`` pauses
    accepting instead of raising when the process or system is out of descriptors.

    Pass it to ``TCPServer.add_sockets`` from inside the running IOLoop. ``describe`` returns
    fields added to the log line (e.g. the connections open).
    """

    def __init__(self, sock: socket.socket, *, pause_seconds: float = ACCEPT_PAUSE_SECONDS,
                 log_interval: float = ACCEPT_LOG_INTERVAL,
                 describe: Callable[[], dict[str, Any]] = dict,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self._io_loop = IOLoop.current()
        self._pause_seconds = pause_seconds
        self._log_interval = log_interval
        self._describe = describe
        self._clock = clock
        self._resume_handle: object | None = None
        self._last_log = float("-inf")
        self.pauses = 0  # since start
        self._pauses_unlogged = 0

    def accept(self) -> tuple[socket.socket, Any]:
        try:
            return super().accept()
        except OSError as error:
            if error.errno not in EXHAUSTED:
                raise
            self._pause(error)
            # What Tornado's accept loop takes for "nothing more to accept now".
            raise BlockingIOError(errno.EAGAIN, "accepting paused") from error

    @property
    def paused(self) -> bool:
        return self._resume_handle is not None

    def _pause(self, error: OSError) -> None:
        self.pauses += 1
        self._pauses_unlogged += 1
        if self._resume_handle is None:
            self._io_loop.update_handler(self, 0)
            self._resume_handle = self._io_loop.call_later(self._pause_seconds, self._resume)
        now = self._clock()
        if now - self._last_log >= self._log_interval:
            self._last_log = now
            logger.error("out of file descriptors; accepting paused", extra={
                "error": errno.errorcode.get(error.errno or 0, str(error.errno)),
                "pause_seconds": self._pause_seconds, "paused": self._pauses_unlogged,
                "paused_total": self.pauses, **self._describe()})
            self._pauses_unlogged = 0

    def _resume(self) -> None:
        self._resume_handle = None
        if self.fileno() != -1:  # not closed by TCPServer.stop() meanwhile
            self._io_loop.update_handler(self, IOLoop.READ)

    def close(self) -> None:
        if self._resume_handle is not None:
            self._io_loop.remove_timeout(self._resume_handle)
            self._resume_handle = None
        super().close()
