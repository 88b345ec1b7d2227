"""``metav1.Status`` bodies of the RBAC and SubjectAccessReview routes, worded like upstream.

Field errors follow ``k8s.io/apimachinery/pkg/util/validation/field/errors.go`` (``Required
value``, ``Invalid value: X``, ``Unsupported value: "x": supported values: ...``), gathered the
way ``apierrors.NewInvalid`` does (one error alone, several in brackets, each a ``cause``). The
403 text is ``responsewriters.forbiddenMessage``. Clients must never parse any of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from compass_auth.testing.wire import bodies

logger = logging.getLogger(__name__)

ErrorType = Literal["Required", "Invalid", "NotSupported", "Forbidden"]
_CAUSE_REASON = {
    "Required": "FieldValueRequired",
    "Invalid": "FieldValueInvalid",
    "NotSupported": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
}


def go_value(value: Any) -> str:
    """How a field error shows the bad value: strings quoted, the rest as compact JSON."""
    if value is None:
        return '"null"'
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One ``field.Error``: where, which type, the detail, and the bad value (Invalid only)."""

    field: str
    type: ErrorType
    detail: str = ""
    value: Any = None
    supported: tuple[str, ...] = ()

    def body(self) -> str:
        """``ErrorBody()``: the message without the field path."""
        if self.type == "Required":
            text = "Required value"
        elif self.type == "Forbidden":
            text = "Forbidden"
        elif self.type == "NotSupported":
            quoted = ", ".join(json.dumps(s) for s in self.supported)
            text = f"Unsupported value: {go_value(self.value)}"
            return f"{text}: supported values: {quoted}"
        else:
            text = f"Invalid value: {go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


class Malformed(ValueError):
    """The body does not decode as the expected kind (wrong JSON types): 400 BadRequest."""


def type_error(kind: str, where: str, value: Any, go_type: str) -> Malformed:
    """``value`` at ``where`` is not of ``go_type``, in encoding/json's words as the API server
    passes them on."""
    return Malformed(
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value)} into Go struct field {where} of type {go_type}"
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class Invalid(ValueError):
    """The object decoded but fails validation: 422 Invalid with one cause per field error."""

    def __init__(self, kind: str, group: str, name: str, errors: Sequence[FieldError]) -> None:
        self.kind, self.group, self.name = kind, group, name
        self.errors = tuple(errors)
        messages = [str(error) for error in self.errors]
        aggregate = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
        qualified = f"{kind}.{group}" if group else kind
        super().__init__(f"{qualified} {json.dumps(name)} is invalid: {aggregate}")

    def status(self) -> dict[str, Any]:
        """The 422 body (``StatusDetails`` field order; ``name`` omitted when empty)."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        details["group"] = self.group
        details["kind"] = self.kind
        details["causes"] = [
            {"reason": _CAUSE_REASON[e.type], "message": e.body(), "field": e.field}
            for e in self.errors
        ]
        return bodies.status(422, str(self), "Invalid", details)


def forbidden(
    username: str, verb: str, group: str, resource: str, namespace: str = "", name: str = ""
) -> dict[str, Any]:
    """403 from RBAC for a resource request (``ForbiddenStatusError``)."""
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    why = (
        f'User "{username}" cannot {verb} resource "{resource}" in API group "{group}" {scope}'
    )
    qualified = f"{resource}.{group}" if group else resource
    subject = f'{qualified} "{name}"' if name else qualified
    details: dict[str, Any] = {"name": name} if name else {}
    details.update(group=group, kind=resource)
    return bodies.status(403, f"{subject} is forbidden: {why}", "Forbidden", details)


def already_exists(group: str, resource: str, name: str) -> dict[str, Any]:
    """409 for a create whose name is taken (``apierrors.NewAlreadyExists``)."""
    return bodies.status(
        409,
        f'{resource}.{group} "{name}" already exists',
        "AlreadyExists",
        {"name": name, "group": group, "kind": resource},
    )


def too_large(limit: int) -> dict[str, Any]:
    """413 for a body over the limit (``apierrors.NewRequestEntityTooLargeError``)."""
    return bodies.status(
        413, f"Request entity too large: limit is {limit}", "RequestEntityTooLarge"
    )


def store_full(group: str, resource: str, name: str, limit: int) -> dict[str, Any]:
    """403 when the emulator already holds its maximum of RBAC objects.

    A real cluster would hit a ResourceQuota or etcd's size instead; either way the client
    gets a 4xx it can read, never a 500.
    """
    return bodies.status(
        403,
        f'{resource}.{group} "{name}" is forbidden: the emulator holds at most {limit} '
        "RBAC objects",
        "Forbidden",
        {"name": name, "group": group, "kind": resource},
    )
