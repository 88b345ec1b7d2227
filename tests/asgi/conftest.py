"""Fixtures of the ASGI adapter's tests: ``serve_asgi`` runs an application under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from compass_auth.testing import DevCluster

from .server import MakeApp, ServedAsgi, serve_asgi

ServeAsgi = Callable[..., Awaitable[ServedAsgi]]


@pytest.fixture
async def asgi_serve(devcluster: DevCluster,
                     devcluster_kubeconfig: Path) -> AsyncIterator[ServeAsgi]:
    """``served = await asgi_serve(make_app, environ=None, require_local_keys=True)``."""
    served: list[ServedAsgi] = []

    async def serve(make_app: MakeApp, environ: dict[str, str] | None = None,
                    **options: Any) -> ServedAsgi:
        running = await serve_asgi(make_app, devcluster_kubeconfig, environ, **options)
        served.append(running)
        return running

    yield serve
    for running in reversed(served):
        await running.close()
