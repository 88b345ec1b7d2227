"""An ASGI application under uvicorn in the caller's event loop, on a free loopback port: how the
demo (``python -m service demo``) and the tests (tests/asgi/) run the example ASGI service."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.config import LifespanType, WSProtocolType


async def start_uvicorn(app: Any, *, lifespan: LifespanType,
                        ws: WSProtocolType = "websockets-sansio") -> tuple[uvicorn.Server,
                                                                asyncio.Task[None], int]:
    """uvicorn serving ``app`` on ``127.0.0.1`` (a port the kernel picks), in this event loop;
    stop it with ``server.should_exit = True`` and await the task. ``ws``: uvicorn's WebSocket
    implementation (``websockets-sansio`` offers the denial extension, docs/asgi.md)."""
    config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", ws=ws)
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        raise RuntimeError("uvicorn did not start (its log says why)")
    return server, task, port
