"""Upstream's ``TestValidatePrivateClaims``, ported as data and run through real TokenReviews.

Source: kubernetes/kubernetes ``pkg/serviceaccount/claims_test.go`` (``TestValidatePrivateClaims``)
and the ``validator.Validate`` it tests, ``pkg/serviceaccount/claims.go``, as read at commit
0b0abd6c11b6103e3f00dfe46975d1494c484a11 (stored as the fork mmorel-35/kubernetes; the code
has the node binding, ServiceAccountTokenNodeBindingValidation, and ``CredentialIDForJTI`` from
``k8s.io/apiserver/pkg/authentication/token/jwt``). Every case of that test is here: the 10 fixed
ones and the 6 deletion times x 4 kinds (service account, secret, pod, node) = 34.

How a case becomes a request: the emulator runs on upstream's fixed clock (2018-01-01T00:00:00Z,
``now`` in claims_test.go) with the case's objects in a namespace of its own; the token carries
upstream's private claims (``kubernetes.io``) and its ``exp`` / ``nbf``; a TokenReview goes to the
emulator over TLS. An accepted case must come back authenticated; a refused one with exactly
``[invalid bearer token, <upstream's error>]``, the UIDs in it being the emulator's own (upstream
writes ``sauid``, ``poduid``...: the placeholders below).

Not ported, with the reason:
* ``TestClaims`` (what ``Claims()`` mints): a minting test, covered by test_minting.py.
* The ``token is bound to a Node object but the ... feature gate is disabled`` branch: upstream's
  test has no case for it and the gate is GA and locked on since 1.32; the emulator always
  validates node-bound tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from compass_auth.testing import DevCluster

from .kubehttp import review

#: claims_test.go's ``now``: ``time.Date(2018, time.January, 1, 0, 0, 0, 0, time.UTC)``.
NOW = 1514764800
UPSTREAM = "claims_test.go@0b0abd6c11b6103e3f00dfe46975d1494c484a11"
SA_DELETED = "service account {ns}/saname has been deleted"
INVALIDATED = "service account token has been invalidated"


@dataclass(frozen=True)
class Case:
    """One ``claimTestCase``: the objects the fake getter holds, the token's claims, the error.

    ``objects`` maps a kind to the deletion time of its object relative to ``NOW`` (None: not
    being deleted); a kind not in it is missing. ``refs`` are the token's bound references,
    kind -> UID claim, where ``"{kind}"`` stands for the object's real UID. ``error`` is
    upstream's ``expectErr`` with ``{ns}`` and ``{<kind>uid}`` placeholders ("" = accepted).
    """

    name: str
    objects: dict[str, int | None]
    refs: dict[str, str] = field(default_factory=lambda: {"serviceaccount": "{serviceaccount}"})
    expiry: int | None = None
    not_before: int | None = None
    error: str = ""


SA_ONLY: dict[str, int | None] = {"serviceaccount": None}
GOOD_SA = {"serviceaccount": "{serviceaccount}"}

FIXED = [
    Case("good", SA_ONLY),
    Case("expired", SA_ONLY, expiry=NOW - 1_000 * 3600,
         error="service account token has expired"),
    Case("not yet valid", SA_ONLY, not_before=NOW + 1_000 * 3600,
         error="service account token is not valid yet"),
    Case("missing serviceaccount", {}, error='serviceaccounts "saname" not found'),
    Case("missing secret", SA_ONLY, {**GOOD_SA, "secret": "{secret}"}, error=INVALIDATED),
    Case("missing pod", SA_ONLY, {**GOOD_SA, "pod": "{pod}"}, error=INVALIDATED),
    Case("missing node", SA_ONLY, {**GOOD_SA, "node": "{node}"}, error=INVALIDATED),
    Case("different uid serviceaccount", SA_ONLY, {"serviceaccount": "sauidold"},
         error="service account UID ({serviceaccountuid}) does not match claim (sauidold)"),
    Case("different uid secret", {**SA_ONLY, "secret": None}, {**GOOD_SA, "secret": "secretuidold"},
         error="secret UID ({secretuid}) does not match service account secret ref claim "
               "(secretuidold)"),
    Case("different uid pod", {**SA_ONLY, "pod": None}, {**GOOD_SA, "pod": "poduidold"},
         error="pod UID ({poduid}) does not match service account pod ref claim (poduidold)"),
]

#: ``deletionTestCases``: the deletion time relative to now, and whether it is refused.
DELETIONS = [
    ("valid", None, False),
    ("deleted now", 0, False),
    ("deleted near past", -1, False),
    ("deleted near future", 1, False),
    ("deleted now-leeway", -60, False),
    ("deleted now-leeway-1", -61, True),
]


def _deletion_cases() -> Iterator[Case]:
    for name, when, refused in DELETIONS:
        yield Case(f"{name} serviceaccount", {"serviceaccount": when},
                   error=SA_DELETED if refused else "")
        for kind in ("secret", "pod", "node"):
            yield Case(f"{name} {kind}", {**SA_ONLY, kind: when}, {**GOOD_SA, kind: f"{{{kind}}}"},
                       error=INVALIDATED if refused else "")


CASES = FIXED + list(_deletion_cases())


def test_every_upstream_case_is_ported() -> None:
    assert len(FIXED) == 10
    assert len(CASES) == 34
    assert len({case.name for case in CASES}) == 34


class FixedClock:
    """Upstream's stubbed ``now``, movable only to stamp a deletion in the past or future."""

    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fixed_cluster() -> Iterator[tuple[DevCluster, FixedClock]]:
    clock = FixedClock()
    with DevCluster(clock=clock) as cluster:
        yield cluster, clock


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _build(cluster: DevCluster, clock: FixedClock, case: Case) -> tuple[str, dict[str, str]]:
    """Create the case's objects (in namespace ``ns-<case>``) and mint its token; return the
    token and the placeholders of its expected error."""
    namespace = f"ns-{_slug(case.name)}"
    node = f"nodename-{_slug(case.name)}"
    names = {"serviceaccount": "saname", "secret": "secretname", "pod": "podname", "node": node}
    create = {"serviceaccount": lambda: cluster.service_account_uid(namespace, "saname"),
              "secret": lambda: cluster.secret_uid(namespace, "secretname"),
              "pod": lambda: cluster.pod_uid(namespace, "podname"),
              "node": lambda: cluster.node_uid(node)}
    delete = {"serviceaccount": lambda: cluster.delete_service_account(namespace, "saname", 0),
              "secret": lambda: cluster.delete_secret(namespace, "secretname", 0),
              "pod": lambda: cluster.delete_pod(namespace, "podname", 0),
              "node": lambda: cluster.delete_node(node, 0)}
    # Upstream's UIDs for objects the case leaves missing; the emulator's for the others.
    uids = {"serviceaccount": "sauid", "secret": "secretuid", "pod": "poduid", "node": "nodeuid"}
    uids.update({kind: create[kind]() for kind in case.objects})
    for kind, when in case.objects.items():
        if when is not None:
            clock.now = NOW + when  # deletionTimestamp = this instant (grace 0)
            delete[kind]()
    clock.now = NOW
    kube: dict[str, Any] = {"namespace": namespace}
    for kind, uid in case.refs.items():
        kube[kind] = {"name": names[kind], "uid": uid.format(**uids)}
    claims: dict[str, Any] = {
        "kubernetes.io": kube,
        "sub": f"system:serviceaccount:{namespace}:saname",
        # Upstream's default expiry is now itself (valid within the leeway).
        "exp": NOW if case.expiry is None else case.expiry,
    }
    if case.not_before is not None:
        claims["nbf"] = case.not_before
    # mint() makes the claim set (iss, aud, iat, jti) and signs; the override replaces sub, exp
    # and kubernetes.io whole. It mints for another account, so that the case's objects stay
    # exactly as built (mint creates the account it is asked for).
    token = cluster.mint(namespace=namespace, service_account="minter", pod=None, node=None,
                         claims_override=claims)
    placeholders = {"ns": namespace, **{f"{kind}uid": uid for kind, uid in uids.items()}}
    return token, placeholders


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_upstream_validate_case(fixed_cluster: tuple[DevCluster, FixedClock], case: Case) -> None:
    cluster, clock = fixed_cluster
    token, placeholders = _build(cluster, clock, case)
    answer = review(cluster, token, ["compass-internal"])
    assert answer.status == 201
    status = answer.json()["status"]
    if not case.error:
        assert status.get("authenticated") is True, (UPSTREAM, case.name, status)
        assert status["user"]["username"] == f"system:serviceaccount:{placeholders['ns']}:saname"
    else:
        expected = "[invalid bearer token, " + case.error.format(**placeholders) + "]"
        assert status == {"user": {}, "error": expected}, (UPSTREAM, case.name)
