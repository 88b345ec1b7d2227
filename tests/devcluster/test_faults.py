"""Fault switches: every Fault field, endpoint selection, counters and the request log."""

from __future__ import annotations

import hashlib
import http.client
import threading
import time

import pytest

from compass_auth.testing import DevCluster, Fault

from .kubehttp import Response, call, review, tls_context

JWKS = "/openid/v1/jwks"


def _jwks(cluster: DevCluster, timeout: float = 5.0) -> Response:
    return call(cluster, JWKS, token=cluster.service_token(), timeout=timeout)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (404, "NotFound"),
        (403, "Forbidden"),
        (401, "Unauthorized"),
    ],
)
def test_status_answers_with_a_status_object(
    devcluster: DevCluster, status: int, reason: str
) -> None:
    devcluster.set_fault("jwks", Fault(status=status))
    answer = _jwks(devcluster)
    assert answer.status == status
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["kind"] == "Status"
    assert answer.json()["reason"] == reason
    assert answer.json()["code"] == status


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after(devcluster: DevCluster, status: int) -> None:
    devcluster.set_fault("discovery", Fault(status=status, retry_after=7))
    answer = call(
        devcluster,
        "/.well-known/openid-configuration",
        token=devcluster.service_token(),
    )
    assert answer.status == status
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["details"]["retryAfterSeconds"] == 7


def test_delay_does_not_block_other_requests(devcluster: DevCluster) -> None:
    devcluster.set_fault("jwks", Fault(delay=1.0))
    slow: dict[str, float] = {}

    def fetch() -> None:
        start = time.monotonic()
        slow["status"] = _jwks(devcluster).status
        slow["elapsed"] = time.monotonic() - start

    worker = threading.Thread(target=fetch)
    worker.start()
    time.sleep(0.1)
    start = time.monotonic()
    assert call(devcluster, "/version").status == 200
    assert time.monotonic() - start < 0.7  # served while the JWKS request sleeps
    worker.join(5)
    assert slow["status"] == 200
    assert slow["elapsed"] >= 1.0


def test_delay_beyond_client_timeout(devcluster: DevCluster) -> None:
    devcluster.set_fault("jwks", Fault(delay=1.0, times=1))
    with pytest.raises(TimeoutError):
        _jwks(devcluster, timeout=0.3)


def test_drop_closes_without_answer(devcluster: DevCluster) -> None:
    devcluster.set_fault("tokenreview", Fault(drop=True))
    with pytest.raises(http.client.RemoteDisconnected):
        review(devcluster, devcluster.mint())
    assert devcluster.request_log[-1].status == 0
    assert devcluster.request_count("tokenreview") == 1


def test_body_replaces_the_answer(devcluster: DevCluster) -> None:
    devcluster.set_fault("jwks", Fault(body=b"not json"))
    answer = _jwks(devcluster)
    assert (answer.status, answer.body) == (200, b"not json")
    assert answer.headers["Content-Type"] == "application/jwk-set+json"
    huge = b"{" + b" " * 5_000_000 + b"}"
    devcluster.set_fault("jwks", Fault(body=huge))
    assert len(_jwks(devcluster).body) == len(huge)


def test_redirect(devcluster: DevCluster) -> None:
    devcluster.set_fault(
        "jwks", Fault(status=302, location="https://172.18.0.2:6443/openid/v1/jwks")
    )
    answer = _jwks(devcluster)
    assert answer.status == 302
    assert answer.headers["Location"] == "https://172.18.0.2:6443/openid/v1/jwks"


def test_times_then_clears_itself(devcluster: DevCluster) -> None:
    devcluster.set_fault("jwks", Fault(status=503, times=2))
    assert [_jwks(devcluster).status for _ in range(3)] == [503, 503, 200]
    assert devcluster.request_count("jwks") == 3


def test_all_covers_every_path_and_specific_wins(devcluster: DevCluster) -> None:
    devcluster.set_fault("all", Fault(status=503))
    devcluster.set_fault("jwks", Fault(status=500))
    assert call(devcluster, "/version").status == 503
    assert _jwks(devcluster).status == 500
    devcluster.clear_faults()
    assert _jwks(devcluster).status == 200


def test_reset_clears_faults_and_counters(devcluster: DevCluster) -> None:
    devcluster.set_fault("tokenrequest", Fault(status=500))
    call(
        devcluster,
        "/api/v1/namespaces/default/serviceaccounts/x/token",
        token=devcluster.admin_token,
        body={},
    )
    assert devcluster.request_count("tokenrequest") == 1
    devcluster.reset()
    assert (
        devcluster.request_count("tokenrequest") == 0
    )
    assert (
        devcluster.request_log == []
    )
    answer = call(
        devcluster,
        "/api/v1/namespaces/compass-system/serviceaccounts/compass-auth/token",
        token=devcluster.admin_token,
        body={},
    )
    assert answer.status == 201


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="times"):
        Fault(times=0)
    with pytest.raises(ValueError, match="delay"):
        Fault(delay=-1)
    with pytest.raises(ValueError, match="unknown endpoint"):
        DevCluster().set_fault("everything", Fault())


def test_request_log_has_fingerprints_never_tokens(devcluster: DevCluster) -> None:
    token = devcluster.service_token()
    connection = http.client.HTTPSConnection(
        "127.0.0.1", devcluster.port, context=tls_context(devcluster)
    )
    connection.request(
        "GET",
        JWKS,
        headers={"Authorization": f"Bearer {token}", "Cache-Control": "no-cache"},
    )
    assert connection.getresponse().status == 200
    connection.close()
    [record] = devcluster.request_log
    assert (record.endpoint, record.method, record.path, record.status) == (
        "jwks",
        "GET",
        JWKS,
        200,
    )
    assert record.headers_subset == {
        "Cache-Control": "no-cache",
        "Authorization-Fingerprint": hashlib.sha256(token.encode()).hexdigest()[:12],
    }
    assert token not in repr(devcluster.request_log)
    assert abs(record.time - time.time()) < 5
