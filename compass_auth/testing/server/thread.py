"""Runs the Tornado application on its own asyncio loop in a daemon thread.

Tests are synchronous or run their own loop, so the emulator must not share
one: every cross-thread operation goes through ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import tornado.httpserver
import tornado.netutil
import tornado.web

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Long enough for a loaded CI machine, short enough that a wedged loop fails a test fast.
_CROSS_THREAD_TIMEOUT = 10.0
_CLOSE_CONNECTIONS_TIMEOUT = 2.0


def server_ssl_context(
    cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes
) -> ssl.SSLContext:
    """A server context serving ``cert_pem`` that also accepts CA-signed client certs.

    CERT_OPTIONAL: clients without a certificate still connect (bearer tokens,
    anonymous), while a presented certificate must chain to the CA or the
    handshake fails, as with kube-apiserver's --client-ca-file.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain only reads files; keep them just long enough to load.
    with tempfile.TemporaryDirectory(prefix="devcluster-tls-") as tmp:
        cert_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
    return context


class ServerThread:
    """An HTTPS server on ``host:port`` that can pause, resume and swap certificates."""

    def __init__(
        self,
        app: tornado.web.Application,
        context: ssl.SSLContext,
        host: str,
        port: int,
        name: str = "devcluster",
    ) -> None:
        # ``name``: of the thread and in log lines, to tell several emulators in one process apart.
        self._name = name
        self._app = app
        self._context = context
        self._host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: tornado.httpserver.HTTPServer | None = None

    def start(self) -> None:
        """Bind and serve; returns once the socket is listening (errors re-raised here)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            # The kernel may deliver a process-directed SIGINT/SIGTERM to any thread that does
            # not block it. Python runs handlers in the main thread only, so a signal taken by
            # this thread would leave a main thread that sleeps in a lock (``python -m
            # compass_auth.testing`` waiting for Ctrl-C) asleep forever: leave them to it.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except (OSError, RuntimeError, ValueError) as exc:  # re-raised by start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(self._shutdown())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        if not ready.wait(_CROSS_THREAD_TIMEOUT):
            raise RuntimeError(f"{self._name} server thread did not start")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        logger.info("%s listening on %s:%s", self._name, self._host, self.port)

    def stop(self) -> None:
        """Close the server and connections and end the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CROSS_THREAD_TIMEOUT + _CLOSE_CONNECTIONS_TIMEOUT)
        self._thread = None
        self._loop = None
        logger.info("%s stopped (port %s)", self._name, self.port)

    def pause(self) -> None:
        """Stop listening and drop open connections: clients get connection refused."""
        self.call(self._close)

    def resume(self) -> None:
        """Listen again on the same port."""
        self.call(self._listen)

    def set_context(self, context: ssl.SSLContext) -> None:
        """Serve new connections with ``context`` (existing ones keep the old one)."""

        async def swap() -> None:
            self._context = context
            if self._server is not None:
                # TCPServer reads ssl_options for every accepted connection.
                self._server.ssl_options = context

        self.call(swap)

    def call(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the server loop from another thread and wait for it."""
        if self._loop is None:
            raise RuntimeError("server not started")

        async def wrapper() -> T:
            return await factory()

        future = asyncio.run_coroutine_threadsafe(wrapper(), self._loop)
        return future.result(timeout=_CROSS_THREAD_TIMEOUT)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sockets = tornado.netutil.bind_sockets(self.port, self._host)
        self.port = sockets[0].getsockname()[1]
        server = tornado.httpserver.HTTPServer(self._app, ssl_options=self._context)
        server.add_sockets(sockets)
        self._server = server

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        try:
            await asyncio.wait_for(
                server.close_all_connections(), _CLOSE_CONNECTIONS_TIMEOUT
            )
        except TimeoutError:
            logger.warning(
                "%s: connections still open after %ss",
                self._name,
                _CLOSE_CONNECTIONS_TIMEOUT,
            )

    async def _shutdown(self) -> None:
        await self._close()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
