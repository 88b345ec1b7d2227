"""Validation of RBAC objects, as ``pkg/apis/rbac/validation/validation.go`` does it.

Each function returns the field errors of one part (empty when valid); ``objects``
gathers them into one 422. Names follow ``path.IsValidPathSegmentName`` (the only rule RBAC
names have), service-account subjects are DNS-1123 subdomains.
"""

from __future__ import annotations

import logging
import re

from compass_auth.testing.rbac import authorizer
from compass_auth.testing.rbac.errors import FieldError

logger = logging.getLogger(__name__)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _not_supported(path: str, value: str, supported: tuple[str, ...]) -> FieldError:
    return FieldError(path, "NotSupported", value=value, supported=supported)


def name_errors(path: str, name: str) -> list[FieldError]:
    """``path.IsValidPathSegmentName``, the only rule RBAC names follow."""
    problems = []
    if name in (".", ".."):
        problems.append(f"may not be '{name}'")
    for char in ("/", "%"):
        if char in name:
            problems.append(f"may not contain '{char}'")
    return [FieldError(path, "Invalid", p, name) for p in problems]


def rule_errors(rule: authorizer.PolicyRule, namespaced: bool, path: str) -> list[FieldError]:
    """``validatePolicyRule``: verbs always; URLs (ClusterRoles only) or groups and resources."""
    errors = []
    if not rule.verbs:
        errors.append(
            FieldError(f"{path}.verbs", "Required", "verbs must contain at least one value")
        )
    if rule.non_resource_urls:
        urls = list(rule.non_resource_urls)
        if namespaced:
            errors.append(
                FieldError(
                    f"{path}.nonResourceURLs",
                    "Invalid",
                    "namespaced rules cannot apply to non-resource URLs",
                    urls,
                )
            )
        if rule.api_groups or rule.resources or rule.resource_names:
            errors.append(
                FieldError(
                    f"{path}.nonResourceURLs",
                    "Invalid",
                    "rules cannot apply to both regular resources and non-resource URLs",
                    urls,
                )
            )
        return errors
    if not rule.api_groups:
        errors.append(
            FieldError(
                f"{path}.apiGroups", "Required", "resource rules must supply at least one api group"
            )
        )
    if not rule.resources:
        errors.append(
            FieldError(
                f"{path}.resources", "Required", "resource rules must supply at least one resource"
            )
        )
    if rule.resource_names and len(rule.resources) > 1:
        errors.append(
            FieldError(
                f"{path}.resourceNames",
                "Required",
                "resource names cannot apply to multiple resources",
            )
        )
    return errors


def subject_errors(subject: authorizer.Subject, namespaced: bool, path: str) -> list[FieldError]:
    """``validateRoleBindingSubject`` (after defaulting: User and Group carry the RBAC group)."""
    errors = []
    if not subject.name:
        errors.append(FieldError(f"{path}.name", "Required"))
    if subject.kind == "ServiceAccount":
        if subject.name and not _DNS_SUBDOMAIN.fullmatch(subject.name):
            errors.append(
                FieldError(f"{path}.name", "Invalid", _DNS_SUBDOMAIN_MESSAGE, subject.name)
            )
        if subject.api_group:
            errors.append(_not_supported(f"{path}.apiGroup", subject.api_group, ("",)))
        if not namespaced and not subject.namespace:
            errors.append(FieldError(f"{path}.namespace", "Required"))
    elif subject.kind in ("User", "Group"):
        if not subject.name:
            detail = f"{subject.kind.lower()} name cannot be empty"
            errors.append(FieldError(f"{path}.name", "Invalid", detail, ""))
        if subject.api_group != authorizer.RBAC_GROUP:
            errors.append(
                _not_supported(f"{path}.apiGroup", subject.api_group, (authorizer.RBAC_GROUP,))
            )
    else:
        errors.append(
            _not_supported(f"{path}.kind", subject.kind, ("ServiceAccount", "User", "Group"))
        )
    return errors


def ref_errors(ref: authorizer.RoleRef, kinds: tuple[str, ...]) -> list[FieldError]:
    """The ``roleRef`` checks of ``ValidateRoleBinding`` / ``ValidateClusterRoleBinding``."""
    errors = []
    if ref.api_group != authorizer.RBAC_GROUP:
        errors.append(_not_supported("roleRef.apiGroup", ref.api_group, (authorizer.RBAC_GROUP,)))
    if ref.kind not in kinds:
        errors.append(_not_supported("roleRef.kind", ref.kind, kinds))
    if not ref.name:
        errors.append(FieldError("roleRef.name", "Required"))
    else:
        errors += name_errors("roleRef.name", ref.name)
    return errors
