"""Reviews have a budget per purpose (issue 18, findings 5 and 7): readiness sends at most one
probe however many /readyz calls arrive, and one caller cannot take every TokenReview slot.
The SubjectAccessReview side is in test_authorization_floods.py."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from compass_auth.apiserver.budget import CALLER_SHARE
from compass_auth.testing import DevCluster, Fault

from ..conftest import RunningService, StartService
from .recovery import readyz

#: Concurrent unauthenticated /readyz calls: far more than AUTH_TOKENREVIEW_MAX_IN_FLIGHT (8)
#: and than the API-server connections (12); the issue's burst was 300.
BURST = 100
#: Legitimate first-time callers during the burst, each needing a TokenReview.
CALLERS = 6
#: TokenReview answers this slowly (the issue's figure): a probe per /readyz queued ~4 s of
#: calls behind the connection limit, past AUTH_API_TIMEOUT below.
SLOW = Fault(delay=0.5)


async def get(session: aiohttp.ClientSession, url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(url, headers=headers) as response:
        await response.read()
        return response.status


async def start_reviewing(devcluster: DevCluster, start_service: StartService,
                          mode: str) -> RunningService:
    """The service verifying by TokenReview: ``review`` (AUTH_MODE=review) or ``fallback``."""
    if mode == "fallback":
        devcluster.set_fault("discovery", Fault(status=403))  # not retried: fallback at once
    running: RunningService = await start_service(
        AUTH_API_TIMEOUT="2", AUTH_REDISCOVERY_INTERVAL="60",
        **({"AUTH_MODE": "review"} if mode == "review" else {}))
    assert running.authenticator.active_path() == "tokenreview"
    return running


@pytest.mark.parametrize("mode", ["review", "fallback"])
async def test_a_readyz_burst_sends_one_probe_and_callers_are_served(
    devcluster: DevCluster, start_service: StartService, mode: str,
) -> None:
    running = await start_reviewing(devcluster, start_service, mode)
    devcluster.set_fault("tokenreview", SLOW)
    callers = [running.token(service_account=f"caller-{index}", pod=None, node=None)
               for index in range(CALLERS)]
    before = running.api_calls("tokenreview")
    connector = aiohttp.TCPConnector(limit=BURST + CALLERS)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        answers = await asyncio.gather(
            *(get(session, running.base_url + "/readyz") for _ in range(BURST)),
            *(get(session, running.base_url + "/whoami", token) for token in callers))
        probes_and_callers = running.api_calls("tokenreview") - before
        # Within the probe's memory, another burst costs no review at all.
        again = await asyncio.gather(
            *(get(session, running.base_url + "/readyz") for _ in range(BURST)))
    print(f"\n{mode}: {BURST} concurrent /readyz + {CALLERS} new callers sent "
          f"{probes_and_callers} TokenReviews; /readyz {sorted(set(answers[:BURST]))}, "
          f"callers {answers[BURST:]}")
    assert answers[:BURST] == [200] * BURST
    assert answers[BURST:] == [200] * CALLERS  # served meanwhile, not queued behind probes
    assert probes_and_callers <= 1 + CALLERS  # one probe, one review per caller
    assert again == [200] * BURST
    assert running.api_calls("tokenreview") - before == probes_and_callers


async def test_one_callers_tokens_leave_tokenreview_slots_for_others(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    running = await start_reviewing(devcluster, start_service, "review")
    reviewer = running.authenticator.review.reviewer
    cap = running.authenticator.settings.tokenreview_max_in_flight
    devcluster.set_fault("tokenreview", SLOW)
    # One caller (one service account) with many distinct tokens, each needing its own review.
    flood = [running.token(pod=f"collector-{index}") for index in range(2 * cap)]
    others = [running.token(service_account=f"caller-{index}", pod=None, node=None)
              for index in range(3)]
    flooding = [asyncio.create_task(running.get(token=token)) for token in flood]
    # Every flood request is either in flight or already answered (shed): then the others come.
    deadline = asyncio.get_running_loop().time() + 10
    while sum(task.done() for task in flooding) + reviewer.in_flight() < len(flood):
        assert asyncio.get_running_loop().time() < deadline, "the flood never settled"
        await asyncio.sleep(0.01)
    held = reviewer.in_flight()
    answers = await asyncio.gather(*(running.get(token=token) for token in others))
    flood_codes = [response.code for response in await asyncio.gather(*flooding)]
    print(f"\none caller's {len(flood)} tokens: {held} reviews in flight, answers "
          f"{sorted(flood_codes)}; other callers {[r.code for r in answers]}")
    assert held <= max(1, int(cap * CALLER_SHARE))
    assert [response.code for response in answers] == [200] * len(others)
    assert flood_codes.count(200) == held  # its excess was shed at once (503), not queued
    assert flood_codes.count(503) == len(flood) - held


async def test_readiness_answers_are_shared_not_repeated(
    devcluster: DevCluster, start_service: StartService,
) -> None:
    """The library call, as /readyz makes it: concurrent ``Authenticator.readiness()`` calls
    share the probe, and a failing TokenReview is remembered too (no probe per call)."""
    running = await start_reviewing(devcluster, start_service, "fallback")
    devcluster.set_fault("tokenreview", Fault(status=500, delay=0.3))
    before = running.api_calls("tokenreview")
    answers = await asyncio.gather(*(running.authenticator.readiness() for _ in range(50)))
    assert {(a.ready, a.path) for a in answers} == {(False, "none")}
    assert "TokenReview fails: API server answered 500 to TokenReview" in answers[0].reason
    code, status = await readyz(running)
    assert (code, status["ready"], status["path"]) == (503, False, "none")
    assert running.api_calls("tokenreview") - before == 1
