"""An ASGI application on a loopback port, served by uvicorn in the test's event loop, with an
``Authenticator`` connected to the emulator (the ASGI counterpart of ``devcluster_serve``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from compass_auth import Authenticator, AuthSettings
from compass_auth.asgi import Auth
from examples.asgi_service.inprocess import start_uvicorn

from ..conftest import AUDIENCE

__all__ = ["MakeApp", "ServedAsgi", "serve_asgi", "start_uvicorn"]

#: What is served: a factory that takes the application's ``Auth``.
MakeApp = Callable[[Auth], Any]


@dataclass
class ServedAsgi:
    url: str
    port: int
    auth: Auth
    authenticator: Authenticator
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    async def close(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)
        await self.authenticator.close()


async def serve_asgi(make_app: MakeApp, kubeconfig: Path,
                     environ: Mapping[str, str] | None = None, *,
                     require_local_keys: bool = True, ws: str = "websockets-sansio") -> ServedAsgi:
    """Start the application of ``make_app(auth)`` on ``127.0.0.1`` (uvicorn, lifespan off: the
    authenticator here is started before and closed after)."""
    variables = {"AUTH_AUDIENCE": AUDIENCE, **(environ or {}), "KUBECONFIG": str(kubeconfig)}
    authenticator = await Authenticator.connect(AuthSettings.from_env(variables), variables)
    authenticator.start()
    await authenticator.wait_started()
    if require_local_keys:
        assert authenticator.active_path() == "jwks", "start-up discovery loaded no keys"
    auth = Auth(authenticator=authenticator)
    server, task, port = await start_uvicorn(make_app(auth), lifespan="off", ws=ws)
    return ServedAsgi(f"http://127.0.0.1:{port}", port, auth, authenticator, server, task)
