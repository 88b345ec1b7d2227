"""JSON documents the API server answers with, in its field order and wording.

Pure functions, no I/O: handlers pick one and serialise it with
``credentials.jws.go_json`` (compact, like Go's encoder). Field order follows the Go
struct definitions (``metav1.Status``, ``authentication/v1`` types).
"""

from __future__ import annotations

import datetime
import http
import logging
from collections.abc import Sequence
from typing import Any, TypedDict

from compass_auth.testing.credentials.validation import Review, UserInfo

logger = logging.getLogger(__name__)

# What the emulator claims to be; /version and the kubeconfig mention it.
KUBE_VERSION = ("1", "33", "v1.33.1")
TOKENREVIEW_GROUP = "authentication.k8s.io"


class DiscoveryDocument(TypedDict):
    """``/.well-known/openid-configuration`` as served (field order matters)."""

    issuer: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]


def rfc3339(unix_seconds: float) -> str:
    """``2025-01-01T00:00:00Z``: metav1.Time's wire format (second precision, UTC)."""
    moment = datetime.datetime.fromtimestamp(int(unix_seconds), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def status(
    code: int, message: str, reason: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failure ``metav1.Status``; ``details`` None means omitted (omitempty)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def unauthorized() -> dict[str, Any]:
    """401 for any failed credential; never says why (the reason is only logged)."""
    return status(401, "Unauthorized", "Unauthorized")


def forbidden_path(username: str, path: str, verb: str = "get") -> dict[str, Any]:
    """403 from RBAC for a non-resource URL such as /openid/v1/jwks."""
    return status(
        403,
        f'forbidden: User "{username}" cannot {verb} path "{path}"',
        "Forbidden",
        {},
    )


def forbidden_tokenreviews(username: str) -> dict[str, Any]:
    """403 from RBAC for ``create tokenreviews`` (no system:auth-delegator binding)."""
    return forbidden_create(username, "tokenreviews")


def forbidden_create(username: str, resource: str) -> dict[str, Any]:
    """403 from RBAC for ``create`` on a cluster-scoped resource of authentication.k8s.io."""
    return status(
        403,
        f'{resource}.{TOKENREVIEW_GROUP} is forbidden: User "{username}" cannot create '
        f'resource "{resource}" in API group "{TOKENREVIEW_GROUP}" at the cluster scope',
        "Forbidden",
        {"group": TOKENREVIEW_GROUP, "kind": resource},
    )


def forbidden_token_request(username: str, namespace: str, name: str) -> dict[str, Any]:
    """403 from RBAC for ``create serviceaccounts/token``."""
    return status(
        403,
        f'serviceaccounts "{name}" is forbidden: User "{username}" cannot create resource '
        f'"serviceaccounts/token" in API group "" in the namespace "{namespace}"',
        "Forbidden",
        {"name": name, "kind": "serviceaccounts"},
    )


def not_found() -> dict[str, Any]:
    """404 for a path the server does not serve."""
    return status(
        404, "the server could not find the requested resource", "NotFound", {}
    )


def bad_request(message: str) -> dict[str, Any]:
    """400 (``apierrors.NewBadRequest``: no details)."""
    return status(400, message, "BadRequest")


def invalid(
    kind: str, group: str, name: str, field: str, value: Any, detail: str
) -> dict[str, Any]:
    """422 from object validation (``apierrors.NewInvalid``)."""
    cause = f"Invalid value: {value}: {detail}"
    return status(
        422,
        f'{kind}.{group} "{name}" is invalid: {field}: {cause}',
        "Invalid",
        {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": cause, "field": field}
            ],
        },
    )


def fault_status(
    code: int, username: str, path: str, retry_after: int | None
) -> dict[str, Any]:
    """The Status an injected failure answers with, worded like the real source of that code."""
    if code == 401:
        return unauthorized()
    if code == 403:
        return forbidden_path(username, path)
    if code == 404:
        return not_found()
    if code == 429:
        # The priority-and-fairness / max-inflight filter's rejection.
        details = {"retryAfterSeconds": retry_after} if retry_after is not None else {}
        return status(
            429,
            "Too many requests, please try again later.",
            "TooManyRequests",
            details,
        )
    if code == 500:
        message = "Internal error occurred: etcdserver: request timed out"
        return status(
            500,
            message,
            "InternalError",
            {"causes": [{"message": "etcdserver: request timed out"}]},
        )
    if code == 503:
        unavailable = (
            {"retryAfterSeconds": retry_after} if retry_after is not None else None
        )
        return status(
            503,
            "the server is currently unable to handle the request",
            "ServiceUnavailable",
            unavailable,
        )
    if code == 504:
        message = (
            "Timeout: request did not complete within requested timeout - "
            "context deadline exceeded"
        )
        return status(504, message, "Timeout", {})
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    return status(code, phrase, "", {})


def discovery_document(
    issuer: str, jwks_uri: str, algs: Sequence[str]
) -> DiscoveryDocument:
    """``pkg/serviceaccount/openidmetadata.go``'s document, algs sorted and deduplicated."""
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted(set(algs)),
    }


def version_info() -> dict[str, str]:
    """``/version`` body (k8s.io/apimachinery/pkg/version.Info)."""
    major, minor, git_version = KUBE_VERSION
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": str(int(minor) - 1),
        "gitVersion": git_version,
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group_list() -> dict[str, Any]:
    """``/apis``: only the groups the emulator serves."""
    version = {"groupVersion": f"{TOKENREVIEW_GROUP}/v1", "version": "v1"}
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": TOKENREVIEW_GROUP,
                "versions": [version],
                "preferredVersion": version,
            }
        ],
    }


def core_resources() -> dict[str, Any]:
    """``/api/v1``: of the core group, only the TokenRequest subresource is served."""
    return {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": True,
                "group": TOKENREVIEW_GROUP,
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }
        ],
    }


def authentication_resources() -> dict[str, Any]:
    """``/apis/authentication.k8s.io/v1``: the resources served there."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{TOKENREVIEW_GROUP}/v1",
        # Sorted by name, as the API server lists them.
        "resources": [
            {
                "name": "selfsubjectreviews",
                "singularName": "selfsubjectreview",
                "namespaced": False,
                "kind": "SelfSubjectReview",
                "verbs": ["create"],
            },
            {
                "name": "tokenreviews",
                "singularName": "tokenreview",
                "namespaced": False,
                "kind": "TokenReview",
                "verbs": ["create"],
            },
        ],
    }


def token_review(spec: dict[str, Any], review: Review) -> dict[str, Any]:
    """The 201 answer: spec echoed (token included), status per omitempty rules."""
    result: dict[str, Any] = {}
    if review.user is not None:
        result["authenticated"] = True
        result["user"] = review.user.to_wire()
        if review.audiences:
            result["audiences"] = list(review.audiences)
    else:
        result["user"] = {}
    if review.error:
        result["error"] = review.error
    return {
        "kind": "TokenReview",
        "apiVersion": f"{TOKENREVIEW_GROUP}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": result,
    }


def token_request(
    namespace: str,
    name: str,
    spec: dict[str, Any],
    token: str,
    expires: float,
    now: float,
) -> dict[str, Any]:
    """The 201 answer to a TokenRequest (``status.token`` plus its expiry)."""
    return {
        "kind": "TokenRequest",
        "apiVersion": f"{TOKENREVIEW_GROUP}/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": rfc3339(now),
        },
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
    }


def self_subject_review(user: UserInfo, now: float) -> dict[str, Any]:
    """The 201 answer to a SelfSubjectReview: the caller as the server authenticated it
    (``pkg/registry/authentication/selfsubjectreview/rest.go``)."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": f"{TOKENREVIEW_GROUP}/v1",
        "metadata": {"creationTimestamp": rfc3339(now)},
        "status": {"userInfo": user.to_wire()},
    }
