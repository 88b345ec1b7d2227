"""The example service in a (pretend) pod, and the Kubernetes-aware options over real HTTP."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from compass_auth.core.bearer import fingerprint
from compass_auth.verification.stale import MSG_STALE

from .conftest import COLLECTOR, StartService, log_text

YEAR = 365 * 86400


async def test_in_cluster_settings_from_a_service_account_folder(
    start_service: StartService,
) -> None:
    running = await start_service(in_cluster=True)
    sa_dir = Path(running.environ["AUTH_SERVICEACCOUNT_DIR"])
    assert (sa_dir / "..data").is_symlink()  # the kubelet layout
    response = await running.get(token=running.token())
    assert response.code == 200, response.body
    assert json.loads(response.body)["subject"] == COLLECTOR
    ready = await running.get("/readyz")
    assert json.loads(ready.body)["ready"] is True
    # Every API-server call carried the folder's token (not a kubeconfig's).
    own = fingerprint((sa_dir / "token").read_text())
    seen = {r.headers_subset["Authorization-Fingerprint"] for r in running.cluster.request_log}
    assert seen == {own}


@pytest.mark.parametrize(
    ("env", "mint_kwargs", "reason"),
    [
        ({"AUTH_REQUIRE_POD_BOUND": "true"}, {"pod": None, "node": None}, "not_pod_bound"),
        ({"AUTH_REQUIRE_POD_BOUND": "true"}, {"pod": None, "node": "kind-worker"},
         "not_pod_bound"),
        ({"AUTH_MAX_TOKEN_LIFETIME": "86400"}, {"lifetime": YEAR, "warnafter": 3607},
         "lifetime_too_long"),
        ({"AUTH_STALE_TOKENS": "reject"},
         {"lifetime": YEAR, "warnafter": 3607, "issued_at": int(time.time()) - 7200},
         "stale_token"),
    ],
    ids=["service-account-only", "node-bound", "year-long", "stale"],
)
async def test_policy_refusals_over_http(
    start_service: StartService, env: dict[str, str], mint_kwargs: dict[str, Any], reason: str
) -> None:
    running = await start_service(**env)
    refused = await running.get(token=running.token(**mint_kwargs))
    assert refused.code == 401
    assert json.loads(refused.body)["reason"] == reason
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    # The same service accepts an ordinary pod-bound one-hour token.
    assert (await running.get(token=running.token())).code == 200


async def test_options_are_off_by_default(start_service: StartService) -> None:
    running = await start_service()
    for kwargs in ({"pod": None, "node": None}, {"lifetime": YEAR, "warnafter": 3607},
                   {"lifetime": YEAR, "warnafter": 3607, "issued_at": int(time.time()) - 7200}):
        assert (await running.get(token=running.token(**kwargs))).code == 200, kwargs


async def test_stale_tokens_are_accepted_with_one_warning_each(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_service(AUTH_STALE_TOKENS="warn")
    stale = running.token(lifetime=YEAR, warnafter=3607, issued_at=int(time.time()) - 7200)
    for _ in range(3):
        assert (await running.get(token=stale)).code == 200
    warnings = [r for r in caplog.records if r.getMessage().startswith(MSG_STALE)]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    text = log_text(caplog)
    assert f"token_fp={fingerprint(stale)}" in text
    assert stale not in text


async def test_skipping_the_issuer_check_accepts_any_issuer_and_says_so(
    start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_service(AUTH_SKIP_ISSUER_CHECK="true")
    foreign = running.token(issuer="https://somewhere-else.example")
    assert (await running.get(token=foreign)).code == 200
    assert "INSECURE: issuer check disabled" in log_text(caplog)
    legacy = running.cluster.mint_legacy()
    assert json.loads((await running.get(token=legacy)).body)["reason"] == "legacy_token"
