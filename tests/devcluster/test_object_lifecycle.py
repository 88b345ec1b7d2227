"""Deleting, gracefully deleting and recreating the objects tokens are bound to, as tests of
revocation use them: TokenReview over TLS, the emulator's clock advanced instead of waiting.

The rule (upstream ``pkg/serviceaccount/claims.go``, ported case by case in
test_claims_upstream.py): refused once the object is gone, has another UID, or its
``deletionTimestamp`` is more than 60 s in the past. Margins of 5 s keep these exact on a slow
machine (the deletion is stamped in whole seconds).
"""

from __future__ import annotations

from typing import Any

import pytest

from compass_auth.testing import DevCluster

from .kubehttp import review

AUDIENCES = ["compass-internal"]


def _status(cluster: DevCluster, token: str) -> dict[str, Any]:
    answer = review(cluster, token, AUDIENCES)
    assert answer.status == 201
    status: dict[str, Any] = answer.json()["status"]
    return status


def _accepted(cluster: DevCluster, token: str) -> bool:
    return _status(cluster, token).get("authenticated") is True


def _refused_with(cluster: DevCluster, token: str) -> str:
    status = _status(cluster, token)
    assert "authenticated" not in status, status
    error: str = status["error"]
    return error


def test_graceful_pod_deletion_is_refused_60_s_after_the_deletion_timestamp(
    devcluster: DevCluster,
) -> None:
    token = devcluster.mint(pod="graceful-0")
    devcluster.delete_pod("default", "graceful-0", grace_period=30)
    assert _accepted(devcluster, token)  # terminating, still there
    devcluster.advance_clock(30 + 60 - 5)
    assert _accepted(devcluster, token)  # within the leeway after deletionTimestamp
    devcluster.advance_clock(10)
    assert _refused_with(devcluster, token) == (
        "[invalid bearer token, service account token has been invalidated]"
    )


def test_removal_after_a_graceful_deletion_refuses_at_once(devcluster: DevCluster) -> None:
    token = devcluster.mint(pod="graceful-1")
    devcluster.delete_pod("default", "graceful-1", grace_period=30)
    assert _accepted(devcluster, token)
    devcluster.delete_pod("default", "graceful-1")  # the kubelet's final delete
    assert "service account token has been invalidated" in _refused_with(devcluster, token)


def test_a_second_deletion_only_brings_the_timestamp_closer(devcluster: DevCluster) -> None:
    token = devcluster.mint(pod="graceful-2")
    devcluster.delete_pod("default", "graceful-2", grace_period=0)
    devcluster.delete_pod("default", "graceful-2", grace_period=3600)  # may not postpone it
    devcluster.advance_clock(65)
    assert "has been invalidated" in _refused_with(devcluster, token)


def test_service_account_held_by_a_finalizer(devcluster: DevCluster) -> None:
    token = devcluster.mint(service_account="finalized", pod=None, node=None)
    devcluster.delete_service_account("default", "finalized", grace_period=0)
    devcluster.advance_clock(55)
    assert _accepted(devcluster, token)
    devcluster.advance_clock(10)
    assert _refused_with(devcluster, token) == (
        "[invalid bearer token, service account default/finalized has been deleted]"
    )


def test_service_account_deleted_and_recreated_under_the_same_name(
    devcluster: DevCluster,
) -> None:
    old = devcluster.mint(service_account="reborn")
    old_uid = devcluster.service_account_uid("default", "reborn")
    new_uid = devcluster.recreate_service_account("default", "reborn")
    assert new_uid != old_uid
    assert devcluster.service_account_uid("default", "reborn") == new_uid
    assert _refused_with(devcluster, old) == (
        f"[invalid bearer token, service account UID ({new_uid}) does not match claim "
        f"({old_uid})]"
    )
    assert _accepted(devcluster, devcluster.mint(service_account="reborn"))


def test_pod_recreated_under_the_same_name(devcluster: DevCluster) -> None:
    old = devcluster.mint(pod="web-0")
    old_uid = devcluster.pod_uid("default", "web-0")
    new_uid = devcluster.recreate_pod("default", "web-0")
    assert _refused_with(devcluster, old) == (
        f"[invalid bearer token, pod UID ({new_uid}) does not match service account pod ref "
        f"claim ({old_uid})]"
    )
    assert _accepted(devcluster, devcluster.mint(pod="web-0"))


def test_node_bound_token_and_its_node(devcluster: DevCluster) -> None:
    node_only = devcluster.mint(pod=None, node="drained-node")
    pod_bound = devcluster.mint(pod="on-drained-node", node="drained-node")
    devcluster.delete_node("drained-node", grace_period=0)
    devcluster.advance_clock(65)
    assert "has been invalidated" in _refused_with(devcluster, node_only)
    # On a pod-bound token the node is information only: the pod decides.
    assert _accepted(devcluster, pod_bound)


def test_reset_finishes_graceful_deletions_and_rewinds_the_clock(
    devcluster: DevCluster,
) -> None:
    token = devcluster.mint(pod="graceful-3")
    devcluster.delete_pod("default", "graceful-3", grace_period=30)
    devcluster.advance_clock(10)
    assert devcluster.clock_offset == 10
    devcluster.reset()
    assert devcluster.clock_offset == 0
    assert "has been invalidated" in _refused_with(devcluster, token)  # removed, not pending
    assert _accepted(devcluster, devcluster.mint(pod="graceful-3"))  # a new pod of that name


def test_the_clock_only_moves_forward(devcluster: DevCluster) -> None:
    with pytest.raises(ValueError, match="only moves forward"):
        devcluster.advance_clock(-1)
    with pytest.raises(KeyError):
        devcluster.delete_pod("default", "never-created")
