"""Kubernetes RBAC decisions, pure: rules, bindings, a request -> allowed and why.

A port of the upstream evaluation, kept to its structure so the two can be read side by side:

* ``plugin/pkg/auth/authorizer/rbac/rbac.go``: ``RuleAllows`` and the "RBAC: allowed by ..."
  reason; a denial is *no opinion* (RBAC never denies), its reason empty unless a binding
  pointed at a missing role;
* ``pkg/apis/rbac/v1/evaluation_helpers.go``: ``VerbMatches``, ``APIGroupMatches``,
  ``ResourceMatches`` (``pods/log``, ``*/scale``), ``ResourceNameMatches``,
  ``NonResourceURLMatches`` (a trailing ``*`` is a prefix match);
* ``pkg/registry/rbac/validation/rule.go``: ``VisitRulesFor`` (ClusterRoleBindings first, then
  the RoleBindings of the request's namespace, only when it has one), ``appliesToUser``
  (ServiceAccount subjects without a namespace take the binding's) and the describers behind the
  reason text.

Not modelled: ``aggregationRule`` (an aggregated ClusterRole's ``rules`` are used as written; a
real cluster's controller fills them from the labelled roles), the API version of a request
(RBAC ignores it), field and label selectors (RBAC ignores them too), and escalation checks on
writes (see ``server.handlers.authorization``). No I/O here: the store hands in an immutable
:class:`Policy`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

RBAC_GROUP = "rbac.authorization.k8s.io"
#: ``system:masters`` is allowed everything before RBAC is asked (kube-apiserver's
#: privileged-groups authorizer, ``authorizerfactory.NewPrivilegedGroups``), with no reason.
PRIVILEGED_GROUP = "system:masters"
_ALL = "*"
_SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """``rbac/v1`` PolicyRule (lists as tuples)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Subject:
    """``rbac/v1`` Subject: ``kind`` is User, Group or ServiceAccount."""

    kind: str
    name: str
    namespace: str = ""
    api_group: str = ""


@dataclass(frozen=True, slots=True)
class RoleRef:
    """What a binding grants: a Role (in the binding's namespace) or a ClusterRole."""

    kind: str
    name: str
    api_group: str = RBAC_GROUP


@dataclass(frozen=True, slots=True)
class Role:
    """A Role (``namespace`` set) or a ClusterRole (``namespace`` empty)."""

    name: str
    rules: tuple[PolicyRule, ...]
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Binding:
    """A RoleBinding (``namespace`` set) or a ClusterRoleBinding (``namespace`` empty)."""

    name: str
    role_ref: RoleRef
    subjects: tuple[Subject, ...]
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """An immutable snapshot of every role and binding the authorizer can see."""

    cluster_roles: Mapping[str, Role] = field(default_factory=dict)
    roles: Mapping[tuple[str, str], Role] = field(default_factory=dict)
    cluster_role_bindings: tuple[Binding, ...] = ()
    role_bindings: Mapping[str, tuple[Binding, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Attributes:
    """What is asked (``authorizer.Attributes``): a resource request or a non-resource path.

    ``namespace`` empty means cluster scope, or "all namespaces" for a namespaced resource:
    either way only ClusterRoleBindings apply.
    """

    user: str
    groups: tuple[str, ...]
    verb: str
    resource_request: bool
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: ``allowed`` and the reason kube-apiserver would give (may be empty)."""

    allowed: bool
    reason: str = ""


# ---- evaluation_helpers.go -------------------------------------------------------------------


def verb_matches(rule: PolicyRule, verb: str) -> bool:
    """``VerbMatches``: the verb is listed, or ``*`` is."""
    return any(v in (_ALL, verb) for v in rule.verbs)


def api_group_matches(rule: PolicyRule, group: str) -> bool:
    """``APIGroupMatches``: the group is listed (``""`` is the core group), or ``*`` is."""
    return any(g in (_ALL, group) for g in rule.api_groups)


def resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    """``ResourceMatches``: ``*``, the exact ``resource[/subresource]``, or ``*/subresource``.

    ``pods`` does not cover ``pods/log``, and ``*`` covers every subresource.
    """
    for resource in rule.resources:
        if resource in (_ALL, combined):
            return True
        if subresource and resource == "*/" + subresource:
            return True
    return False


def resource_name_matches(rule: PolicyRule, name: str) -> bool:
    """``ResourceNameMatches``: no names means any; otherwise the request's name must be listed.

    So a rule with ``resourceNames`` never allows a request without a name (``create``,
    ``list``, ``watch`` of the whole collection).
    """
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: PolicyRule, path: str) -> bool:
    """``NonResourceURLMatches``: ``*``, the exact path, or a prefix ending in ``*``.

    ``/healthz/*`` covers ``/healthz/etcd`` but not ``/healthz``; matching is on the raw
    string, so ``/openid/v1/jwks`` does not cover ``/openid/v1/jwks/``.
    """
    for url in rule.non_resource_urls:
        if url in (_ALL, path):
            return True
        if url.endswith(_ALL) and path.startswith(url.rstrip(_ALL)):
            return True
    return False


def rule_allows(attributes: Attributes, rule: PolicyRule) -> bool:
    """``RuleAllows``: every part of the rule fits the request."""
    if not verb_matches(rule, attributes.verb):
        return False
    if not attributes.resource_request:
        return non_resource_url_matches(rule, attributes.path)
    combined = attributes.resource
    if attributes.subresource:
        combined += "/" + attributes.subresource
    return (
        api_group_matches(rule, attributes.api_group)
        and resource_matches(rule, combined, attributes.subresource)
        and resource_name_matches(rule, attributes.name)
    )


# ---- rule.go ---------------------------------------------------------------------------------


def service_account_username(namespace: str, name: str) -> str:
    """``system:serviceaccount:NS:NAME``, the user name of a service account's tokens."""
    return f"{_SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def applies_to(user: str, groups: Sequence[str], subject: Subject, namespace: str) -> bool:
    """``appliesToUser``: does this binding subject name the user?

    ``namespace`` is the binding's ("" for a ClusterRoleBinding): a ServiceAccount subject
    without a namespace takes it, and with neither it matches nobody.
    """
    if subject.kind == "User":
        return user == subject.name
    if subject.kind == "Group":
        return subject.name in groups
    if subject.kind == "ServiceAccount":
        account_namespace = subject.namespace or namespace
        if not account_namespace:
            return False
        return user == service_account_username(account_namespace, subject.name)
    return False


def _go_quote(text: str) -> str:
    # Go's %q for the printable names RBAC objects have.
    return json.dumps(text, ensure_ascii=False)


def _describe_subject(subject: Subject, binding_namespace: str) -> str:
    # describeSubject: a service account is shown NAME/NAMESPACE (this order, upstream's).
    if subject.kind == "ServiceAccount":
        namespace = subject.namespace or binding_namespace
        return f"{subject.kind} {_go_quote(subject.name + '/' + namespace)}"
    return f"{subject.kind} {_go_quote(subject.name)}"


def describe(binding: Binding, subject: Subject) -> str:
    """The source of a grant as the reason names it (the two upstream describers)."""
    if binding.namespace:
        kind, name = "RoleBinding", binding.name + "/" + binding.namespace
    else:
        kind, name = "ClusterRoleBinding", binding.name
    return (
        f"{kind} {_go_quote(name)} of {binding.role_ref.kind} "
        f"{_go_quote(binding.role_ref.name)} to {_describe_subject(subject, binding.namespace)}"
    )


def role_rules(
    policy: Policy, ref: RoleRef, binding_namespace: str
) -> tuple[PolicyRule, ...]:
    """``GetRoleReferenceRules``; raises :class:`LookupError` with the lister's wording."""
    if ref.kind == "Role":
        role = policy.roles.get((binding_namespace, ref.name))
        if role is None:
            raise LookupError(f"role.{RBAC_GROUP} {_go_quote(ref.name)} not found")
        return role.rules
    if ref.kind == "ClusterRole":
        cluster_role = policy.cluster_roles.get(ref.name)
        if cluster_role is None:
            raise LookupError(f"clusterrole.{RBAC_GROUP} {_go_quote(ref.name)} not found")
        return cluster_role.rules
    raise LookupError(f"unsupported role reference kind: {_go_quote(ref.kind)}")


def _applicable(
    bindings: Sequence[Binding], attributes: Attributes
) -> list[tuple[Binding, Subject]]:
    found = []
    for binding in bindings:
        for subject in binding.subjects:
            if applies_to(attributes.user, attributes.groups, subject, binding.namespace):
                found.append((binding, subject))
                break
    return found


def authorize(attributes: Attributes, policy: Policy) -> Decision:
    """RBAC's answer, in the union kube-apiserver runs (privileged groups first).

    Allowed: ``RBAC: allowed by <source>`` for the first rule that fits. Otherwise not
    allowed, with an empty reason, or ``RBAC: <errors>`` when some binding names a role that
    does not exist (the other bindings still count: rules only ever add).
    """
    if PRIVILEGED_GROUP in attributes.groups:
        return Decision(True, "")
    errors: list[str] = []
    candidates = _applicable(policy.cluster_role_bindings, attributes)
    if attributes.namespace:
        candidates += _applicable(
            policy.role_bindings.get(attributes.namespace, ()), attributes
        )
    for binding, subject in candidates:
        try:
            rules = role_rules(policy, binding.role_ref, binding.namespace)
        except LookupError as missing:
            errors.append(str(missing))
            continue
        if any(rule_allows(attributes, rule) for rule in rules):
            return Decision(True, f"RBAC: allowed by {describe(binding, subject)}")
    if not errors:
        return Decision(False, "")
    # utilerrors.NewAggregate: one message alone, several deduplicated in brackets.
    unique = list(dict.fromkeys(errors))
    aggregate = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
    return Decision(False, f"RBAC: {aggregate}")
