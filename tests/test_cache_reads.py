"""One read per cache per request, one decode per token (issue 20, item 5).

Requests go over real HTTP to the example service against the emulator; what is counted is how
often each of the library's caches is read and how often a token's payload is decoded, by
wrapping those two functions of the library itself. On main before issue 20 a first sight read
the verified-token cache twice and, in ``auto`` mode with a usable key set, the TokenReview cache
once; a token with an unknown kid was decoded twice (three times with the fallback); a request
with required access read the decision cache twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import compass_auth.core.verifier as verifier_module
from compass_auth.core.cache import VerdictCache
from compass_auth.testing import DevCluster, Fault

from .conftest import RunningService, StartService
from .helpers import RBAC, WHOAMI_CHECK

Reads = Counter[str]


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each payload the verifier decodes (the segment's text), in order."""
    decoded: list[str] = []
    original = verifier_module.decode_segment_bytes

    def counting(segment: str, name: str) -> tuple[bytes, dict[str, Any]]:
        if name == "payload":
            decoded.append(segment)
        return original(segment, name)

    monkeypatch.setattr(verifier_module, "decode_segment_bytes", counting)
    return decoded


def count_reads(running: RunningService, monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Reads of the service's three caches, by name (``verified``, ``tokenreview``,
    ``authorization``)."""
    authenticator = running.authenticator
    caches: dict[int, str] = {
        id(authenticator.local._verified): "verified",
        id(authenticator.review.reviewer._client._cache): "tokenreview",
        id(authenticator.authorizer.reviewer._client._cache): "authorization",
    }
    reads: Reads = Counter()
    original: Callable[..., Any] = VerdictCache.get

    def get(self: VerdictCache[Any], key: Any) -> Any:
        name = caches.get(id(self))
        if name is not None:
            reads[name] += 1
        return original(self, key)

    monkeypatch.setattr(VerdictCache, "get", get)
    return reads


async def test_auto_mode_with_keys_reads_the_verified_cache_once_and_never_tokenreview(
    running: RunningService, monkeypatch: pytest.MonkeyPatch, decodes: list[str],
) -> None:
    reads = count_reads(running, monkeypatch)
    token = running.token()
    assert (await running.get(token=token)).code == 200  # first sight
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (1, 0, 1)
    assert (await running.get(token=token)).code == 200  # from the cache
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (2, 0, 1)


async def test_an_unknown_kid_then_the_fallback_decodes_the_token_once(
    running: RunningService, monkeypatch: pytest.MonkeyPatch, decodes: list[str],
) -> None:
    """A key the service has not fetched, and the JWKS fetch for it fails: the token goes to
    TokenReview. It is decoded once, and each cache is read once."""
    reads = count_reads(running, monkeypatch)
    running.cluster.set_fault("jwks", Fault(status=500))
    running.cluster.rotate_key()
    before = running.api_calls("tokenreview")
    answer = await running.get(token=running.token())
    assert answer.code == 200
    assert running.api_calls("tokenreview") == before + 1  # it was the fallback
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (1, 1, 1)


async def test_the_fallback_reads_each_cache_once(
    devcluster: DevCluster, start_service: StartService, monkeypatch: pytest.MonkeyPatch,
    decodes: list[str],
) -> None:
    devcluster.set_fault("discovery", Fault(status=403))
    running = await start_service()
    reads = count_reads(running, monkeypatch)
    token = running.token()
    assert (await running.get(token=token)).code == 200
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (1, 1, 1)
    assert (await running.get(token=token)).code == 200  # the review's answer, cached
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (2, 2, 1)
    forged = running.token(header_override={"kid": "forged"})  # the API server refuses it
    before = running.api_calls("tokenreview")
    assert (await running.get(token=forged)).code == 401
    assert (await running.get(token=forged)).code == 401  # the rejection, cached
    assert running.api_calls("tokenreview") == before + 1
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (4, 4, 2)


async def test_review_mode_reads_the_tokenreview_cache_once(
    start_service: StartService, monkeypatch: pytest.MonkeyPatch, decodes: list[str],
) -> None:
    running = await start_service(AUTH_MODE="review")
    reads = count_reads(running, monkeypatch)
    token = running.token()
    assert (await running.get(token=token)).code == 200
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (0, 1, 1)
    assert (await running.get(token=token)).code == 200
    assert (reads["verified"], reads["tokenreview"], len(decodes)) == (0, 2, 1)


async def test_required_access_reads_the_decision_cache_once_per_check(
    devcluster: DevCluster, start_service: StartService, monkeypatch: pytest.MonkeyPatch,
) -> None:
    devcluster.load_rbac(RBAC)
    running = await start_service(AUTH_REQUIRED_ACCESS=WHOAMI_CHECK)
    reads = count_reads(running, monkeypatch)
    token = running.token()
    assert (await running.get(token=token)).code == 200  # a review
    assert reads["authorization"] == 1
    assert (await running.get(token=token)).code == 200  # the cached decision
    assert reads["authorization"] == 2
