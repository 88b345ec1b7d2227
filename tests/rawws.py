"""A WebSocket client on a plain socket that reads only when told to: the abusive client of
issue 18 (findings 1 and 4), which sends and never reads.

Tornado's client reads every frame as it arrives (its frame loop runs whatever the caller does),
and asyncio's streams read up to their buffer limit: neither can stop reading. Here nothing is
read from the socket unless ``read_until_close`` is called, and the receive buffer can be made
small, so the server's output piles up on the server's side, as it would behind a client that
stopped reading.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from dataclasses import dataclass, field

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame. The mask key is zero, so the payload goes as it is (RFC 6455
    §5.3 asks for an unpredictable key, which protects proxies, not this test)."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + b"\0\0\0\0" + payload


@dataclass
class Closed:
    """What ``read_until_close`` found: the frames before the close, and the close itself."""

    frames: int = 0
    code: int | None = None
    reason: str = ""
    #: The server's close frame never came (the connection ended without one).
    dropped: bool = False
    opcodes: list[int] = field(default_factory=list)


class RawWebSocket:
    def __init__(self, sock: socket.socket, status: int, rest: bytes) -> None:
        self.sock = sock
        self.status = status
        self._buffer = rest

    @classmethod
    async def connect(cls, port: int, token: str, path: str = "/ws/whoami",
                      receive_buffer: int | None = 4096) -> RawWebSocket:
        """Open and upgrade; ``status`` is the handshake's answer (101 when upgraded). A small
        ``receive_buffer`` keeps the kernel from holding much of what the server sends."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connect(): it sets the advertised window
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(sock, (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 20)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        return cls(sock, status, rest)

    async def send(self, opcode: int, payload: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, frame(opcode, payload))

    async def _exactly(self, count: int) -> bytes:
        loop = asyncio.get_running_loop()
        while len(self._buffer) < count:
            chunk = await loop.sock_recv(self.sock, 1 << 16)
            if not chunk:
                raise ConnectionResetError("closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    async def read_until_close(self, timeout: float = 20) -> Closed:
        """Read (at last) every frame the server sent, up to its close frame."""
        found = Closed()

        async def read() -> None:
            while True:
                first, second = await self._exactly(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await self._exactly(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", await self._exactly(8))
                payload = await self._exactly(length)
                opcode = first & 0x0F
                if opcode == CLOSE:
                    if len(payload) >= 2:
                        found.code = struct.unpack("!H", payload[:2])[0]
                        found.reason = payload[2:].decode()
                    return
                found.frames += 1
                found.opcodes.append(opcode)

        try:
            await asyncio.wait_for(read(), timeout)
        except (ConnectionError, OSError):
            found.dropped = True
        return found

    def abort(self) -> None:
        """Hang up without a close frame, with a reset (SO_LINGER 0): unread data is dropped."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
