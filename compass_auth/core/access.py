"""What a handler requires of its caller, in Kubernetes RBAC terms, and the review that asks.

A check is what a SubjectAccessReview asks about (``k8s.io/api/authorization/v1``): either
resource attributes (verb, API group, resource, subresource, namespace, name) or a non-resource
URL and verb. A handler lists the checks it requires (``required_access``); all must pass. The
namespace and the name may be templates, ``{argument}``, filled per request from the route's
named path arguments, or ``{service_namespace}``, the namespace the service runs in.

The text form (``AUTH_REQUIRED_ACCESS``, docs/authorization.md#the-syntax) is strict: checks
separated by ``;``, fields ``key=value`` separated by ``,``; unknown, repeated or missing keys,
empty values and characters that no Kubernetes name has are refused with a sentence that says
which. ``str(check)`` writes the same form back (log lines and the ``auth.check`` attribute).

Pure: no I/O. ``review_body`` builds the request for an ``Identity`` and a resolved check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .identity import Identity

#: The template that names the namespace the service runs in (not a path argument).
SERVICE_NAMESPACE = "service_namespace"

_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Verbs are lowercase words (get, list, create, proxy, impersonate, ...); a check asks about
# one verb, never the "*" that only rules may hold.
_VERB = re.compile(r"[a-z]+")
# An API group is a DNS subdomain (empty for the core group, written by leaving `group` out).
_GROUP = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Resources and subresources are lowercase plural names such as pods, services, log, proxy.
_RESOURCE = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
# A namespace is a DNS label (RFC 1123), at most 63 characters.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Object names are DNS subdomains for most kinds, but RBAC matches any string: allow what
# Kubernetes names use, nothing that would make the text form ambiguous.
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9._:@]*[A-Za-z0-9])?")
# An absolute path without query, fragment, whitespace, wildcard or the syntax's separators.
_PATH = re.compile(r"/[-A-Za-z0-9._~/%!$&'()+:@]*")
_MAX_NAME = 253
_MAX_NAMESPACE = 63
_MAX_PATH = 1024
#: More checks than any handler needs; each one costs a review per caller.
MAX_CHECKS = 16


class AccessSyntaxError(ValueError):
    """A check is not well formed; the message says what is wrong."""


class UnresolvedTemplate(LookupError):
    """A check names a template that this request cannot fill (a handler bug; ``routes``
    refuses it at start-up)."""


@dataclass(frozen=True, slots=True)
class ResourceCheck:
    """May the caller ``verb`` the ``resource`` (of API ``group``, core when empty)?

    ``namespace`` empty asks about every namespace (or a cluster-scoped resource); ``name``
    empty asks about the whole collection. Both may be templates (module docstring).
    """

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    #: Whether the namespace or name is a template (computed once, not compared).
    templated: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "templated", bool(
            _TEMPLATE.fullmatch(self.namespace) or _TEMPLATE.fullmatch(self.name)))
        _match("verb", self.verb, _VERB)
        _match("resource", self.resource, _RESOURCE, hint=(
            "name a subresource with subresource=" if "/" in self.resource else ""))
        if self.group:
            _match("group", self.group, _GROUP, limit=_MAX_NAME)
        if self.subresource:
            _match("subresource", self.subresource, _RESOURCE)
        if self.namespace and not _TEMPLATE.fullmatch(self.namespace):
            _match("namespace", self.namespace, _NAMESPACE, limit=_MAX_NAMESPACE)
        if self.name and not _TEMPLATE.fullmatch(self.name):
            _match("name", self.name, _NAME, limit=_MAX_NAME)

    def templates(self) -> frozenset[str]:
        """The names of this check's templates (``{team}`` -> ``team``)."""
        return frozenset(match.group(1) for value in (self.namespace, self.name)
                         if (match := _TEMPLATE.fullmatch(value)))

    def resolve_static(self) -> bool:
        """Whether every template is ``{service_namespace}`` (the same value on every request)."""
        return all(value == "{" + SERVICE_NAMESPACE + "}" for value in (self.namespace, self.name)
                   if _TEMPLATE.fullmatch(value))

    def resolve(self, arguments: Mapping[str, str | None]) -> ResourceCheck:
        """This check with its templates filled from ``arguments``.

        Raises ``UnresolvedTemplate`` when an argument is missing (the route has no such group)
        and ``AccessSyntaxError`` when a value is no namespace or object name: absent (``None``,
        an optional group that did not match), empty, or anything Kubernetes' naming rules
        refuse, a template among them. No RBAC rule can grant such a value: the caller is
        denied without a review."""
        if not self.templated:
            return self
        return ResourceCheck(self.verb, self.resource, self.group, self.subresource,
                             _fill("namespace", self.namespace, arguments),
                             _fill("name", self.name, arguments))

    def attributes(self) -> dict[str, str]:
        """``spec.resourceAttributes`` of a SubjectAccessReview (empty fields left out)."""
        pairs = (("namespace", self.namespace), ("verb", self.verb), ("group", self.group),
                 ("resource", self.resource), ("subresource", self.subresource),
                 ("name", self.name))
        return {key: value for key, value in pairs if value}

    def __str__(self) -> str:
        return ",".join(f"{item.name}={getattr(self, item.name)}"
                        for item in fields(self) if item.init and getattr(self, item.name))


@dataclass(frozen=True, slots=True)
class NonResourceCheck:
    """May the caller ``verb`` the non-resource URL ``path``? (Only ClusterRoles bound by
    ClusterRoleBindings grant these: RBAC has no namespaced non-resource rules.)"""

    verb: str
    path: str

    def __post_init__(self) -> None:
        _match("verb", self.verb, _VERB)
        _match("path", self.path, _PATH, limit=_MAX_PATH, hint=(
            "a check asks about one path; `*` belongs in the ClusterRole's nonResourceURLs"
            if "*" in self.path else "it must start with / and have no query or spaces"))

    templated = False

    def templates(self) -> frozenset[str]:
        return frozenset()

    def resolve_static(self) -> bool:
        return True

    def resolve(self, arguments: Mapping[str, str | None]) -> NonResourceCheck:
        return self

    def attributes(self) -> dict[str, str]:
        """``spec.nonResourceAttributes`` of a SubjectAccessReview."""
        return {"path": self.path, "verb": self.verb}

    def __str__(self) -> str:
        return f"verb={self.verb},path={self.path}"


Check = ResourceCheck | NonResourceCheck

_RESOURCE_KEYS = frozenset(item.name for item in fields(ResourceCheck) if item.init)
_NON_RESOURCE_KEYS = frozenset(item.name for item in fields(NonResourceCheck))


def parse_access(text: str) -> tuple[Check, ...]:
    """The checks of ``text`` (the ``AUTH_REQUIRED_ACCESS`` syntax); empty text, none.

    Raises ``AccessSyntaxError`` naming the check (by position) and what is wrong with it.
    """
    if not text.strip():
        return ()
    items = text.split(";")
    if len(items) > MAX_CHECKS:
        raise AccessSyntaxError(f"{len(items)} checks; at most {MAX_CHECKS} are accepted")
    return tuple(_parse_check(item, position)
                 for position, item in enumerate(items, start=1))


def format_access(checks: tuple[Check, ...]) -> str:
    """The text form of ``checks``; ``parse_access`` reads it back to equal checks."""
    return ";".join(str(check) for check in checks)


def _parse_check(item: str, position: int) -> Check:
    where = f"check {position} ({item.strip()[:80]!r})"
    if not item.strip():
        raise AccessSyntaxError(f"check {position} is empty (a stray ';'?)")
    values: dict[str, str] = {}
    for part in item.split(","):
        key, separator, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not separator:
            raise AccessSyntaxError(f"{where}: {part.strip()!r} is not key=value")
        if key not in _RESOURCE_KEYS | _NON_RESOURCE_KEYS:
            known = ", ".join(sorted(_RESOURCE_KEYS | _NON_RESOURCE_KEYS))
            raise AccessSyntaxError(f"{where}: unknown key {key!r} (known: {known})")
        if key in values:
            raise AccessSyntaxError(f"{where}: {key} is given twice")
        if not value:
            raise AccessSyntaxError(
                f"{where}: {key} is empty (leave the key out" +
                (" for the core group)" if key == "group" else ")"))
        values[key] = value
    if "verb" not in values:
        raise AccessSyntaxError(f"{where}: verb= is missing")
    try:
        if "path" in values:
            extra = sorted(set(values) - _NON_RESOURCE_KEYS)
            if extra:
                raise AccessSyntaxError(
                    f"{where}: path= (a non-resource URL) cannot be combined with "
                    f"{', '.join(extra)}")
            return NonResourceCheck(**values)
        if "resource" not in values:
            raise AccessSyntaxError(f"{where}: resource= or path= is missing")
        return ResourceCheck(**values)
    except AccessSyntaxError as error:
        if str(error).startswith(where):
            raise
        raise AccessSyntaxError(f"{where}: {error}") from None


def review_body(identity: Identity, check: Check) -> dict[str, Any]:
    """The SubjectAccessReview that asks whether ``identity`` passes ``check`` (resolved).

    It carries what kube-apiserver itself would authorize the caller as (its service-account
    authenticator's ``UserInfo``): the user, the service account's uid, the groups and the
    ``authentication.kubernetes.io/*`` extra values, the credential id among them. Both
    verification paths fill these ``Identity`` fields alike.
    """
    spec: dict[str, Any] = {}
    if isinstance(check, ResourceCheck):
        spec["resourceAttributes"] = check.attributes()
    else:
        spec["nonResourceAttributes"] = check.attributes()
    spec["user"] = identity.subject
    spec["groups"] = list(identity.groups)
    extra = user_extra(identity)
    if extra:
        spec["extra"] = extra
    uid = identity.uid or identity.service_account_uid
    if uid:
        spec["uid"] = uid
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": spec}


def user_extra(identity: Identity) -> dict[str, list[str]]:
    """``authentication.kubernetes.io/*`` extra values as kube-apiserver sets them (keys
    sorted, absent ones left out); for another issuer's user, the ``extra`` its claim mappings
    made (the API server sends exactly that user)."""
    if identity.authenticator is not None:
        return {key: list(values) for key, values in sorted(identity.extra.items())}
    values = (("credential-id", identity.credential_id), ("node-name", identity.node_name),
              ("node-uid", identity.node_uid), ("pod-name", identity.pod_name),
              ("pod-uid", identity.pod_uid))
    return {f"authentication.kubernetes.io/{key}": [value] for key, value in values if value}


def principal(identity: Identity) -> tuple[Any, ...]:
    """Everything of ``identity`` that goes into a review: the caller part of a decision's
    cache key (two identities with equal principals get the same answer)."""
    return (identity.subject, identity.service_account_uid, identity.groups,
            identity.credential_id, identity.node_name, identity.node_uid,
            identity.pod_name, identity.pod_uid, identity.authenticator, identity.uid,
            tuple(sorted(identity.extra.items())) if identity.extra else ())


def uses_service_namespace(checks: tuple[Check, ...] | list[Check]) -> bool:
    return any(isinstance(check, ResourceCheck) and "{" + SERVICE_NAMESPACE + "}"
               in (check.namespace, check.name) for check in checks)


def _fill(key: str, value: str, arguments: Mapping[str, str | None]) -> str:
    match = _TEMPLATE.fullmatch(value)
    if match is None:
        return value
    try:
        filled = arguments[match.group(1)]
    except KeyError:
        raise UnresolvedTemplate(
            f"template {value} has no value (the route has no argument of that name)"
        ) from None
    # The new check validates the value, except in two cases it would take for "ask about
    # every namespace" and "a template to fill later". Tornado passes None for an optional
    # group that did not match.
    if not filled:
        raise AccessSyntaxError(f"{key}: template {value} is "
                                f"{'absent from' if filled is None else 'empty in'} the request")
    if _TEMPLATE.fullmatch(filled):
        raise AccessSyntaxError(f"{key}={filled[:80]!r} is not a valid {key} (a template sent "
                                "as a value)")
    return filled


def _match(key: str, value: str, pattern: re.Pattern[str], *, limit: int = _MAX_NAME,
           hint: str = "") -> None:
    if not isinstance(value, str) or len(value) > limit or not pattern.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else value
        raise AccessSyntaxError(
            f"{key}={shown!r} is not a valid {key}" + (f" ({hint})" if hint else ""))

