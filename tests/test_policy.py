"""Kubernetes-aware policy options (issue 5), as a table over tokens minted by the emulator.

Each option is off by default; the default policy accepts every token of this table.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from compass_auth.core import errors
from compass_auth.core.bearer import fingerprint
from compass_auth.core.identity import Identity
from compass_auth.core.keyset import KeySet
from compass_auth.core.verifier import verify_local
from compass_auth.testing import DevCluster
from compass_auth.verification.factory import verification_policy
from compass_auth.verification.stale import MSG_STALE, StaleTokenLog

from .conftest import AUDIENCE
from .helpers import POLICY, mint, settings_from

YEAR = 365 * 86400
#: What the kubelet asks for; the API server stretches it to a year and sets warnafter.
KUBELET_SECONDS = 3607


def fresh_extended(c: DevCluster) -> str:
    return mint(c, lifetime=YEAR, warnafter=KUBELET_SECONDS)


def stale_extended(c: DevCluster) -> str:
    # Issued 2 hours ago: past iat + 3607, far from exp.
    return mint(c, lifetime=YEAR, warnafter=KUBELET_SECONDS, issued_at=int(time.time()) - 7200)


Factory = Callable[[DevCluster], str]
CASES: list[tuple[str, dict[str, Any], Factory, type[errors.AuthError] | None]] = [
    # name, policy options, token, expected
    ("default accepts a service-account-only token", {}, lambda c: mint(c, pod=None, node=None),
     None),
    ("default accepts a year-long token", {}, fresh_extended, None),
    ("default accepts a stale token", {}, stale_extended, None),
    ("pod-bound: pod token", {"require_pod_bound": True}, mint, None),
    ("pod-bound: service-account-only token", {"require_pod_bound": True},
     lambda c: mint(c, pod=None, node=None), errors.NotPodBound),
    ("pod-bound: node-bound token", {"require_pod_bound": True},
     lambda c: mint(c, pod=None, node="kind-worker"), errors.NotPodBound),
    ("max lifetime: one hour under a day", {"max_token_lifetime": 86400}, mint, None),
    ("max lifetime: exactly the limit", {"max_token_lifetime": 3600}, mint, None),
    ("max lifetime: one second over", {"max_token_lifetime": 3599}, mint,
     errors.LifetimeTooLong),
    ("max lifetime: year-long extended token", {"max_token_lifetime": 86400}, fresh_extended,
     errors.LifetimeTooLong),
    ("stale reject: past warnafter", {"stale_tokens": "reject"}, stale_extended,
     errors.StaleToken),
    ("stale reject: before warnafter", {"stale_tokens": "reject"}, fresh_extended, None),
    ("stale reject: no warnafter at all", {"stale_tokens": "reject"}, mint, None),
    ("stale warn: accepted", {"stale_tokens": "warn"}, stale_extended, None),
    ("warnafter of the wrong type", {},
     lambda c: mint(c, claims_override={"kubernetes.io": {
         "namespace": "default", "serviceaccount": {"name": "collector", "uid": "u"},
         "warnafter": "soon"}}), errors.MalformedToken),
    ("issuer check on: foreign issuer", {},
     lambda c: mint(c, issuer="https://oidc.example.com/cluster"), errors.IssuerMismatch),
    ("issuer check skipped: foreign issuer", {"insecure_skip_issuer_check": True},
     lambda c: mint(c, issuer="https://oidc.example.com/cluster"), None),
    ("issuer check skipped: legacy token still refused", {"insecure_skip_issuer_check": True},
     lambda c: c.mint_legacy(), errors.LegacyToken),
]


@pytest.mark.parametrize(("name", "options", "factory", "expected"), CASES,
                         ids=[case[0] for case in CASES])
def test_policy_options(
    name: str,
    options: dict[str, Any],
    factory: Factory,
    expected: type[errors.AuthError] | None,
    cluster: DevCluster,
    keys: KeySet,
) -> None:
    policy = dataclasses.replace(POLICY, **options)
    token = factory(cluster)
    if expected is None:
        assert verify_local(token, keys, policy, time.time()).subject.endswith(":collector")
    else:
        with pytest.raises(expected) as caught:
            verify_local(token, keys, policy, time.time())
        assert type(caught.value) is expected


def test_identity_exposes_warnafter_and_staleness(
    cluster: DevCluster, keys: KeySet
) -> None:
    fresh = verify_local(fresh_extended(cluster), keys, POLICY, time.time())
    assert fresh.warn_after == fresh.issued_at + KUBELET_SECONDS  # type: ignore[operator]
    assert fresh.stale is False
    stale = verify_local(stale_extended(cluster), keys, POLICY, time.time())
    assert stale.stale is True
    plain = verify_local(mint(cluster), keys, POLICY, time.time())
    assert (plain.warn_after, plain.stale) == (None, False)


def test_error_texts_name_both_sides(cluster: DevCluster, keys: KeySet) -> None:
    policy = dataclasses.replace(POLICY, max_token_lifetime=86400)
    with pytest.raises(errors.LifetimeTooLong) as caught:
        verify_local(fresh_extended(cluster), keys, policy, time.time())
    assert "expected at most 86400s" in caught.value.detail
    assert f"got {YEAR}s" in caught.value.detail


def test_stale_tokens_are_logged_once_each_by_fingerprint(
    cluster: DevCluster, keys: KeySet, caplog: pytest.LogCaptureFixture
) -> None:
    policy = verification_policy(
        settings_from({"AUTH_STALE_TOKENS": "warn"}))
    first, second = stale_extended(cluster), stale_extended(cluster)
    log = StaleTokenLog()  # what the authenticator calls for each accepted stale token
    with caplog.at_level(logging.WARNING, logger="compass_auth.verification.stale"):
        for token in (first, first, first, second):
            identity = verify_local(token, keys, policy, time.time())
            assert identity.stale
            log(identity, token)
    records = [r for r in caplog.records if r.getMessage().startswith(MSG_STALE)]
    assert len(records) == 2
    assert records[0].levelno == logging.WARNING
    assert {getattr(r, "token_fp", None) for r in records} == {
        fingerprint(first), fingerprint(second)}
    text = "\n".join(str(r.__dict__) for r in caplog.records)
    assert first not in text
    assert second not in text


def test_policy_from_settings_carries_every_option() -> None:
    settings = settings_from({
        "AUTH_SKIP_ISSUER_CHECK": "true", "AUTH_REQUIRE_POD_BOUND": "true",
        "AUTH_MAX_TOKEN_LIFETIME": "7200", "AUTH_STALE_TOKENS": "reject",
        "AUTH_ISSUER": "https://a.example", "AUTH_AUDIENCE": "reports",
    })
    policy = verification_policy(settings)
    assert policy.audience == "reports"
    assert policy.issuers == ("https://a.example",)
    assert policy.insecure_skip_issuer_check is True
    assert policy.require_pod_bound is True
    assert policy.max_token_lifetime == 7200
    assert policy.stale_tokens == "reject"
    assert policy.accepted_issuers("https://discovered") == ()
    default = verification_policy(settings_from({}))
    assert default.accepted_issuers("https://discovered") == ("https://discovered",)


def test_identity_defaults_keep_other_constructors_working() -> None:
    identity = Identity.from_token_review(
        {"username": "system:serviceaccount:default:collector"}, (AUDIENCE,), None)
    assert (identity.warn_after, identity.stale) == (None, False)
