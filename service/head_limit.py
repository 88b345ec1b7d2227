"""Answer a request head over the size cap with 431, instead of Tornado's silent close.

Tornado reads each request head (request line and header fields) with
``IOStream.read_until_regex(b"\\r?\\n\\r?\\n", max_bytes=max_header_size)``
(``HTTP1Connection._read_message_inner``). Past the cap it is the *stream* that raises
``UnsatisfiableReadError`` and closes its own socket (``iostream.py``: ``read_until_regex`` and
``_handle_events``). ``HTTP1Connection`` then only sees a ``StreamClosedError`` and the server
loop returns without a word: no handler, message delegate or connection subclass can answer any
more, the socket is gone. Tornado has no other limit on the head (no header count, no line
length), so a long request line, one huge header and many small ones all end this way.

The answer is therefore given where the socket still exists: in the stream's ``close_fd()``,
the method ``BaseIOStream`` documents for subclasses. ``HeadLimitedIOStream`` hands its socket
to a callback instead of closing it when the error was a request head over the cap, and
``refuse_oversized_head`` writes a short JSON 431 with ``Connection: close`` on it, then closes
gracefully. Memory stays bounded by the same cap as before: the head is never read past
``max_header_size`` (plus one read chunk), and what the client still sends is dropped through a
small fixed buffer.

Two other designs were set aside. Raising ``max_header_size`` and checking the size in the
application would make every head cost up to the higher limit, and a head over *that* limit
would again be closed in silence. Checking before Tornado reads is not possible: ``IOStream``
has no way to peek at or give back bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from tornado.escape import json_encode
from tornado.httputil import format_timestamp
from tornado.iostream import IOStream, UnsatisfiableReadError

#: Bytes read from the client per call while discarding what it still sends.
DISCARD_CHUNK = 4096

OnHeadTooLarge = Callable[[socket.socket], None]


class HeadLimitedIOStream(IOStream):
    """An ``IOStream`` that gives its socket to ``on_head_too_large`` instead of closing it
    when a request head did not fit in ``max_bytes``.

    ``on_head_too_large`` runs inside ``close()``, after the stream has unregistered the socket
    from the IOLoop; it owns the socket from then on and must close it. It must not raise.
    Otherwise ``on_closed`` runs once the stream has closed its socket (also after a WebSocket
    upgrade, which keeps the stream): the connection budget's count follows the descriptor.
    """

    def __init__(self, sock: socket.socket, on_head_too_large: OnHeadTooLarge,
                 max_buffer_size: int | None = None, read_chunk_size: int | None = None,
                 on_closed: Callable[[], None] | None = None) -> None:
        super().__init__(sock, max_buffer_size=max_buffer_size, read_chunk_size=read_chunk_size)
        self._on_head_too_large = on_head_too_large
        self._on_closed = on_closed
        # UnsatisfiableReadError comes only from read_until_regex and read_until, whichever
        # ran last. HTTP1Connection reads heads with the first and chunk-size lines with the
        # second: a chunk-size line over its 64 bytes is a bad body, not a head too large.
        self._reading_head = False

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        self._reading_head = True
        return super().read_until_regex(regex, max_bytes)

    def read_until(self, delimiter: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        self._reading_head = False
        return super().read_until(delimiter, max_bytes)

    def close_fd(self) -> None:
        if self._reading_head and isinstance(self.error, UnsatisfiableReadError):
            sock = self.socket
            self.socket = None  # type: ignore[assignment]  # as IOStream.close_fd leaves it
            self._on_head_too_large(sock)
        else:
            super().close_fd()
            if self._on_closed is not None:
                self._on_closed()


def head_limited(stream: IOStream, on_head_too_large: OnHeadTooLarge,
                 on_closed: Callable[[], None] | None = None) -> IOStream:
    """The socket of a newly accepted ``stream`` in a ``HeadLimitedIOStream``.

    ``TCPServer`` chooses the stream class in its private ``_handle_connection`` and passes
    the stream to ``handle_stream`` before any byte was read or any handler registered, so
    wrapping the socket anew there is safe. A TLS stream is returned unchanged: its socket is
    an ``SSLSocket`` that asyncio cannot write to, and the example service listens in plain HTTP.
    """
    if type(stream) is not IOStream:
        return stream
    return HeadLimitedIOStream(stream.socket, on_head_too_large,
                               max_buffer_size=stream.max_buffer_size,
                               read_chunk_size=stream.read_chunk_size, on_closed=on_closed)


def head_too_large_response(max_header_bytes: int) -> bytes:
    """A complete ``431 Request Header Fields Too Large`` (RFC 6585 §5) with a JSON body shaped
    like the service's other errors (``write_json_error``), and ``Connection: close``."""
    status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    body = json_encode({
        "error": status.phrase.lower().replace(" ", "_"),
        "error_description": f"the request line and headers exceed {max_header_bytes} bytes",
    }).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Date: {format_timestamp(time.time())}\r\n"
        "Content-Type: application/json; charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


async def refuse_oversized_head(sock: socket.socket, max_header_bytes: int, *,
                                linger_seconds: float, linger_bytes: int) -> None:
    """Send the 431 on ``sock``, stop sending, drop what the client still sends, close.

    The client is usually still sending its head when the cap is hit. Closing a socket with
    unread bytes makes the kernel answer with a reset, and the client may then lose the 431
    it has not read yet: RFC 9112 §9.6 asks servers to half-close and keep reading for a while
    instead (nginx's ``lingering_close``). Both the time and the bytes read are bounded.
    """
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(linger_seconds):
            await loop.sock_sendall(sock, head_too_large_response(max_header_bytes))
            sock.shutdown(socket.SHUT_WR)
            buffer = bytearray(DISCARD_CHUNK)
            discarded = 0
            while discarded < linger_bytes:
                received = await loop.sock_recv_into(sock, buffer)
                if not received:
                    break  # the client has read the answer and closed its side
                discarded += received
    except (OSError, TimeoutError):
        pass  # the client went away, or kept sending for too long: close anyway
    finally:
        with contextlib.suppress(OSError):
            sock.close()
