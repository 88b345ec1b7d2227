"""SubjectAccessReview on the wire: decode and validate the request, shape the answer.

Field names and order from ``k8s.io/api/authorization/v1/types.go``; validation from
``pkg/apis/authorization/validation/validation.go`` (exactly one of ``resourceAttributes`` and
``nonResourceAttributes``, a user or a group, empty ``metadata``); the request -> attributes
mapping from ``pkg/registry/authorization/util/helpers.go``; the status from
``pkg/registry/authorization/subjectaccessreview/rest.go``. Pure: no I/O, no decision here.

Only ``spec.user`` and ``spec.groups`` reach RBAC (as upstream). ``uid`` and ``extra`` are
echoed; ``version`` and the field/label selectors are echoed and ignored, as RBAC ignores them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compass_auth.testing.rbac import authorizer
from compass_auth.testing.rbac.errors import FieldError, Invalid, Malformed, type_error

logger = logging.getLogger(__name__)

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
KIND = "SubjectAccessReview"
_RESOURCE_FIELDS = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
_SELECTORS = ("fieldSelector", "labelSelector")
_NON_RESOURCE_FIELDS = ("path", "verb")
# Nobody tests a user with thousands of groups; a body that tries only costs us time.
MAX_GROUPS = 1000
MAX_EXTRA_KEYS = 100


@dataclass(frozen=True, slots=True)
class AccessReview:
    """A decoded request: what to ask RBAC, and the spec to echo (Go field order)."""

    attributes: authorizer.Attributes
    spec: dict[str, Any]


def _malformed(where: str, value: Any, go_type: str) -> Malformed:
    return type_error(KIND, where, value, go_type)


def _string(where: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _malformed(where, value, "string")
    return value


def _strings(where: str, value: Any, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _malformed(where, value, "[]string")
    if len(value) > limit:
        raise Malformed(f"{where} has {len(value)} items, at most {limit} are accepted")
    return [_string(where, item) for item in value]


def _mapping(where: str, value: Any, go_type: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _malformed(where, value, go_type)
    return value


def _fields(where: str, raw: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # omitempty: empty strings are left out of the echo, as Go's encoder would.
    decoded = {name: _string(f"{where}.{name}", raw.get(name)) for name in names}
    return {name: value for name, value in decoded.items() if value}


def _extra(value: Any) -> dict[str, list[str] | None]:
    raw = _mapping("SubjectAccessReviewSpec.spec.extra", value, "map[string]v1.ExtraValue")
    if raw is None:
        return {}
    if len(raw) > MAX_EXTRA_KEYS:
        raise Malformed(f"spec.extra has {len(raw)} keys, at most {MAX_EXTRA_KEYS} are accepted")
    # ExtraValue is nullable; Go writes map keys sorted.
    return {
        key: None if raw[key] is None else _strings("spec.extra", raw[key], MAX_GROUPS)
        for key in sorted(raw)
    }


def _metadata_is_empty(value: Any) -> bool:
    # Go decodes `"creationTimestamp": null` (what clients echo back) to the zero value.
    return not value or (isinstance(value, dict) and not any(value.values()))


def decode(body: Mapping[str, Any]) -> AccessReview:
    """Decode and validate a request body; :class:`Malformed` (400) or :class:`Invalid` (422)."""
    version = body.get("apiVersion")
    if version not in (None, "", API_VERSION):
        raise Malformed(
            f"the API version in the data ({version}) does not match the expected API version "
            f"({API_VERSION})"
        )
    if body.get("kind") not in (None, "", KIND):
        raise Malformed(f"not a {KIND}: {body.get('kind')}")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _malformed(f"{KIND}.metadata", metadata, "v1.ObjectMeta")
    raw = _mapping(f"{KIND}.spec", body.get("spec"), "v1.SubjectAccessReviewSpec") or {}
    resource = _mapping(
        "SubjectAccessReviewSpec.spec.resourceAttributes",
        raw.get("resourceAttributes"),
        "v1.ResourceAttributes",
    )
    non_resource = _mapping(
        "SubjectAccessReviewSpec.spec.nonResourceAttributes",
        raw.get("nonResourceAttributes"),
        "v1.NonResourceAttributes",
    )
    user = _string("SubjectAccessReviewSpec.spec.user", raw.get("user"))
    groups = _strings("SubjectAccessReviewSpec.spec.groups", raw.get("groups"), MAX_GROUPS)
    extra = _extra(raw.get("extra"))
    uid = _string("SubjectAccessReviewSpec.spec.uid", raw.get("uid"))

    spec: dict[str, Any] = {}
    if resource is not None:
        echoed = _fields("ResourceAttributes.spec.resourceAttributes", resource, _RESOURCE_FIELDS)
        for selector in _SELECTORS:
            found = _mapping(
                f"ResourceAttributes.spec.resourceAttributes.{selector}",
                resource.get(selector),
                f"v1.{selector[0].upper()}{selector[1:]}Attributes",
            )
            if found is not None:
                echoed[selector] = found
        spec["resourceAttributes"] = echoed
    if non_resource is not None:
        spec["nonResourceAttributes"] = _fields(
            "NonResourceAttributes.spec.nonResourceAttributes", non_resource, _NON_RESOURCE_FIELDS
        )
    if user:
        spec["user"] = user
    if groups:
        spec["groups"] = groups
    if extra:
        spec["extra"] = extra
    if uid:
        spec["uid"] = uid

    errors = []
    if resource is not None and non_resource is not None:
        errors.append(
            FieldError(
                "spec.nonResourceAttributes",
                "Invalid",
                "cannot be specified in combination with resourceAttributes",
                spec["nonResourceAttributes"],
            )
        )
    if resource is None and non_resource is None:
        errors.append(
            FieldError(
                "spec.resourceAttributes",
                "Invalid",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                None,
            )
        )
    if not user and not groups:
        errors.append(
            FieldError(
                "spec.user", "Invalid", "at least one of user or group must be specified", ""
            )
        )
    if not _metadata_is_empty(metadata):
        errors.append(FieldError("metadata", "Invalid", "must be empty", metadata))
    if errors:
        raise Invalid(KIND, GROUP, "", errors)

    if resource is not None:
        fields = spec["resourceAttributes"]
        attributes = authorizer.Attributes(
            user=user,
            groups=tuple(groups),
            verb=fields.get("verb", ""),
            resource_request=True,
            namespace=fields.get("namespace", ""),
            api_group=fields.get("group", ""),
            resource=fields.get("resource", ""),
            subresource=fields.get("subresource", ""),
            name=fields.get("name", ""),
        )
    else:
        fields = spec["nonResourceAttributes"]
        attributes = authorizer.Attributes(
            user=user,
            groups=tuple(groups),
            verb=fields.get("verb", ""),
            resource_request=False,
            path=fields.get("path", ""),
        )
    return AccessReview(attributes, spec)


def answer(spec: dict[str, Any], decision: authorizer.Decision) -> dict[str, Any]:
    """The 201 body: the spec echoed and the status, with Go's omitempty rules.

    ``allowed`` is always present; ``denied`` never is (RBAC has no deny rules);
    ``reason`` only when there is one; ``evaluationError`` never (RBAC reports a missing role
    in the reason, not as an error).
    """
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
