"""Whether a request gets in: authentication, the subject lists, then the RBAC checks.

The one decision every adapter makes for a request, framework-neutral: the Tornado handler
(``handler.AuthenticatedHandler.prepare``) and the ASGI adapter (``compass_auth.asgi``) call
``admit_cached`` and, when it could not decide without I/O, ``admit``. Verification, the subject
lists, authorization, their log lines, spans and metrics all happen inside the
``Authenticator`` and its ``Authorizer``; this module only puts them in order and combines the
service-wide checks (``AUTH_REQUIRED_ACCESS``) with a route's own.

Split in two so that the common request (a token verified before, a decision cached) is
answered without creating a coroutine: most requests never reach ``admit``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .access import MAX_CHECKS, SERVICE_NAMESPACE, Check, NonResourceCheck, ResourceCheck
from .authenticator import Authenticator
from .bearer import Credential
from .identity import Identity
from .settings import SettingsError


class RouteAccessError(SettingsError):
    """A route cannot fill a check's template; the message names the setting or handler and
    the route."""


@dataclass(slots=True)
class Pending:
    """``admit_cached`` could not decide without I/O: what it found, for ``admit``."""

    #: The request's credential (not verified from the cache), or the identity whose checks
    #: the decision cache could not answer.
    found: Identity | Credential


def admit_cached(
    authenticator: Authenticator, authorization: list[str],
    allowed_subjects: Collection[str] | None, checks: Sequence[Check],
    arguments: Mapping[str, str | None],
) -> Identity | Pending:
    """The caller's ``Identity`` when caches decide everything (each answer counted); raises the
    ``AuthError`` of a cached denial; else ``Pending`` for ``admit``.

    ``authorization``: the request's ``Authorization`` header values; ``checks``: every check
    of the route (``all_checks``); ``arguments``: the route's path arguments, which fill the
    checks' ``{name}`` templates."""
    answer = authenticator.authenticate_cached(authorization, allowed_subjects)
    if not isinstance(answer, Identity):
        return Pending(answer)
    if checks and not authenticator.authorizer.authorize_cached(answer, checks, arguments):
        return Pending(answer)
    return answer


async def admit(
    authenticator: Authenticator, pending: Pending,
    allowed_subjects: Collection[str] | None, checks: Sequence[Check],
    arguments: Mapping[str, str | None],
) -> Identity:
    """Finish what ``admit_cached`` left: verify the credential, then decide the checks, asking
    the API server where needed. Raises an ``AuthError`` (already logged, counted and traced)
    when the caller is not let in."""
    found = pending.found
    authorizer = authenticator.authorizer
    if isinstance(found, Identity):
        # Verified from the cache; the decision cache could not answer every check.
        await authorizer.authorize(found, checks, arguments)
        return found
    identity = await authenticator.authenticate_uncached(found, allowed_subjects)
    if checks and not authorizer.authorize_cached(identity, checks, arguments):
        await authorizer.authorize(identity, checks, arguments)
    return identity


def all_checks(service_wide: Sequence[Check], own: Sequence[Check] | None) -> Sequence[Check]:
    """The service-wide checks, then the route's own (each once, in that order)."""
    if not own:
        return service_wide
    if not service_wide:
        return own
    return tuple(dict.fromkeys((*service_wide, *own)))


def validate_checks(checks: object, where: str) -> None:
    """What can be checked of a route's ``required_access`` when it is declared: a sequence of at
    most ``MAX_CHECKS`` check objects; raises ``TypeError`` naming ``where``. Whether a route can
    fill the templates is known only with its path (``unfillable``: ``routes.check_routes`` for
    Tornado, ``compass_auth.asgi.check_routes`` for ASGI)."""
    if checks is None:
        return
    if isinstance(checks, ResourceCheck | NonResourceCheck | str) or not isinstance(
            checks, Sequence):
        raise TypeError(f"{where} is {checks!r}: it must be a tuple of checks, e.g. "
                        "(ResourceCheck(...),)")
    if len(checks) > MAX_CHECKS:
        raise TypeError(f"{where} holds {len(checks)} checks; at most {MAX_CHECKS} are "
                        "accepted (each one costs a review per caller)")
    for check in checks:
        if not isinstance(check, ResourceCheck | NonResourceCheck):
            raise TypeError(
                f"{where} holds {check!r}: each check must be a ResourceCheck or "
                "NonResourceCheck (compass_auth.access.parse_access reads the text form)")


def unfillable(origin: str, checks: Sequence[Check], where: str, arguments: Collection[str],
               namespace_known: bool, *, noun: str = "path argument",
               listed: str = "named groups") -> Iterator[str]:
    """A sentence for each template of ``checks`` that ``where`` cannot fill: a name that is
    none of the route's ``arguments``, or ``{service_namespace}`` when the service's namespace
    is unknown. ``origin`` names where the checks come from (``AUTH_REQUIRED_ACCESS``, a
    handler's or middleware's ``required_access``); ``noun`` and ``listed`` are the framework's
    words for the route's arguments. Without this refusal at start-up, such a check answers 500
    to every authenticated request of the route (issue 18, finding 9)."""
    for position, check in enumerate(checks, start=1):
        for name in sorted(check.templates()):
            if name == SERVICE_NAMESPACE:
                if not namespace_known:
                    yield (f"{origin}: check {position} ({check}) uses {{{SERVICE_NAMESPACE}}}, "
                           "but the service's namespace is unknown (no namespace file in "
                           "AUTH_SERVICEACCOUNT_DIR, or no namespace in the kubeconfig context)")
                continue
            if name in arguments:
                continue
            has = ", ".join(sorted(arguments)) if arguments else "none"
            close = difflib.get_close_matches(name, [*arguments, SERVICE_NAMESPACE], n=1)
            hint = f"; did you mean {{{close[0]}}}?" if close else ""
            yield (f"{origin}: check {position} ({check}) uses {{{name}}}, but {where} has no "
                   f"{noun} of that name ({listed}: {has}; "
                   f"{{{SERVICE_NAMESPACE}}} is the service's namespace){hint}")
