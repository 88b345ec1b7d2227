"""RBAC objects on the wire: decode, default and validate ``rbac.authorization.k8s.io/v1`` JSON.

One path for all sources (HTTP bodies, YAML files, the built-in roles), so an object the
emulator holds is one a real API server would have accepted:

* decoding: wrong JSON types raise :class:`~compass_auth.testing.rbac.errors.Malformed` (a real
  server's 400); ``null`` counts as absent, as in Go;
* defaulting (``pkg/apis/rbac/v1/defaults.go``): ``roleRef.apiGroup`` and the ``apiGroup`` of
  User and Group subjects become ``rbac.authorization.k8s.io``;
* validation (``validation``, after upstream's ``pkg/apis/rbac/validation``): rules need
  verbs, resource rules need groups and resources, non-resource URLs only in ClusterRoles and
  never mixed with resources, roleRef kinds, subject kinds and their API groups, ServiceAccount
  subjects of a ClusterRoleBinding need a namespace; failures raise
  :class:`~compass_auth.testing.rbac.errors.Invalid` (422), all errors at once.

``aggregationRule`` is kept for the answer but not evaluated (see ``authorizer``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compass_auth.testing.rbac import authorizer
from compass_auth.testing.rbac.errors import FieldError, Invalid, Malformed, type_error
from compass_auth.testing.rbac.validation import (
    name_errors,
    ref_errors,
    rule_errors,
    subject_errors,
)
from compass_auth.testing.wire import bodies

logger = logging.getLogger(__name__)

API_VERSION = f"{authorizer.RBAC_GROUP}/v1"
#: kind -> (resource, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Role": ("roles", True),
    "ClusterRole": ("clusterroles", False),
    "RoleBinding": ("rolebindings", True),
    "ClusterRoleBinding": ("clusterrolebindings", False),
}
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
    value: authorizer.Role | authorizer.Binding
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
        metadata["creationTimestamp"] = bodies.rfc3339(self.created) if self.created else None
        for key in ("labels", "annotations"):
            if self.document["metadata"].get(key):
                metadata[key] = self.document["metadata"][key]
        body = {"kind": self.kind, "apiVersion": API_VERSION, "metadata": metadata}
        body.update((k, v) for k, v in self.document.items() if k != "metadata")
        return body


# ---- decoding (400) ----------------------------------------------------------------------------


def _string(kind: str, where: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise type_error(kind, where, value, "string")
    return value


def _strings(kind: str, where: str, value: Any, limit: int = MAX_LIST_ITEMS) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise type_error(kind, where, value, "[]string")
    if len(value) > limit:
        raise Malformed(f"{kind}: {where} has {len(value)} items, at most {limit} are accepted")
    return tuple(_string(kind, where, item) for item in value)


def _object(kind: str, where: str, value: Any, go_type: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise type_error(kind, where, value, go_type)
    return value


def _string_map(kind: str, where: str, value: Any) -> dict[str, str]:
    mapping = _object(kind, where, value, "map[string]string")
    return {str(k): _string(kind, where, v) for k, v in mapping.items()}


def _items(kind: str, where: str, value: Any, go_type: str, limit: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise type_error(kind, where, value, go_type)
    if len(value) > limit:
        raise Malformed(f"{kind}: {where} has {len(value)} items, at most {limit} are accepted")
    return value


# ---- the four kinds ----------------------------------------------------------------------------


def _rules(kind: str, raw: Any) -> tuple[list[dict[str, Any]], tuple[authorizer.PolicyRule, ...]]:
    documents, rules = [], []
    for item in _items(kind, f"{kind}.rules", raw, "[]v1.PolicyRule", MAX_RULES):
        entry = _object(kind, f"{kind}.rules", item, "v1.PolicyRule")
        where = "PolicyRule.rules."
        rule = authorizer.PolicyRule(
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


def _subjects(kind: str, raw: Any) -> tuple[list[dict[str, Any]], tuple[authorizer.Subject, ...]]:
    documents, subjects = [], []
    for item in _items(kind, f"{kind}.subjects", raw, "[]v1.Subject", MAX_SUBJECTS):
        entry = _object(kind, f"{kind}.subjects", item, "v1.Subject")
        subject_kind = _string(kind, "Subject.subjects.kind", entry.get("kind"))
        api_group = _string(kind, "Subject.subjects.apiGroup", entry.get("apiGroup"))
        if not api_group and subject_kind in ("User", "Group"):
            api_group = authorizer.RBAC_GROUP  # SetDefaults_Subject
        subject = authorizer.Subject(
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
    errors += name_errors("metadata.name", name)
    if namespaced and not namespace:
        errors.append(FieldError("metadata.namespace", "Required"))
    document: dict[str, Any] = {"metadata": meta_document}
    value: authorizer.Role | authorizer.Binding
    if kind in ("Role", "ClusterRole"):
        rule_documents, rules = _rules(kind, body.get("rules"))
        for index, rule in enumerate(rules):
            errors += rule_errors(rule, namespaced, f"rules[{index}]")
        document["rules"] = rule_documents if body.get("rules") is not None else None
        aggregation = body.get("aggregationRule")
        if kind == "ClusterRole" and aggregation is not None:
            document["aggregationRule"] = _object(
                kind, "ClusterRole.aggregationRule", aggregation, "v1.AggregationRule"
            )
        value = authorizer.Role(name, rules, namespace)
    else:
        raw_ref = _object(kind, f"{kind}.roleRef", body.get("roleRef"), "v1.RoleRef")
        ref = authorizer.RoleRef(
            kind=_string(kind, "RoleRef.roleRef.kind", raw_ref.get("kind")),
            name=_string(kind, "RoleRef.roleRef.name", raw_ref.get("name")),
            # SetDefaults_RoleBinding / SetDefaults_ClusterRoleBinding
            api_group=_string(kind, "RoleRef.roleRef.apiGroup", raw_ref.get("apiGroup"))
            or authorizer.RBAC_GROUP,
        )
        subject_documents, subjects = _subjects(kind, body.get("subjects"))
        for index, subject in enumerate(subjects):
            errors += subject_errors(subject, namespaced, f"subjects[{index}]")
        errors += ref_errors(ref, ("Role", "ClusterRole") if namespaced else ("ClusterRole",))
        if subject_documents:
            document["subjects"] = subject_documents
        document["roleRef"] = {"apiGroup": ref.api_group, "kind": ref.kind, "name": ref.name}
        value = authorizer.Binding(name, ref, subjects, namespace)
    if errors:
        raise Invalid(kind, authorizer.RBAC_GROUP, name, errors)
    return RbacObject(kind, name, namespace, value, document)


def resource_of(kind: str) -> str:
    """The plural resource name of an RBAC kind (``ClusterRole`` -> ``clusterroles``)."""
    return KINDS[kind][0]
