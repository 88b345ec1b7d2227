"""A bounded flood over real HTTP: many requests at a fixed concurrency on kept-alive
connections (aiohttp), with valid callers interleaved; stops by itself after ``count``."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

#: Requests in flight at once: enough to keep the service busy, few enough for 2 shared cores.
CONCURRENCY = 32


@dataclass
class FloodResult:
    """Answers by (kind, status) and reason, and how long the flood took."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def count(self, kind: str, status: int | None = None) -> int:
        return sum(n for (k, s), n in self.statuses.items()
                   if k == kind and (status is None or s == status))

    @property
    def rate(self) -> float:
        total = sum(self.statuses.values())
        return total / self.seconds if self.seconds else 0.0


#: What to send as request number i: (kind, token). Kinds label the answers.
Plan = Callable[[int], tuple[str, str]]


def interleaved(junk: Callable[[int], str], valid: Callable[[int], str],
                valid_every: int = 50) -> Plan:
    """Junk tokens, with a valid caller every ``valid_every`` requests."""
    def plan(index: int) -> tuple[str, str]:
        if index % valid_every == 0:
            return "valid", valid(index)
        return "junk", junk(index)
    return plan


async def flood(base_url: str, count: int, plan: Plan,
                concurrency: int = CONCURRENCY,
                path: Callable[[int], str] = lambda index: "/whoami") -> FloodResult:
    """Send ``count`` requests as ``plan`` says (to ``path(i)``), ``concurrency`` at a time."""
    result = FloodResult()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            kind, token = plan(index)
            started = time.monotonic()
            async with session.get(base_url + path(index),
                                   headers={"Authorization": f"Bearer {token}"}) as response:
                body = await response.read()
            result.latencies.setdefault(kind, []).append(time.monotonic() - started)
            result.statuses[(kind, response.status)] += 1
            if response.status != 200:
                result.reasons[(kind, json.loads(body).get("reason", ""))] += 1

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    result.seconds = time.monotonic() - started
    return result


def with_header(token: str, header: dict[str, object]) -> str:
    """``token`` with another header segment (its signature no longer matches)."""
    _, payload, signature = token.split(".")
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{head}.{payload}.{signature}"


def with_claim(token: str, name: str, value: object) -> str:
    """``token`` with one claim changed (its signature no longer matches)."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims[name] = value
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


def random_kid() -> str:
    return secrets.token_urlsafe(32)
