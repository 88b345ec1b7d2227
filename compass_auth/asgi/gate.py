"""One route's admission on ASGI: its subject list and checks, decided by ``admission``.

The ASGI counterpart of ``AuthenticatedHandler.prepare``: the same two steps
(``admission.admit_cached``, then ``admission.admit``), with the header read from the ASGI scope
and the ``{name}`` templates filled from the route's path parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from ..core.access import Check
from ..core.answers import Answer, rejection
from ..core.caller_slots import CallerSlots
from ..core.errors import AuthError
from ..core.identity import Identity
from ..verification.admission import (
    Pending,
    admit,
    admit_cached,
    all_checks,
    retry_after,
    validate_checks,
)
from ..verification.authenticator import Authenticator


class GateOwner(Protocol):
    """What the adapter needs of a gate's ``Auth`` (auth.py), named here so that neither this
    module nor routes.py imports auth.py, which imports them (no import cycle)."""

    @property
    def authenticator(self) -> Authenticator: ...

    @property
    def websocket_slots(self) -> CallerSlots: ...

#: The scope key under which the admitted ``Identity`` is kept (besides Starlette's ``user``).
IDENTITY_KEY = "compass_auth.identity"


class Gate:
    """``allowed_subjects`` and ``required_access`` of a route (on top of the service-wide
    ``AUTH_ALLOWED_SUBJECTS`` and ``AUTH_REQUIRED_ACCESS``, as for ``AuthenticatedHandler``)."""

    __slots__ = ("_checks", "allowed_subjects", "auth", "required_access", "where")

    def __init__(self, auth: GateOwner, allowed_subjects: Collection[str] | None = None,
                 required_access: Sequence[Check] | None = None, *,
                 where: str = "required_access") -> None:
        validate_checks(required_access, where)
        if isinstance(allowed_subjects, str):
            raise TypeError(f"allowed_subjects is {allowed_subjects!r}: a collection of "
                            "subjects, e.g. {'system:serviceaccount:NS:NAME'}")
        self.auth = auth
        #: What declared ``required_access`` (named in a start-up refusal: routes.py).
        self.where = where
        self.allowed_subjects = frozenset(allowed_subjects) if allowed_subjects else None
        self.required_access = tuple(required_access) if required_access else None
        #: (authenticator, its checks combined with ours): the settings never change.
        self._checks: tuple[Authenticator, Sequence[Check]] | None = None

    def checks(self, authenticator: Authenticator) -> Sequence[Check]:
        known = self._checks
        if known is None or known[0] is not authenticator:
            known = (authenticator,
                     all_checks(authenticator.settings.required_access, self.required_access))
            self._checks = known
        return known[1]

    def admit_cached(self, scope: Mapping[str, Any]) -> Identity | Pending:
        """``admission.admit_cached`` for this request (no I/O); raises ``AuthError``."""
        authenticator = self.auth.authenticator
        return admit_cached(authenticator, authenticator.authorizer, authorization_of(scope),
                            self.allowed_subjects, self.checks(authenticator),
                            scope.get("path_params") or {})

    async def admit(self, scope: Mapping[str, Any],
                    pending: Pending | None = None) -> Identity:
        """The caller's ``Identity``, or the ``AuthError`` that refuses it (already logged,
        counted and traced)."""
        if pending is None:
            answer = self.admit_cached(scope)
            if isinstance(answer, Identity):
                return answer
            pending = answer
        authenticator = self.auth.authenticator
        return await admit(authenticator, authenticator.authorizer, pending,
                           self.allowed_subjects, self.checks(authenticator),
                           scope.get("path_params") or {})

    def answer(self, error: AuthError) -> Answer:
        """The answer to ``error``: the same as the Tornado handler's (``answers.rejection``)."""
        authenticator = self.auth.authenticator
        return rejection(error, authenticator.settings.realm, functools.partial(
            retry_after, authenticator, authenticator.authorizer))


def authorization_of(scope: Mapping[str, Any]) -> list[str]:
    """The request's ``Authorization`` header values (ASGI gives names in lower case)."""
    return [value.decode("latin-1") for name, value in scope["headers"]
            if name == b"authorization"]
