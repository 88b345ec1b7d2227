"""Floods of distinct callers and of distinct checks against handlers with required access
(issue 15): each (caller, check) costs at most one SubjectAccessReview, the decision cache stays
within AUTH_AUTHZ_CACHE_SIZE, at most AUTH_AUTHZ_MAX_IN_FLIGHT reviews are outstanding, memory
stays flat, and callers decided before keep being served from the cache.
``COMPASS_FLOOD_REQUESTS`` sets the size (default 10,000)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from compass_auth import AuthenticatedHandler, ResourceCheck

from ..conftest import RunningService, StartService
from ..helpers import RBAC, SERVICE_NAMESPACE, WHOAMI_CHECK, group_subject, role_binding
from .flood import FloodResult, Plan, flood

REQUESTS = int(os.environ.get("COMPASS_FLOOD_REQUESTS", "10000"))
CACHE_SIZE = 500
#: Half of the flood's callers are in the namespace flood-allowed, whose group this binds; the
#: others, in flood-denied, are refused (and the reports route below has no binding at all).
GROUP_BINDING = role_binding(
    "flood-calls-whoami", SERVICE_NAMESPACE, "whoami-caller",
    group_subject("system:serviceaccounts:flood-allowed"))

FLOODER_CALLS_WHOAMI = role_binding(
    "flooder-calls-whoami", SERVICE_NAMESPACE, "whoami-caller",
    "{kind: ServiceAccount, name: flooder, namespace: flood-denied}")


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


class ReportsHandler(AuthenticatedHandler):
    required_access = (ResourceCheck("get", "reports", group="compass.example",
                                     namespace="{namespace}"),)

    def get(self, namespace: str) -> None:
        self.write({"namespace": namespace})


async def watch_in_flight(running: RunningService, stop: asyncio.Event) -> int:
    reviewer = running.authenticator.authorizer.reviewer
    most = 0
    while not stop.is_set():
        most = max(most, reviewer.in_flight())
        await asyncio.sleep(0)
    return most


async def start(start_service: StartService, caplog: pytest.LogCaptureFixture,
                cache_size: int = CACHE_SIZE) -> RunningService:
    # Each refusal is logged; pytest's capture would keep every record (some 10 MB) and hide
    # what the service itself retains.
    caplog.set_level(logging.CRITICAL)
    running: RunningService = await start_service(
        AUTH_REQUIRED_ACCESS=WHOAMI_CHECK, AUTH_AUTHZ_CACHE_SIZE=str(cache_size),
        # The verified-token cache bounded alike, so that memory shows what the flood retains.
        AUTH_CACHE_SIZE=str(CACHE_SIZE),
        # Longer than any CI run of the flood: nothing expires halfway.
        AUTH_AUTHZ_DENIED_TTL="600",
        service_options={"extra_rules": [(r"/reports/(?P<namespace>[^/]+)", ReportsHandler)]})
    running.cluster.load_rbac(RBAC)
    running.cluster.load_rbac(GROUP_BINDING)
    return running


@dataclass
class Measured:
    """A flood's answers, and what it cost: reviews sent, the most in flight at once, the
    decision cache's entries afterwards and the RSS growth."""

    result: FloodResult
    reviews: int
    most_in_flight: int
    entries: int
    grown: float

    def summary(self) -> str:
        return (f"{self.result.seconds:.1f}s ({self.result.rate:.0f}/s), reviews {self.reviews}, "
                f"most in flight {self.most_in_flight}, cache entries {self.entries}, RSS "
                f"+{self.grown:.1f} MiB, answers {dict(self.result.statuses)}")


async def measured_flood(running: RunningService, plan: Plan,
                         path: Callable[[int], str] = lambda index: "/whoami") -> Measured:
    rss_before = rss_mib()
    reviews_before = running.api_calls("subjectaccessreview")
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_in_flight(running, stop))
    result = await flood(running.base_url, REQUESTS, plan, path=path)
    stop.set()
    return Measured(result, running.api_calls("subjectaccessreview") - reviews_before,
                    await watcher, running.authenticator.authorizer.reviewer.cache_size(),
                    rss_mib() - rss_before)


async def test_a_flood_of_distinct_callers(
    start_service: StartService, caplog: pytest.LogCaptureFixture,
) -> None:
    running = await start(start_service, caplog)
    known = running.token()
    assert (await running.get(token=known)).code == 200  # decided before the flood
    # Each caller sends two requests in a row; a distinct token each (another credential id):
    # REQUESTS / 2 distinct callers, half of them in a namespace whose group is bound.
    callers = [running.token(namespace="flood-allowed" if index % 2 else "flood-denied",
                             service_account=f"caller-{index}", pod=None, node=None)
               for index in range(REQUESTS // 2)]

    def plan(index: int) -> tuple[str, str]:
        if index % 50 == 0:
            return "known", known
        return "flood", callers[(index // 2) % len(callers)]

    measured = await measured_flood(running, plan)
    result, reviews, most_in_flight, entries, grown = (
        measured.result, measured.reviews, measured.most_in_flight, measured.entries,
        measured.grown)
    print(f"\ndistinct callers: {REQUESTS} requests from {len(callers)} callers in "
          f"{measured.summary()}")
    assert most_in_flight <= running.authenticator.settings.authz_max_in_flight
    assert entries <= CACHE_SIZE
    assert result.count("known") == result.count("known", 200)
    assert result.count("flood") == sum(result.count("flood", code) for code in (200, 403, 503))
    assert {reason for _, reason in result.reasons} <= {"access_denied",
                                                        "authorization_unavailable"}
    # At most one review per caller: a caller's repeat is answered by the cache or joins the
    # review in flight (or is shed by the cap, which costs none).
    assert reviews <= len(callers)
    assert reviews <= result.count("flood", 200) + result.count("flood", 403)
    # Both kinds of answer came from RBAC: the bound group's callers in, the others out.
    assert result.count("flood", 200) > 0
    assert result.count("flood", 403) > 0
    assert grown < 20


async def test_a_flood_of_distinct_checks(
    start_service: StartService, caplog: pytest.LogCaptureFixture,
) -> None:
    running = await start(start_service, caplog)
    caller = running.token()
    assert (await running.get(token=caller)).code == 200
    namespaces = [f"team-{index}" for index in range(REQUESTS // 2)]
    def path(index: int) -> str:
        if index % 50 == 0:
            return "/whoami"
        return f"/reports/{namespaces[(index // 2) % len(namespaces)]}"

    measured = await measured_flood(running, lambda index: (
        "known" if index % 50 == 0 else "flood", caller), path=path)
    result, reviews, most_in_flight, entries, grown = (
        measured.result, measured.reviews, measured.most_in_flight, measured.entries,
        measured.grown)
    print(f"\ndistinct checks: {REQUESTS} requests over {len(namespaces)} namespaces in "
          f"{measured.summary()}")
    assert most_in_flight <= running.authenticator.settings.authz_max_in_flight
    assert entries <= CACHE_SIZE
    assert result.count("known") == result.count("known", 200)
    # No binding grants reports anywhere: denied, or shed by the cap.
    assert result.count("flood") == result.count("flood", 403) + result.count("flood", 503)
    assert reviews <= len(namespaces)
    assert reviews <= result.count("flood", 403)
    assert grown < 20


async def test_one_callers_flood_of_checks_leaves_room_for_others(
    start_service: StartService, caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 18, finding 7: a caller without a grant asks for distinct namespaces (each twice,
    so that its entries are hit again too). New callers meanwhile are served, not shed with it,
    and the cached allow of a caller that is idle during the flood survives it."""
    # A small cache, so that the flood's denials outnumber it many times over: the flooder's
    # share of reviews in flight (the rest is shed with 503) bounds how many it gets decided,
    # about 200 of the 2,000 requests.
    cache_size = 20
    running = await start(start_service, caplog, cache_size)
    # AUTH_REQUIRED_ACCESS applies to every route: the flooder may call /whoami, so that each
    # of its distinct /reports checks is a review of its own (denied: reports has no binding).
    running.cluster.load_rbac(FLOODER_CALLS_WHOAMI)
    reviewer = running.authenticator.authorizer.reviewer
    idle = running.token()
    for _ in range(2):  # decided, then served from the cache: an entry in use
        assert (await running.get(token=idle)).code == 200
    flooder = running.token(namespace="flood-denied", service_account="flooder", pod=None,
                            node=None)
    requests = 2000
    newcomers = [running.token(namespace="flood-allowed", service_account=f"new-{index}",
                               pod=None, node=None) for index in range(requests // 50)]

    def plan(index: int) -> tuple[str, str]:
        return ("new", newcomers[index // 50]) if index % 50 == 0 else ("flood", flooder)

    def path(index: int) -> str:
        # Distinct namespaces, each asked twice in a row.
        return "/whoami" if index % 50 == 0 else f"/reports/team-{index // 2}"

    stop = asyncio.Event()
    subject = "system:serviceaccount:flood-denied:flooder"

    async def watch_flooder() -> int:
        most = 0
        while not stop.is_set():
            most = max(most, reviewer.in_flight(subject))
            await asyncio.sleep(0)
        return most

    watcher = asyncio.create_task(watch_flooder())
    before = running.api_calls("subjectaccessreview")
    result = await flood(running.base_url, requests, plan, path=path)
    stop.set()
    most_by_flooder = await watcher
    reviews = running.api_calls("subjectaccessreview")
    idle_answer = await running.get(token=idle)
    print(f"\none caller's flood of checks: {requests} requests in {result.seconds:.1f}s, "
          f"most in flight for it {most_by_flooder}, answers {dict(result.statuses)}; new "
          f"callers {result.count('new', 200)}/{result.count('new')} 200; idle caller "
          f"{idle_answer.code} with {running.api_calls('subjectaccessreview') - reviews} new "
          f"review; {reviews - before} reviews in the flood, cache {reviewer.cache_size()}")
    share = max(1, running.authenticator.settings.authz_max_in_flight // 2)
    assert most_by_flooder <= share
    assert result.count("new", 200) == result.count("new") == len(newcomers)
    assert result.count("flood") == result.count("flood", 403) + result.count("flood", 503)
    assert reviews - before > cache_size  # the flood's decisions outnumbered the cache
    assert reviewer.cache_size() <= cache_size
    # The idle caller's allow was not pushed out: answered without a new review.
    assert idle_answer.code == 200
    assert running.api_calls("subjectaccessreview") == reviews
