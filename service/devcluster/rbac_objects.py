"""RBAC objects on the wire: decode, default and validate ``rbac.authorization.k8s.io/v1`` JSON.

One path for all sources (HTTP bodies, YAML files, the built-in roles), so an object the
emulator holds is one a real API server would have accepted:

* decoding: wrong JSON types raise :class:`~service.devcluster.rbac_wire.Malformed` (a real
  server's 400); ``null`` counts as absent, as in Go;
* defaulting (``pkg/apis/rbac/v1/defaults.go``): ``roleRef.apiGroup`` and the ``apiGroup`` of
  User and Group subjects become ``rbac.authorization.k8s.io``;
* validation (``pkg/apis/rbac/validation/validation.go``): rules need verbs, resource rules need
  groups and resources, non-resource URLs only in ClusterRoles and never mixed with resources,
  roleRef kinds, subject kinds and their API groups, ServiceAccount subjects of a
  ClusterRoleBinding need a namespace; failures raise
  :class:`~service.devcluster.rbac_wire.Invalid` (422).

``aggregationRule`` is kept for the answer but not evaluated (see ``rbac``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.devcluster import rbac, wire
from service.devcluster.rbac_wire import FieldError, Invalid, Malformed

logger = logging.getLogger(__name__)

API_VERSION = f"{rbac.RBAC_GROUP}/v1"
#: kind -> (resource, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Role": ("roles", True),
    "ClusterRole": ("clusterroles", False),
    "RoleBinding": ("rolebindings", True),
    "ClusterRoleBinding": ("clusterrolebindings", False),
}
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
# Bounds on one object, far above anything real (the bootstrap roles have < 30 rules) but
# enough that a hostile body cannot make every later authorization check slow.
MAX_RULES = 1000
MAX_SUBJECTS = 1000
MAX_LIST_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class RbacObject:
    """A validated Role, ClusterRole, RoleBinding or ClusterRoleBinding.

    ``value`` is what the evaluator uses; ``document`` the defaulted JSON for answers.
    ``uid``, ``resource_version`` and ``created`` are set by the store.
    """

    kind: str
    name: str
    namespace: str
    value: rbac.Role | rbac.Binding
    document: Mapping[str, Any] = field(repr=False)
    uid: str = ""
    resource_version: str = ""
    created: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name): unique within a cluster."""
        return (self.kind, self.namespace, self.name)

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server returns it (``metadata`` completed by the store)."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.namespace:
            metadata["namespace"] = self.namespace
        if self.uid:
            metadata["uid"] = self.uid
        if self.resource_version:
            metadata["resourceVersion"] = self.resource_version
        metadata["creationTimestamp"] = wire.rfc3339(self.created) if self.created else None
        for key in ("labels", "annotations"):
            if self.document["metadata"].get(key):
                metadata[key] = self.document["metadata"][key]
        body = {"kind": self.kind, "apiVersion": API_VERSION, "metadata": metadata}
        body.update((k, v) for k, v in self.document.items() if k != "metadata")
        return body


# ---- decoding (400) ----------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(kind: str, where: str, value: Any, go_type: str) -> Malformed:
    return Malformed(
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value)} into Go struct field {where} of type {go_type}"
    )


def _string(kind: str, where: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _type_error(kind, where, value, "string")
    return value


def _strings(kind: str, where: str, value: Any, limit: int = MAX_LIST_ITEMS) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _type_error(kind, where, value, "[]string")
    if len(value) > limit:
        raise Malformed(f"{kind}: {where} has {len(value)} items, at most {limit} are accepted")
    return tuple(_string(kind, where, item) for item in value)


def _object(kind: str, where: str, value: Any, go_type: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(kind, where, value, go_type)
    return value


def _string_map(kind: str, where: str, value: Any) -> dict[str, str]:
    mapping = _object(kind, where, value, "map[string]string")
    return {str(k): _string(kind, where, v) for k, v in mapping.items()}


def _items(kind: str, where: str, value: Any, go_type: str, limit: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(kind, where, value, go_type)
    if len(value) > limit:
        raise Malformed(f"{kind}: {where} has {len(value)} items, at most {limit} are accepted")
    return value


# ---- validation (422) --------------------------------------------------------------------------


def _not_supported(path: str, value: str, supported: tuple[str, ...]) -> FieldError:
    return FieldError(path, "NotSupported", value=value, supported=supported)


def _name_errors(path: str, name: str) -> list[FieldError]:
    """``path.IsValidPathSegmentName``, the only rule RBAC names follow."""
    problems = []
    if name in (".", ".."):
        problems.append(f"may not be '{name}'")
    for char in ("/", "%"):
        if char in name:
            problems.append(f"may not contain '{char}'")
    return [FieldError(path, "Invalid", p, name) for p in problems]


def _rule_errors(rule: rbac.PolicyRule, namespaced: bool, path: str) -> list[FieldError]:
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


def _subject_errors(subject: rbac.Subject, namespaced: bool, path: str) -> list[FieldError]:
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
        if subject.api_group != rbac.RBAC_GROUP:
            errors.append(
                _not_supported(f"{path}.apiGroup", subject.api_group, (rbac.RBAC_GROUP,))
            )
    else:
        errors.append(
            _not_supported(f"{path}.kind", subject.kind, ("ServiceAccount", "User", "Group"))
        )
    return errors


def _ref_errors(ref: rbac.RoleRef, kinds: tuple[str, ...]) -> list[FieldError]:
    errors = []
    if ref.api_group != rbac.RBAC_GROUP:
        errors.append(_not_supported("roleRef.apiGroup", ref.api_group, (rbac.RBAC_GROUP,)))
    if ref.kind not in kinds:
        errors.append(_not_supported("roleRef.kind", ref.kind, kinds))
    if not ref.name:
        errors.append(FieldError("roleRef.name", "Required"))
    else:
        errors += _name_errors("roleRef.name", ref.name)
    return errors


# ---- the four kinds ----------------------------------------------------------------------------


def _rules(kind: str, raw: Any) -> tuple[list[dict[str, Any]], tuple[rbac.PolicyRule, ...]]:
    documents, rules = [], []
    for item in _items(kind, f"{kind}.rules", raw, "[]v1.PolicyRule", MAX_RULES):
        entry = _object(kind, f"{kind}.rules", item, "v1.PolicyRule")
        where = "PolicyRule.rules."
        rule = rbac.PolicyRule(
            verbs=_strings(kind, where + "verbs", entry.get("verbs")),
            api_groups=_strings(kind, where + "apiGroups", entry.get("apiGroups")),
            resources=_strings(kind, where + "resources", entry.get("resources")),
            resource_names=_strings(kind, where + "resourceNames", entry.get("resourceNames")),
            non_resource_urls=_strings(
                kind, where + "nonResourceURLs", entry.get("nonResourceURLs")
            ),
        )
        document: dict[str, Any] = {"verbs": list(rule.verbs)}
        for key, values in (
            ("apiGroups", rule.api_groups),
            ("resources", rule.resources),
            ("resourceNames", rule.resource_names),
            ("nonResourceURLs", rule.non_resource_urls),
        ):
            if values:
                document[key] = list(values)
        documents.append(document)
        rules.append(rule)
    return documents, tuple(rules)


def _subjects(kind: str, raw: Any) -> tuple[list[dict[str, Any]], tuple[rbac.Subject, ...]]:
    documents, subjects = [], []
    for item in _items(kind, f"{kind}.subjects", raw, "[]v1.Subject", MAX_SUBJECTS):
        entry = _object(kind, f"{kind}.subjects", item, "v1.Subject")
        subject_kind = _string(kind, "Subject.subjects.kind", entry.get("kind"))
        api_group = _string(kind, "Subject.subjects.apiGroup", entry.get("apiGroup"))
        if not api_group and subject_kind in ("User", "Group"):
            api_group = rbac.RBAC_GROUP  # SetDefaults_Subject
        subject = rbac.Subject(
            kind=subject_kind,
            name=_string(kind, "Subject.subjects.name", entry.get("name")),
            namespace=_string(kind, "Subject.subjects.namespace", entry.get("namespace")),
            api_group=api_group,
        )
        document: dict[str, Any] = {"kind": subject.kind}
        if subject.api_group:
            document["apiGroup"] = subject.api_group
        document["name"] = subject.name
        if subject.namespace:
            document["namespace"] = subject.namespace
        documents.append(document)
        subjects.append(subject)
    return documents, tuple(subjects)


def decode(
    body: Mapping[str, Any], kind: str, namespace: str = "", *, default_namespace: str = ""
) -> RbacObject:
    """Decode, default and validate one object of ``kind``.

    ``namespace`` is the request's (the URL's): a namespaced object's metadata must agree with
    it. ``default_namespace`` is used when neither names one (a file's objects). Cluster-scoped
    objects drop any namespace, as the API server does.
    """
    if kind not in KINDS:
        raise ValueError(f"not an RBAC kind: {kind!r}")
    namespaced = KINDS[kind][1]
    given_version = body.get("apiVersion")
    if given_version not in (None, "", API_VERSION):
        raise Malformed(
            f"the API version in the data ({given_version}) does not match the expected API "
            f"version ({API_VERSION})"
        )
    given_kind = body.get("kind")
    if given_kind not in (None, "", kind):
        raise Malformed(
            f"the object provided is unrecognized (must be of type {kind}): {given_kind}"
        )
    metadata = _object(kind, f"{kind}.metadata", body.get("metadata"), "v1.ObjectMeta")
    name = _string(kind, "ObjectMeta.metadata.name", metadata.get("name"))
    meta_namespace = _string(kind, "ObjectMeta.metadata.namespace", metadata.get("namespace"))
    if namespaced and meta_namespace and namespace and meta_namespace != namespace:
        raise Malformed(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    namespace = (meta_namespace or namespace or default_namespace) if namespaced else ""
    meta_document: dict[str, Any] = {
        "labels": _string_map(kind, "ObjectMeta.metadata.labels", metadata.get("labels")),
        "annotations": _string_map(
            kind, "ObjectMeta.metadata.annotations", metadata.get("annotations")
        ),
    }
    errors: list[FieldError] = []
    if not name:
        errors.append(
            FieldError("metadata.name", "Required", "name or generateName is required")
        )
    errors += _name_errors("metadata.name", name)
    if namespaced and not namespace:
        errors.append(FieldError("metadata.namespace", "Required"))
    document: dict[str, Any] = {"metadata": meta_document}
    value: rbac.Role | rbac.Binding
    if kind in ("Role", "ClusterRole"):
        rule_documents, rules = _rules(kind, body.get("rules"))
        for index, rule in enumerate(rules):
            errors += _rule_errors(rule, namespaced, f"rules[{index}]")
        document["rules"] = rule_documents if body.get("rules") is not None else None
        aggregation = body.get("aggregationRule")
        if kind == "ClusterRole" and aggregation is not None:
            document["aggregationRule"] = _object(
                kind, "ClusterRole.aggregationRule", aggregation, "v1.AggregationRule"
            )
        value = rbac.Role(name, rules, namespace)
    else:
        raw_ref = _object(kind, f"{kind}.roleRef", body.get("roleRef"), "v1.RoleRef")
        ref = rbac.RoleRef(
            kind=_string(kind, "RoleRef.roleRef.kind", raw_ref.get("kind")),
            name=_string(kind, "RoleRef.roleRef.name", raw_ref.get("name")),
            # SetDefaults_RoleBinding / SetDefaults_ClusterRoleBinding
            api_group=_string(kind, "RoleRef.roleRef.apiGroup", raw_ref.get("apiGroup"))
            or rbac.RBAC_GROUP,
        )
        subject_documents, subjects = _subjects(kind, body.get("subjects"))
        for index, subject in enumerate(subjects):
            errors += _subject_errors(subject, namespaced, f"subjects[{index}]")
        errors += _ref_errors(ref, ("Role", "ClusterRole") if namespaced else ("ClusterRole",))
        if subject_documents:
            document["subjects"] = subject_documents
        document["roleRef"] = {"apiGroup": ref.api_group, "kind": ref.kind, "name": ref.name}
        value = rbac.Binding(name, ref, subjects, namespace)
    if errors:
        raise Invalid(kind, rbac.RBAC_GROUP, name, errors)
    return RbacObject(kind, name, namespace, value, document)


def resource_of(kind: str) -> str:
    """The plural resource name of an RBAC kind (``ClusterRole`` -> ``clusterroles``)."""
    return KINDS[kind][0]
