"""TokenReview fallback against the emulator: when it is used, caching, protection, recovery."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from compass_auth.testing import DevCluster, Fault

from .conftest import AUDIENCE, COLLECTOR, RunningService, StartService, log_text, wait_until
from .helpers import body


@pytest.fixture
async def in_fallback(devcluster: DevCluster, start_service: StartService) -> RunningService:
    """The service after discovery gave up (403 is not retried), TokenReview working."""
    devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_REDISCOVERY_INTERVAL="0.3")
    assert running.authenticator.active_path() == "tokenreview"
    return running


async def test_start_with_discovery_down_serves_through_tokenreview(
    devcluster: DevCluster, start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    devcluster.set_fault("discovery", Fault(status=503))  # retried at start: 1 s, 2 s, 4 s
    running: RunningService = await start_service(wait=False)
    response = await running.get(token=running.token())
    assert response.code == 200
    assert body(response)["verified_by"] == "tokenreview"
    assert body(response)["subject"] == COLLECTOR
    ready = await running.get("/readyz")
    assert ready.code == 200
    assert body(ready)["path"] == "tokenreview"
    assert "verifying tokens with TokenReview" in caplog.text


async def test_recovery_switches_back_to_local_verification(
    in_fallback: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    running = in_fallback
    assert body(await running.get(token=running.token()))["verified_by"] == "tokenreview"
    running.cluster.clear_faults()  # discovery works again
    await wait_until(lambda: running.authenticator.active_path() == "jwks", timeout=3)
    response = await running.get(token=running.token())
    assert body(response)["verified_by"] == "jwks"
    assert body(await running.get("/readyz"))["path"] == "jwks"
    assert "discovery recovered; verifying tokens locally again" in caplog.text


async def test_no_way_left_is_503_and_not_ready(in_fallback: RunningService) -> None:
    running = in_fallback
    running.cluster.set_fault("tokenreview", Fault(status=503))
    response = await running.get(token=running.token())
    assert response.code == 503
    assert response.headers["Retry-After"] == "2"
    assert body(response)["reason"] == "tokenreview_unavailable"
    ready = await running.get("/readyz")
    assert ready.code == 503
    assert body(ready)["path"] == "none"


async def test_concurrent_requests_with_one_token_cost_one_review(
    in_fallback: RunningService,
) -> None:
    running = in_fallback
    running.cluster.set_fault("tokenreview", Fault(delay=0.3))
    before = running.api_calls("tokenreview")
    token = running.token()
    responses = await asyncio.gather(*(running.get(token=token) for _ in range(100)))
    assert {response.code for response in responses} == {200}
    assert running.api_calls("tokenreview") - before == 1


async def test_a_rejected_token_costs_one_review_per_negative_ttl(
    devcluster: DevCluster, start_service: StartService
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_TOKENREVIEW_NEGATIVE_TTL="0.5")
    token = running.token()
    devcluster.delete_pod("default", "collector-6c9d8b7f5-x2k9q")  # the API server now refuses it
    before = running.api_calls("tokenreview")
    for _ in range(20):
        response = await running.get(token=token)
        assert (response.code, body(response)["reason"]) == (401, "review_rejected")
    assert running.api_calls("tokenreview") - before == 1
    await asyncio.sleep(0.6)
    await running.get(token=token)
    assert running.api_calls("tokenreview") - before == 2


async def test_local_checks_still_run_before_any_review(in_fallback: RunningService) -> None:
    running = in_fallback
    before = running.api_calls("tokenreview")
    expired = running.token(issued_at=int(time.time()) - 7200, lifetime=3600)
    wrong_audience = running.token(audiences=("vault",))
    for token, reason in [(expired, "expired"), (wrong_audience, "audience_mismatch"),
                          ("garbage.token.here", "malformed")]:
        response = await running.get(token=token)
        assert (response.code, body(response)["reason"]) == (401, reason)
    assert running.api_calls("tokenreview") == before


@pytest.mark.parametrize(
    ("name", "fault", "cause"),
    [
        ("RBAC", None, "system:auth-delegator"),
        ("timeout", Fault(delay=3), "TimeoutError"),
        ("server error", Fault(status=500), "answered 500"),
        ("connection dropped", Fault(drop=True), "TokenReview call failed"),
    ],
)
async def test_tokenreview_failures_are_503_with_the_cause_logged(
    devcluster: DevCluster, start_service: StartService, caplog: pytest.LogCaptureFixture,
    name: str, fault: Fault | None, cause: str,
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_API_TIMEOUT="1")
    if fault is None:
        devcluster.set_tokenreview_allowed(False)
    else:
        devcluster.set_fault("tokenreview", fault)
    token = running.token()
    response = await running.get(token=token)
    assert response.code == 503
    assert body(response)["reason"] == "tokenreview_unavailable"
    errors = [r for r in caplog.records
              if r.levelname == "ERROR" and r.getMessage().startswith("token verification failed")]
    assert len(errors) == 1
    assert cause in errors[0].error  # type: ignore[attr-defined]
    assert token not in log_text(caplog)
    # Infrastructure errors are never cached: once the API server answers, the token passes.
    devcluster.reset()
    devcluster.set_fault("discovery", Fault(status=403))
    assert (await running.get(token=token)).code == 200


async def test_the_cap_on_outstanding_reviews_gives_503(
    devcluster: DevCluster, start_service: StartService
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_TOKENREVIEW_MAX_IN_FLIGHT="2")
    devcluster.set_fault("tokenreview", Fault(delay=0.5))
    # Six callers: the total cap sheds them, not one caller's share (test_review_budgets.py).
    tokens = [running.token(service_account=f"caller-{index}", pod=None, node=None)
              for index in range(6)]
    before = running.api_calls("tokenreview")
    responses = await asyncio.gather(*(running.get(token=token) for token in tokens))
    codes = sorted(response.code for response in responses)
    assert codes == [200, 200, 503, 503, 503, 503]
    assert running.api_calls("tokenreview") - before == 2


async def test_review_identity_has_the_kubernetes_fields(in_fallback: RunningService) -> None:
    running = in_fallback
    identity = await running.authenticator.authenticate_request(
        [f"Bearer {running.token()}"]
    )
    cluster = running.cluster
    assert identity.verified_by == "tokenreview"
    assert identity.namespace == "default"
    assert identity.service_account == "collector"
    assert identity.service_account_uid == cluster.service_account_uid("default", "collector")
    assert identity.pod_name == "collector-6c9d8b7f5-x2k9q"
    assert identity.pod_uid == cluster.pod_uid("default", "collector-6c9d8b7f5-x2k9q")
    assert identity.node_name == "kind-worker"
    assert identity.audiences == (AUDIENCE,)
    assert identity.token_id is not None
    assert len(identity.token_id) == 36
    assert identity.expires_at is not None
    assert identity.expires_at > time.time()


async def test_the_subject_allow_list_applies_to_reviewed_tokens(
    devcluster: DevCluster, start_service: StartService
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_ALLOWED_SUBJECTS=COLLECTOR)
    token = running.token(service_account="intruder")
    for _ in range(2):  # the second answer comes from the cache: still forbidden
        response = await running.get(token=token)
        assert (response.code, body(response)["reason"]) == (403, "subject_not_allowed")


async def test_unknown_kid_with_a_failing_jwks_goes_to_tokenreview(
    running: RunningService,
) -> None:
    cluster = running.cluster
    new_kid = cluster.add_key("EC")
    cluster.set_fault("jwks", Fault(status=503))  # the refetch for the new kid fails
    response = await running.get(token=running.token(key_id=new_kid))
    assert response.code == 200
    assert body(response)["verified_by"] == "tokenreview"
    # When the JWKS answers, an unknown kid is a plain 401, no review.
    cluster.clear_faults()
    await running.authenticator.local.keys.refresh()
    before = running.api_calls("tokenreview")
    response = await running.get(token=running.token(header_override={"kid": "unknown"}))
    assert (response.code, body(response)["reason"]) == (401, "unknown_key")
    assert running.api_calls("tokenreview") == before


async def test_review_mode_notices_a_deleted_pod_after_the_cache_ttl(
    devcluster: DevCluster, start_service: StartService
) -> None:
    running: RunningService = await start_service(AUTH_MODE="review",
                                                  AUTH_TOKENREVIEW_CACHE_TTL="0.5")
    token = running.token(pod="collector-short-lived")
    first = await running.get(token=token)
    assert (first.code, body(first)["verified_by"]) == (200, "tokenreview")
    devcluster.delete_pod("default", "collector-short-lived")
    assert (await running.get(token=token)).code == 200  # cached answer
    await asyncio.sleep(0.6)
    revoked = await running.get(token=token)
    assert (revoked.code, body(revoked)["reason"]) == (401, "review_rejected")
    # Local checks still come first in review mode: no review for an expired token.
    before = running.api_calls("tokenreview")
    expired = running.token(issued_at=int(time.time()) - 7200, lifetime=3600)
    assert body(await running.get(token=expired))["reason"] == "expired"
    assert running.api_calls("tokenreview") == before


async def test_cached_answers_never_outlive_the_token(
    devcluster: DevCluster, start_service: StartService
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_CLOCK_SKEW="0")
    # Lifetime 600 s minted 598 s ago: valid for 2 more seconds, cached at most that long.
    token = running.token(issued_at=int(time.time()) - 598, lifetime=600)
    assert (await running.get(token=token)).code == 200
    await asyncio.sleep(2.5)
    response = await running.get(token=token)
    assert (response.code, body(response)["reason"]) == (401, "expired")


async def test_cache_keys_are_hmacs_not_tokens(in_fallback: RunningService) -> None:
    running = in_fallback
    token = running.token()
    await running.get(token=token)
    reviewer = running.authenticator.review.reviewer
    keys = reviewer.cache_keys()
    assert len(keys) == 1
    assert token.encode() not in keys[0]
    assert len(keys[0]) == 32


async def test_policy_applies_to_cached_review_answers(
    devcluster: DevCluster, start_service: StartService
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_REQUIRE_POD_BOUND="true")
    podless = running.token(pod=None, node=None)
    for _ in range(3):  # the API server accepted it once; the cached answer stays refused here
        response = await running.get(token=podless)
        assert (response.code, body(response)["reason"]) == (401, "not_pod_bound")
    assert running.api_calls("tokenreview") == 1
    pod_bound = running.token()
    for _ in range(2):
        response = await running.get(token=pod_bound)
        assert (response.code, body(response)["verified_by"]) == (200, "tokenreview")


@pytest.mark.parametrize("audiences", [None, [], ["https://kubernetes.default.svc"]],
                         ids=["absent", "empty", "the API server's"])
async def test_a_review_that_does_not_return_our_audience_is_refused(
    in_fallback: RunningService, audiences: list[str] | None,
) -> None:
    """An authenticated answer whose status.audiences lacks ours vouches for the token against
    another audience: with none at all, the API server's own (TokenReviewStatus,
    authentication.k8s.io/v1). A valid token of the cluster must not be let in on it."""
    running = in_fallback
    token = running.token()
    status: dict[str, object] = {
        "authenticated": True,
        "user": {"username": COLLECTOR, "uid": "u",
                 "groups": ["system:serviceaccounts", "system:authenticated"]}}
    if audiences is not None:
        status["audiences"] = audiences
    answer = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": "", "audiences": [AUDIENCE]}, "status": status}
    running.cluster.set_fault("tokenreview", Fault(status=201, body=json.dumps(answer).encode()))
    response = await running.get(token=token)
    assert response.code == 401, response.body
    assert body(response)["reason"] == "review_rejected"
