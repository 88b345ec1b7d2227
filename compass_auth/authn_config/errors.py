"""What goes wrong with an ``AuthenticationConfiguration``: the file (at load) or a token's claims
(at verification).

A bad file is one ``AuthenticationConfigError`` (a ``SettingsError``, so a service refuses to
start with it) listing every ``FieldError``, each printed the way kube-apiserver prints its own
(``k8s.io/apimachinery/pkg/util/validation/field/errors.go``): the field path, the kind of error,
the value for the kinds that show one, and the rule. Claims that a configuration refuses raise a
``TokenRejected`` (401) whose class is the outcome reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..core.errors import TokenRejected
from ..settings import SettingsError

#: The kinds of ``field.Error`` the API server reports, plus the strict decoder's "unknown field".
FieldErrorKind = Literal["Required", "Invalid", "Duplicate", "TooMany", "Forbidden",
                         "NotSupported", "Unknown"]

_TITLES = {
    "Required": "Required value", "Invalid": "Invalid value", "Duplicate": "Duplicate value",
    "TooMany": "Too many", "Forbidden": "Forbidden", "NotSupported": "Unsupported value",
    "Unknown": "Unknown field",
}
#: Kinds whose text shows the offending value (as field.Error.ErrorBody does).
_SHOWS_VALUE = {"Invalid", "Duplicate", "NotSupported", "TooMany"}


def go_quote(text: str) -> str:
    """Go's ``%q`` for the strings a configuration holds (printable text): a double-quoted,
    backslash-escaped string."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule at one field, e.g. ``jwt[0].issuer.url``."""

    path: str
    kind: FieldErrorKind
    detail: str = ""
    value: object = None

    def __str__(self) -> str:
        text = f"{self.path}: {_TITLES[self.kind]}"
        if self.kind in _SHOWS_VALUE:
            value = self.value
            shown = go_quote(value) if isinstance(value, str) else (
                "null" if value is None else str(value).lower() if isinstance(value, bool)
                else str(value))
            text += f": {shown}"
        if self.detail:
            text += f": {self.detail}"
        return text


def aggregate(errors: Sequence[FieldError]) -> str:
    """The errors as ``errors.NewAggregate(list).Error()`` prints them: one alone, several in
    brackets separated by commas."""
    texts = [str(error) for error in errors]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


class AuthenticationConfigError(SettingsError):
    """The AuthenticationConfiguration file cannot be used; the message names the file, each
    field path and the rule it breaks."""

    def __init__(self, source: str, errors: Sequence[FieldError]) -> None:
        self.source = source
        self.errors = tuple(errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        count = len(self.errors)
        super().__init__(
            f"{source}: invalid AuthenticationConfiguration ({count} "
            f"error{'s' if count != 1 else ''}):\n{lines}")


# --- A token that the configuration refuses: 401, like kube-apiserver. -----------------------


class ClaimRejected(TokenRejected):
    """A ``claimValidationRules`` entry failed, or a ``claimMappings`` entry could not map the
    claims (a claim missing or of the wrong type, an expression that failed)."""

    reason = "claim_rejected"
    default_description = "the token's claims are not accepted"


class UserRejected(TokenRejected):
    """A ``userValidationRules`` entry refused the user the claims mapped to."""

    reason = "user_rejected"
    default_description = "the token's user is not accepted"


class IssuerUnknown(TokenRejected):
    """No ``jwt`` authenticator of the configuration has the token's issuer."""

    reason = "issuer_unknown"
    default_description = "the token issuer is not accepted"
