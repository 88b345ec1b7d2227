"""Whether a request gets in: authentication, the subject lists, then the RBAC checks.

The one decision every adapter makes for a request, framework-neutral: the Tornado handler
(``compass_auth.tornado.handler.AuthenticatedHandler.prepare``) and the ASGI adapter
(``compass_auth.asgi``) call ``admit_cached`` and, when it could not decide without I/O,
``admit``. Verification, the subject lists, authorization, their log lines, spans and metrics
all happen inside the ``Authenticator`` and the ``Authorizer``; this module only puts them in
order, combines the service-wide checks (``AUTH_REQUIRED_ACCESS``) with a route's own, and says
how long a refused client should wait (``retry_after``).

Split in two so that the common request (a token verified before, a decision cached) is
answered without creating a coroutine: most requests never reach ``admit``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from ..apiserver.subjectaccess import Decision
from ..authorization.authorizer import Authorizer
from ..core.access import MAX_CHECKS, SERVICE_NAMESPACE, Check, NonResourceCheck, ResourceCheck
from ..core.bearer import HeaderProblem
from ..core.errors import AuthError, AuthorizationUnavailable
from ..core.identity import Identity
from ..settings import SettingsError
from .authenticator import Authenticator
from .authenticator import Pending as Unverified


class RouteAccessError(SettingsError):
    """A route cannot fill a check's template; the message names the setting or handler and
    the route."""


@dataclass(slots=True)
class Pending:
    """``admit_cached`` could not decide without I/O: what it found, for ``admit``."""

    #: What the authenticator could not answer from its caches (for
    #: ``authenticate_uncached``), or the identity whose checks the decision cache could not
    #: all answer.
    found: Identity | Unverified | HeaderProblem
    #: What the decision cache held for the first checks (``Authorizer.authorize_cached``),
    #: so that ``admit`` does not read it again.
    cached: tuple[Decision | None, ...] = ()


def admit_cached(
    authenticator: Authenticator, authorizer: Authorizer, authorization: list[str],
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
    if checks:
        cached = authorizer.authorize_cached(answer, checks, arguments)
        if cached is not None:
            return Pending(answer, cached)
    return answer


async def admit(
    authenticator: Authenticator, authorizer: Authorizer, pending: Pending,
    allowed_subjects: Collection[str] | None, checks: Sequence[Check],
    arguments: Mapping[str, str | None],
) -> Identity:
    """Finish what ``admit_cached`` left: verify the credential, then decide the checks, asking
    the API server where needed. Raises an ``AuthError`` (already logged, counted and traced)
    when the caller is not let in."""
    found = pending.found
    if isinstance(found, Identity):
        # Verified from the cache; the decision cache could not answer every check.
        await authorizer.authorize(found, checks, arguments, pending.cached)
        return found
    identity = await authenticator.authenticate_uncached(found, allowed_subjects)
    if checks:
        cached = authorizer.authorize_cached(identity, checks, arguments)
        if cached is not None:
            await authorizer.authorize(identity, checks, arguments, cached)
    return identity


def retry_after(authenticator: Authenticator, authorizer: Authorizer, error: AuthError) -> int:
    """Seconds a client refused with 503 should wait: the authorizer answers for its own 503s
    (``Authorizer.retry_after``), the authenticator for verification's."""
    if isinstance(error, AuthorizationUnavailable):
        return authorizer.retry_after(error)
    return authenticator.retry_after(error)


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
    fill the templates is known only with its path (``unfillable``, called by
    ``compass_auth.tornado.routes.check_routes`` and ``compass_auth.asgi.check_routes``)."""
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
                "NonResourceCheck (compass_auth.core.access.parse_access reads the text form)")


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
