"""Revocation at local speed (issue 21): locally verified tokens are confirmed by TokenReview in the
background, and refused once the API server refuses them (verification/revocation.py).

Through the example service over real HTTP and WebSocket, against the emulator, whose TokenReview
follows upstream's claims.go (the 60 s deletion leeway, the UID checks; ``advance_clock`` skips
the wait). The window is shortened with ``AUTH_REVOCATION_WINDOW``; everything else is default.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import resource
import time
from types import MappingProxyType
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from compass_auth.core.bearer import Bearer, read_bearer
from compass_auth.testing import DevCluster, Fault
from compass_auth.verification.revocation import MSG_RECOVERED, MSG_REVOKED, MSG_UNAVAILABLE

from .conftest import RunningService, StartService, wait_until
from .helpers import RBAC, WHOAMI_CHECK

POD = "collector-6c9d8b7f5-x2k9q"
WINDOW = 1.0


async def confirmations_done(running: RunningService) -> None:
    """Wait until no background confirmation is outstanding."""
    revocation = running.authenticator.revocation
    assert revocation is not None
    await wait_until(lambda: revocation.in_flight() == 0, 10)


async def reason_of(running: RunningService, token: str) -> tuple[int, str]:
    response = await running.get("/whoami", token)
    return response.code, json.loads(response.body).get("reason", "")


async def refused_after(running: RunningService, token: str, budget: float) -> float:
    """Use ``token`` until it is refused with ``token_revoked``; the seconds that took (fails
    past ``budget``)."""
    started = time.monotonic()
    while time.monotonic() - started < budget:
        code, reason = await reason_of(running, token)
        if code == 401:
            assert reason == "token_revoked"
            return time.monotonic() - started
        assert code == 200, (code, reason)
        await asyncio.sleep(0.1)
    raise AssertionError(f"still accepted {budget}s after the refusal became due")


@pytest.fixture
async def service(start_service: StartService) -> RunningService:
    running: RunningService = await start_service(AUTH_REVOCATION_WINDOW=str(WINDOW))
    return running


async def test_deleted_pod_refused_within_window_plus_one_review(
        service: RunningService, devcluster: DevCluster, caplog: pytest.LogCaptureFixture) -> None:
    token = service.token(pod=POD)
    other = service.token(pod="other-pod")  # minted before the emulator's clock moves
    assert (await reason_of(service, token))[0] == 200  # first sight: local, confirmed behind
    await confirmations_done(service)
    assert service.api_calls("tokenreview") == 1
    devcluster.delete_pod("default", POD, grace_period=0)
    devcluster.advance_clock(61)  # past upstream's 60 s leeway on deletionTimestamp
    # Refused within the window plus one review (generous bound: the machine is noisy).
    elapsed = await refused_after(service, token, WINDOW + 5)
    logging.getLogger(__name__).info("refused %.2f s after the deletion", elapsed)
    assert elapsed <= WINDOW + 5
    # Remembered: the next requests are refused without another review.
    reviews = service.api_calls("tokenreview")
    for _ in range(5):
        assert await reason_of(service, token) == (401, "token_revoked")
    assert service.api_calls("tokenreview") == reviews
    lines = [r for r in caplog.records if r.getMessage().startswith(MSG_REVOKED)]
    assert len(lines) == 1
    assert "credential_id=" in lines[0].getMessage()
    assert token not in caplog.text
    # Other callers keep being served.
    assert (await reason_of(service, other))[0] == 200


async def test_recreated_service_account_refused(
        service: RunningService, devcluster: DevCluster) -> None:
    token = service.token(pod=POD)
    assert (await reason_of(service, token))[0] == 200
    await confirmations_done(service)
    devcluster.recreate_service_account("default", "collector")  # same name, new UID
    await refused_after(service, token, WINDOW + 5)
    # A token minted for the new account is accepted.
    assert (await reason_of(service, service.token(pod="fresh-pod")))[0] == 200


async def test_open_websocket_closed_when_revoked(
        service: RunningService, devcluster: DevCluster) -> None:
    token = service.token(pod=POD)
    url = service.base_url.replace("http", "ws") + "/ws/whoami"
    connection = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"Bearer {token}"}))
    await connection.read_message()  # the greeting
    await confirmations_done(service)
    revocation = service.authenticator.revocation
    assert revocation is not None
    assert revocation.watched() == 1
    devcluster.delete_pod("default", POD)
    # No request uses the token: the open connection is its use (one sweep per window).
    message = await asyncio.wait_for(connection.read_message(), WINDOW + 5)
    while message is not None:
        message = await asyncio.wait_for(connection.read_message(), 5)
    assert (connection.close_code, connection.close_reason) == (1008, "token revoked")
    await wait_until(lambda: revocation.watched() == 0)
    assert await reason_of(service, token) == (401, "token_revoked")


async def test_confirmation_never_delays_requests(
        service: RunningService, devcluster: DevCluster) -> None:
    """A TokenReview that takes 2 s delays neither first sights nor cache hits."""
    devcluster.set_fault("tokenreview", Fault(delay=2.0))
    revocation = service.authenticator.revocation
    assert revocation is not None
    slowest = 0.0
    overlapped = 0
    for index in range(6):
        token = service.token(pod=f"pod-{index}")
        for _ in range(3):  # a first sight, then two cache hits
            started = time.monotonic()
            assert (await reason_of(service, token))[0] == 200
            slowest = max(slowest, time.monotonic() - started)
            overlapped += revocation.in_flight() > 0
    assert overlapped > 0  # requests were answered while confirmations were outstanding
    assert slowest < 1.0, slowest  # generous: a confirmation would have held it 2 s
    devcluster.clear_faults()


@pytest.mark.parametrize("fault", [
    Fault(status=500),
    Fault(status=429, retry_after=1),
    Fault(delay=3.0),  # past AUTH_API_TIMEOUT below: a timeout
], ids=["500", "429-retry-after", "timeout"])
async def test_outage_keeps_serving_and_says_so_once(
        start_service: StartService, devcluster: DevCluster, caplog: pytest.LogCaptureFixture,
        fault: Fault) -> None:
    running: RunningService = await start_service(AUTH_REVOCATION_WINDOW=str(WINDOW),
                                                  AUTH_API_TIMEOUT="1")
    revocation = running.authenticator.revocation
    assert revocation is not None
    devcluster.set_fault("tokenreview", fault)
    tokens = [running.token(pod=f"pod-{index}") for index in range(4)]
    peak = 0
    deadline = time.monotonic() + 3.5  # several windows of the outage
    while time.monotonic() < deadline:
        for token in tokens:
            assert (await reason_of(running, token))[0] == 200
            peak = max(peak, revocation.in_flight())
        await asyncio.sleep(0.05)
    await confirmations_done(running)
    assert revocation.state() == "unavailable"
    readiness = await running.authenticator.readiness()
    assert readiness.ready
    assert readiness.as_dict()["revocation_check"] == "unavailable"
    assert peak <= revocation.budget.capacity
    assert revocation.tracked() <= len(tokens)
    devcluster.clear_faults()
    await asyncio.sleep(1.1)  # past any Retry-After hold and the window
    for token in tokens:
        assert (await reason_of(running, token))[0] == 200
    await confirmations_done(running)
    assert revocation.state() == "available"
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith(MSG_UNAVAILABLE) for m in messages) == 1
    assert sum(m.startswith(MSG_RECOVERED) for m in messages) == 1


async def test_flood_of_distinct_tokens_is_bounded(
        start_service: StartService, devcluster: DevCluster) -> None:
    """10,000 distinct active tokens: at most one review each, in flight at most the budget,
    due times no more than the verified-token cache holds, RSS bounded."""
    running: RunningService = await start_service(AUTH_CACHE_SIZE="2000")
    authenticator = running.authenticator
    revocation = authenticator.revocation
    assert revocation is not None
    tokens = [devcluster.mint(audiences=("compass-internal",), pod=f"flood-{index}")
              for index in range(10_000)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = 0
    reviews_before = running.api_calls("tokenreview")
    for index, token in enumerate(tokens):
        await authenticator.authenticate_request([f"Bearer {token}"])
        peak = max(peak, revocation.in_flight())
        if index % 200 == 0:
            await asyncio.sleep(0)  # let confirmations run, as a server's loop would
    await confirmations_done(running)
    reviews = running.api_calls("tokenreview") - reviews_before
    rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    logging.getLogger(__name__).info("flood: %d reviews for %d tokens, peak in flight %d, "
                                     "RSS growth %d KiB", reviews, len(tokens), peak,
                                     rss_growth_kib)
    assert 0 < reviews <= len(tokens)
    assert peak <= revocation.budget.capacity
    assert revocation.tracked() <= 2000
    assert running.authenticator.review.reviewer.in_flight() == 0
    assert rss_growth_kib < 64 * 1024


async def test_telemetry_links_counts_and_revoked_outcome(
        start_service: StartService, devcluster: DevCluster, telemetry_setup: Any) -> None:
    """Each confirmation is a root span linked to the request's span (not its child); results
    and the refused requests' ``revoked`` outcome are counted."""
    setup, spans, reader = telemetry_setup
    running: RunningService = await start_service(telemetry=setup,
                                                  AUTH_REVOCATION_WINDOW=str(WINDOW))
    token = running.token(pod=POD)
    assert (await reason_of(running, token))[0] == 200
    await confirmations_done(running)
    devcluster.delete_pod("default", POD)
    await refused_after(running, token, WINDOW + 5)
    finished = list(spans.get_finished_spans())
    confirms = [s for s in finished if s.name == "auth.revocation.confirm"]
    assert [s.attributes["auth.result"] for s in confirms] == ["confirmed", "revoked"]
    first_verify = next(s for s in finished if s.name == "auth.verify")
    for confirm in confirms:
        assert confirm.parent is None  # a root: the request did not wait for it
        assert len(confirm.links) == 1
    assert confirms[0].links[0].context.span_id == first_verify.context.span_id
    reviews = [s for s in finished if s.name == "auth.tokenreview"]
    assert {s.parent.span_id for s in reviews if s.parent} == {
        s.context.span_id for s in confirms}
    points: dict[str, dict[tuple[Any, ...], Any]] = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = {
                    tuple(sorted(p.attributes.items())): getattr(p, "value", None)
                    for p in metric.data.data_points}
    assert points["auth.revocation.confirmations"] == {
        (("auth.result", "confirmed"),): 1, (("auth.result", "revoked"),): 1}
    assert points["auth.revocation.available"] == {(): 1}
    verifications = points["auth.verifications"]
    assert verifications[(("auth.method", "jwks"), ("auth.outcome", "revoked"),
                          ("auth.reason", "token_revoked"))] == 1


async def test_tokens_without_kubernetes_claims_are_never_confirmed(
        service: RunningService) -> None:
    """An identity that is not a service-account token's (another issuer's, once several are
    accepted) is not sent to TokenReview: its refusal would not mean revocation."""
    revocation = service.authenticator.revocation
    assert revocation is not None
    token = service.token(pod=POD)
    identity = await service.authenticator.authenticate_request([f"Bearer {token}"])
    await confirmations_done(service)
    reviews = service.api_calls("tokenreview")
    foreign = dataclasses.replace(identity, claims=MappingProxyType({"iss": "https://idp"}))
    bearer = read_bearer([f"Bearer {service.token(pod='another')}"],
                         service.authenticator._hasher)
    assert isinstance(bearer, Bearer)
    for _ in range(3):
        revocation.use(bearer, foreign)
    assert revocation.in_flight() == 0
    await asyncio.sleep(0.2)
    assert service.api_calls("tokenreview") == reviews


async def test_revoked_token_leaves_the_authorization_decisions(
        start_service: StartService, devcluster: DevCluster) -> None:
    """The caller's cached SubjectAccessReview decisions for the revoked token are dropped;
    another token's stay."""
    devcluster.load_rbac(RBAC)
    running: RunningService = await start_service(AUTH_REQUIRED_ACCESS=WHOAMI_CHECK,
                                                  AUTH_REVOCATION_WINDOW=str(WINDOW))
    token, other = running.token(pod=POD), running.token(pod="other-pod")
    for each in (token, other):
        assert (await reason_of(running, each))[0] == 200
    await confirmations_done(running)
    decisions = running.authenticator.authorizer.reviewer
    assert decisions.cache_size() == 2  # one per token: the credential id is in the key
    devcluster.delete_pod("default", POD)
    await refused_after(running, token, WINDOW + 5)
    assert decisions.cache_size() == 1
    assert (await reason_of(running, other))[0] == 200
