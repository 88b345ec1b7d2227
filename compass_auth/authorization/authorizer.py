"""May this authenticated caller call this handler? Kubernetes RBAC decides.

A handler lists the checks it requires (``access.ResourceCheck`` / ``access.NonResourceCheck``,
all must pass). The static subject lists were already applied during authentication, locally:
only a caller they let in reaches the ``Authorizer``, so only such a caller costs a
SubjectAccessReview. Each check is decided from the decision cache or by a review
(``subjectaccess.AccessReviewer``), and recorded at one place: an ``auth.authorize`` span, the
``auth.authorizations`` counter and, unless allowed, a log line naming the check and the API
server's reason with the caller's credential id (never the token).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..apiserver.subjectaccess import AccessReviewer, Decision
from ..core.access import (
    SERVICE_NAMESPACE,
    AccessSyntaxError,
    Check,
    UnresolvedTemplate,
    principal,
    review_body,
)
from ..core.errors import AccessDenied, AuthError, AuthorizationUnavailable
from ..core.identity import Identity
from ..logs.budget import LogBudget
from ..logs.text import LogText, clip
from ..telemetry import Telemetry

logger = logging.getLogger(__name__)

#: Log messages operators grep for; keep them stable.
MSG_DENIED = "access denied"
MSG_UNAVAILABLE = "authorization failed"
#: Characters of the API server's reason (or our detail) in a denial's log line.
MAX_DETAIL_CHARS = 400
#: Checks remembered resolved (they come from handler classes and settings: a few).
MAX_RESOLVED = 256
#: Retry-After for a 503 when SubjectAccessReview was busy or failing and the API server named
#: no time: a short pause, not a schedule.
UNAVAILABLE_RETRY_AFTER = 2


class Authorizer:
    """Decides a handler's checks for an ``Identity``; built by ``factory.build`` beside the
    ``Authenticator``, and handed to handlers by the application's settings
    (``AuthenticatedHandler.get_authorizer``)."""

    def __init__(self, reviewer: AccessReviewer, telemetry: Telemetry, *,
                 service_namespace: str | None) -> None:
        self.reviewer = reviewer
        self._telemetry = telemetry
        #: Fills the ``{service_namespace}`` template; ``None`` when unknown (outside a cluster
        #: with a kubeconfig context without namespace).
        self.service_namespace = service_namespace or None
        #: Checks whose only template is ``{service_namespace}``, resolved once: the common case
        #: then costs a dict lookup instead of building and validating a check per request.
        self._resolved: dict[Check, Check] = {}
        #: Denial and shedding lines per reason (docs/reliability.md#log-volume); every
        #: decision is still counted by the auth.authorizations metric.
        self.log_budget = LogBudget()

    def forget(self, identity: Identity) -> int:
        """Drop the cached decisions for ``identity`` (its token was revoked:
        verification/revocation.py); return how many."""
        return self.reviewer.forget(principal(identity))

    def authorize_cached(self, identity: Identity, checks: Sequence[Check],
                         arguments: Mapping[str, str | None]
                         ) -> tuple[Decision | None, ...] | None:
        """The common case, without I/O or ``await``: ``None`` when the cache allowed every
        check (each recorded); raise ``AccessDenied`` when it holds a denial for one. Else some
        check needs ``authorize``, which records them all: what the cache held for the checks
        read so far (``None`` for the one it lacked), which ``authorize(..., cached=)`` uses
        instead of reading the cache again."""
        caller = principal(identity)
        decisions: list[tuple[Check, Decision]] = []
        for check in checks:
            if check.templated:
                try:
                    check = self._resolve(check, arguments)
                except (AccessSyntaxError, UnresolvedTemplate):
                    # authorize() reports it
                    return tuple(decision for _, decision in decisions)
            decision = self.reviewer.cached((caller, check))
            if decision is None:
                return (*(decision for _, decision in decisions), None)
            decisions.append((check, decision))
        for check, decision in decisions:
            if not decision.allowed:
                error = self._denied(check, decision)
                self._telemetry.cached_authorization(check, identity, error.outcome,
                                                     error.reason)
                self._log(error, identity, str(check))
                raise error
            self._telemetry.cached_authorization(check, identity)
        return None

    async def authorize(self, identity: Identity, checks: Sequence[Check],
                        arguments: Mapping[str, str | None],
                        cached: Sequence[Decision | None] = ()) -> None:
        """Decide every check in order, asking the API server for those the cache cannot
        answer; raise ``AccessDenied`` (403) at the first that fails, or
        ``AuthorizationUnavailable`` (503) when the API server cannot decide. ``cached``: what
        ``authorize_cached`` read for the first checks (their cache is not read again).

        A value from the URL that no namespace or name has (absent, empty, a template itself,
        ``Team_A``) is denied here without a review. A template that the request cannot fill
        is a bug of the handler (its route lacks the argument; ``routes.check_routes`` refuses
        it at start-up): ``UnresolvedTemplate`` propagates, and the request gets a 500."""
        caller = principal(identity)
        for index, check in enumerate(checks):
            invalid: AccessSyntaxError | None = None
            try:
                resolved = self._resolve(check, arguments)
            except AccessSyntaxError as error:
                resolved, invalid = check, error
            try:
                with self._telemetry.authorization(resolved, identity) as record:
                    if invalid is not None:
                        # A value from the URL that is no namespace or name: no rule can grant
                        # it, so the caller is denied without a review.
                        raise AccessDenied(f"the request fills {check} with an invalid value: "
                                           f"{invalid}", check=str(check))
                    key = (caller, resolved)
                    decision = (cached[index] if index < len(cached)
                                else self.reviewer.cached(key))
                    record.cache_hit = decision is not None
                    if decision is None:
                        decision = await self.reviewer.review(key,
                                                              review_body(identity, resolved))
                    if not decision.allowed:
                        raise self._denied(resolved, decision)
            except AuthError as error:
                self._log(error, identity, str(resolved))
                raise

    @staticmethod
    def retry_after(error: AuthorizationUnavailable) -> int:
        """Seconds a client should wait after an authorization 503: what the API server asked
        of us when it sent Retry-After, else a moment (1..60)."""
        if error.retry_after is not None:
            return max(1, min(60, math.ceil(error.retry_after)))
        return UNAVAILABLE_RETRY_AFTER

    def _resolve(self, check: Check, arguments: Mapping[str, str | None]) -> Check:
        if not check.templated:
            return check
        resolved = self._resolved.get(check)
        if resolved is not None:
            return resolved
        if self.service_namespace is None:
            return check.resolve(arguments)
        resolved = check.resolve({**arguments, SERVICE_NAMESPACE: self.service_namespace})
        if check.resolve_static() and len(self._resolved) < MAX_RESOLVED:
            self._resolved[check] = resolved
        return resolved

    @staticmethod
    def _denied(check: Check, decision: Decision) -> AccessDenied:
        reason = decision.reason or "no reason given (no RBAC rule allows it)"
        if decision.evaluation_error:
            reason += f"; evaluation error: {decision.evaluation_error}"
        return AccessDenied(f"SubjectAccessReview denied {check}: {reason}", check=str(check))

    def report_suppressed(self) -> None:
        """The lines the budget left out since its last line (at shutdown)."""
        for reason, count in self.log_budget.take_suppressed().items():
            message = MSG_UNAVAILABLE if reason == AuthorizationUnavailable.reason else MSG_DENIED
            fields = {"reason": reason, "suppressed": count, "at": "shutdown"}
            logger.warning(LogText(f"{message}: {count} more {reason} lines suppressed before "
                                   "shutdown", message), extra=fields)

    def _log(self, error: AuthError, identity: Identity, check: str) -> None:
        suppressed = self.log_budget.admit(error.reason)
        if suppressed is None:
            return  # over the budget: counted, and reported by the next line written
        # The check holds values from the URL and the detail the API server's words: both cut.
        check, detail = clip(check), clip(error.detail, MAX_DETAIL_CHARS)
        fields: dict[str, Any] = {
            "reason": error.reason, "status": error.status, "check": check,
            "subject": identity.subject, "credential_id": identity.credential_id or "none",
            "error": detail,
        }
        # The check, the caller and the credential id are in the text too, for applications
        # with plain logging.basicConfig(); the credential id joins this line with the API
        # server's audit log of the token's issuance. Never the token.
        unavailable = error.outcome == "unavailable"
        message = MSG_UNAVAILABLE if unavailable else MSG_DENIED
        text = (f"{message}: {check} for {identity.subject} "
                f"(credential_id={fields['credential_id']}): {detail}")
        if suppressed:
            fields["suppressed"] = suppressed
            text += f" [{suppressed} more {error.reason} lines suppressed before this one]"
        logger.log(logging.ERROR if unavailable else logging.WARNING, LogText(text, message),
                   extra=fields)
