"""Recovery from API-server faults, as the reliability suites check it: fast recovery settings,
/readyz, and the proof that a service is back on local verification without a restart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..conftest import RunningService
from ..helpers import body
from .decisions import Decisions, extra_key

#: Fast recovery loops for tests: rediscovery and unknown-kid refetches every few tenths of a s.
FAST = {"AUTH_REDISCOVERY_INTERVAL": "0.3", "AUTH_JWKS_MIN_REFRESH_INTERVAL": "0.2",
        "AUTH_API_TIMEOUT": "1"}


async def readyz(running: RunningService) -> tuple[int, dict[str, Any]]:
    response = await running.get("/readyz")
    return response.code, body(response)


async def wait_for_path(running: RunningService, path: str, timeout: float = 10.0) -> None:
    """Poll /readyz until it is 200 on ``path``: recovery without a restart."""
    deadline = time.monotonic() + timeout
    while True:
        code, status = await readyz(running)
        if code == 200 and status["path"] == path:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz did not reach path {path}: {code} {status}")
        await asyncio.sleep(0.1)


async def assert_recovered(running: RunningService) -> None:
    """Back on local verification: valid tokens 200 via jwks, a new key found, junk 401."""
    await wait_for_path(running, "jwks")
    response = await running.get(token=running.token())
    assert (response.code, body(response)["verified_by"]) == (200, "jwks")
    with extra_key(running.cluster) as new_kid:
        await asyncio.sleep(0.25)  # past AUTH_JWKS_MIN_REFRESH_INTERVAL since an earlier refetch
        response = await running.get(token=running.token(key_id=new_kid))
        assert (response.code, body(response)["verified_by"]) == (200, "jwks")
    decisions = Decisions()
    await decisions.probe(running, {"valid": running.token()})
    decisions.assert_none_wrong()
    assert decisions.count("valid", 200) == 1
    assert decisions.count("expired", 401) == 1
