"""``AuthenticatedHandler``: a Tornado ``RequestHandler`` that lets only verified callers in.

Subclass it and write your HTTP methods; ``self.current_user`` (also ``self.identity``, typed) is
the caller's ``Identity`` before they run::

    class Reports(AuthenticatedHandler):
        allowed_subjects = {"system:serviceaccount:default:collector"}

        async def get(self) -> None:
            self.write({"caller": self.identity.service_account})

Authentication runs in the async ``prepare()`` (Tornado's documented place for async
authentication; ``get_current_user`` may not be a coroutine). Rejections end the request with
``tornado.web.Finish``, so ``write_error`` is skipped and no stack trace is logged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import Any, ClassVar, cast

import tornado.web
from tornado.httputil import HTTPServerRequest
from tornado.log import app_log

from ..authorization.authorizer import Authorizer
from ..core.access import Check
from ..core.answers import rejection
from ..core.errors import AuthError
from ..core.identity import Identity
from ..logs.budget import LogBudget
from ..logs.text import LogText, clip
from ..verification.admission import (
    Pending,
    admit,
    admit_cached,
    all_checks,
    retry_after,
    validate_checks,
)
from ..verification.authenticator import Authenticator

_HTTP_METHODS = ("get", "head", "post", "delete", "patch", "put", "options")
#: Paths go into access logs and traces up to this length. Routes are short; a token pasted into
#: a URL by a misconfigured client must not be written out whole (the first 64 characters of a
#: JWT are its header, which is not secret).
MAX_LOGGED_PATH = 64
#: The uncaught-exception line's stable prefix (Tornado's own words, on Tornado's logger).
MSG_UNCAUGHT = "Uncaught exception"
#: Uncaught-exception lines per handler class and exception type: a request that finds a bug
#: must not be able to write a stack trace per request (docs/reliability.md#log-volume).
_UNCAUGHT_LOG_BUDGET = LogBudget()


class JsonErrorHandler(tornado.web.RequestHandler):
    """JSON errors instead of Tornado's HTML page, and log lines without the query string: the
    base of :class:`AuthenticatedHandler`, and of an application's plain handlers (health,
    metrics) so that they answer and log alike (service/app.py's ``JsonHandler``)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every other error (404, 405, 500, ...) is JSON too, never Tornado's HTML page."""
        write_json_error(self, status_code)

    def _request_summary(self) -> str:
        # Tornado's access log and uncaught-exception log both use this; its default includes
        # the query string, where RFC 6750 §2.3 clients put access_token=<the token>.
        return request_summary(self.request)

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        log_uncaught(self, typ, value, tb)


class AuthenticatedHandler(JsonErrorHandler):
    """Authenticates every request with the application's ``Authenticator``.

    Class attributes:

    * ``allowed_subjects``: subjects (``system:serviceaccount:NS:NAME``) allowed to call this
      handler, on top of the service-wide ``AUTH_ALLOWED_SUBJECTS``; ``None`` or empty = any
      authenticated caller. A valid token from another subject gets 403.
    * ``required_access``: Kubernetes RBAC checks (``ResourceCheck``, ``NonResourceCheck``) the
      caller must all pass, on top of the service-wide ``AUTH_REQUIRED_ACCESS``, decided by
      SubjectAccessReview after the subject lists let the caller in; a ``{name}`` template in
      a check's namespace or name is filled from the route's named path argument
      (docs/authorization.md; ``compass_auth.check_routes`` checks the routes can fill them).
      ``None`` or empty = none. A caller denied gets 403 ``insufficient_scope``; when the API
      server cannot decide, 503.
    * ``allow_unauthenticated_preflight``: let CORS preflight (``OPTIONS``) requests through
      without a token. Off by default.

    Both service-wide settings apply to every subclass, HTTP and WebSocket alike: no handler
    can drop a check or a subject list that its siblings apply.

    Extension points: ``get_authenticator()`` (defaults to ``self.settings["authenticator"]``),
    ``get_authorizer()`` (defaults to ``self.settings["authorizer"]``, else the authorizer built
    with the authenticator, so an application that passes only ``authenticator=`` works),
    ``get_required_access()`` (the handler's own checks, defaults to ``required_access``; the
    service-wide ones are added to whatever it returns) and ``send_auth_error(error)``.
    If a subclass must extend ``prepare``, it must call ``await super().prepare()`` first; a
    method that runs without authentication having happened fails closed with a 500 instead of
    serving an anonymous caller.
    """

    allowed_subjects: ClassVar[Collection[str] | None] = None
    required_access: ClassVar[Sequence[Check] | None] = None
    allow_unauthenticated_preflight: ClassVar[bool] = False

    _compass_authenticated: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_required_access(cls)
        # Guard every HTTP method the subclass defines, so forgetting super().prepare() in an
        # override cannot silently turn an authenticated endpoint into an open one.
        for name in _HTTP_METHODS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_compass_guarded", False):
                setattr(cls, name, _require_authentication(method))

    @property
    def identity(self) -> Identity:
        """The authenticated caller (the same object as ``current_user``)."""
        return cast(Identity, self.current_user)

    def get_authenticator(self) -> Authenticator:
        """The ``Authenticator`` to use; override to pick one per handler."""
        authenticator: Authenticator = self.application.settings["authenticator"]
        return authenticator

    def get_authorizer(self) -> Authorizer:
        """The ``Authorizer`` that decides ``required_access``; override to pick one per
        handler."""
        authorizer: Authorizer | None = self.application.settings.get("authorizer")
        return authorizer if authorizer is not None else self.get_authenticator().authorizer

    def get_required_access(self) -> Sequence[Check] | None:
        """This handler's own checks for this request; override to choose them per request.
        The service-wide ``AUTH_REQUIRED_ACCESS`` is applied before them in any case."""
        return self.required_access

    async def prepare(self) -> None:
        """Authenticate the request, then authorize it when the handler requires access; on
        failure answer 400/401/403/503 and finish."""
        if self.request.method == "OPTIONS" and self.allow_unauthenticated_preflight:
            self._compass_authenticated = True
            return
        authenticator = self.get_authenticator()
        checks = all_checks(authenticator.settings.required_access, self.get_required_access())
        authorizer = self.get_authorizer()
        # The decision every adapter makes (verification/admission.py); most requests are
        # answered by the caches, without creating another coroutine.
        try:
            answer = admit_cached(authenticator, authorizer,
                                  self.request.headers.get_list("Authorization"),
                                  self.allowed_subjects, checks, self.path_kwargs)
            if isinstance(answer, Pending):
                answer = await admit(authenticator, authorizer, answer, self.allowed_subjects,
                                     checks, self.path_kwargs)
        except AuthError as error:
            self.send_auth_error(error)
        self.current_user = answer
        self._compass_authenticated = True

    def send_auth_error(self, error: AuthError) -> None:
        """Answer with the status, challenge and JSON body for ``error``; raises ``Finish``."""
        # The same answer as the ASGI adapter's, built by the same code (core/answers.py).
        authenticator = self.get_authenticator()
        answer = rejection(error, authenticator.settings.realm, functools.partial(
            retry_after, authenticator, self.get_authorizer()))
        self.clear()
        self.set_status(answer.status)
        for name, value in answer.headers:
            self.set_header(name, value)
        self.finish(answer.body)
        raise tornado.web.Finish()


def write_json_error(handler: tornado.web.RequestHandler, status_code: int) -> None:
    """Write ``{"error", "error_description"}`` for a non-auth error; never the exception text."""
    reason = handler._reason if status_code < 500 else "internal server error"
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.finish({"error": reason.lower().replace(" ", "_"), "error_description": reason})


def loggable_target(path: str, query: str) -> str:
    """The request target for logs and traces: the path (cut at ``MAX_LOGGED_PATH``) and
    ``?REDACTED`` instead of any query string. Tokens are refused there, never written."""
    shown = path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."
    return shown + ("?REDACTED" if query else "")


def request_summary(request: HTTPServerRequest) -> str:
    """Tornado's ``_request_summary`` (method, target, client) with ``loggable_target``."""
    target = loggable_target(request.path, request.query)
    return f"{request.method} {target} ({request.remote_ip})"


def log_uncaught(handler: tornado.web.RequestHandler, typ: type[BaseException] | None,
                 value: BaseException | None, tb: TracebackType | None) -> None:
    """``RequestHandler.log_exception`` for handlers that must not log the query string.

    Tornado's default writes ``%r`` of the request after the summary (tornado/web.py,
    ``log_exception``), and that repr holds the whole URI: ``?access_token=<the token>``
    reached the log with any 500. This writes the summary of ``request_summary`` instead, at
    most as often as ``_UNCAUGHT_LOG_BUDGET`` allows, on Tornado's logger as before.
    ``HTTPError``s keep Tornado's handling, whose line uses ``_request_summary`` only."""
    if isinstance(value, tornado.web.HTTPError):
        tornado.web.RequestHandler.log_exception(handler, typ, value, tb)
        return
    kind = typ.__name__ if typ is not None else "None"
    suppressed = _UNCAUGHT_LOG_BUDGET.admit(f"{type(handler).__name__}:{kind}")
    if suppressed is None:
        return
    fields: dict[str, Any] = {"request": request_summary(handler.request),
                              "error": f"{kind}: {clip(value)}"}
    text = f"{MSG_UNCAUGHT} {fields['request']}: {fields['error']}"
    if suppressed:
        fields["suppressed"] = suppressed
        text += f" [{suppressed} more suppressed before this one]"
    exc_info = (typ, value, tb) if typ is not None and value is not None else None
    app_log.error(LogText(text, MSG_UNCAUGHT), exc_info=exc_info, extra=fields)


def _check_required_access(cls: type[AuthenticatedHandler]) -> None:
    """What can be checked of ``required_access`` when the class is defined
    (``admission.validate_checks``). Whether a route can fill its templates is known only with
    the application (``compass_auth.tornado.routes.check_routes``)."""
    validate_checks(cls.__dict__.get("required_access"), f"{cls.__name__}.required_access")


def _require_authentication(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: AuthenticatedHandler, *args: Any, **kwargs: Any) -> Any:
        if not self._compass_authenticated:
            raise RuntimeError(
                f"{type(self).__name__}.{method.__name__} ran without authentication: "
                "an override of prepare() must call `await super().prepare()` first"
            )
        return method(self, *args, **kwargs)

    guarded._compass_guarded = True  # type: ignore[attr-defined]
    return guarded
