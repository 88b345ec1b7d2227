"""What protects each route of a Tornado application, and whether its checks can work.

``describe_routes(application)`` walks the application's rules (nested routers included, and
``default_handler_class``) and says, per route, what a request meets: bearer authentication or
none, the handler's own subject list and checks (the service-wide ``AUTH_ALLOWED_SUBJECTS`` and
``AUTH_REQUIRED_ACCESS`` apply on top to every authenticated route, ``tornado/handler.py``). The
example
service's route table in docs/example-service.md is compared with it by a test.

``check_routes(application)`` refuses, before the first request, checks that a route cannot
fill: a template ``{name}`` in ``AUTH_REQUIRED_ACCESS`` or a handler's ``required_access`` for
which the route's regex has no named group (``{namespace}`` on ``/whoami``, a typo such as
``{servicenamespace}``), or ``{service_namespace}`` when the service's namespace is unknown.
Without it such a check answers 500 to every authenticated request of the route. Checks that an
override of ``get_required_access()`` chooses per request cannot be known here.

A group that may be absent (``(?P<namespace>[^/]+)?``) is not refused: Tornado passes ``None``
for it, and ``access.ResourceCheck.resolve`` denies that request without a review, as it does
any value that no namespace or name can have.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import tornado.web
import tornado.websocket
from tornado.routing import Matcher, PathMatches, RuleRouter

from ..core.access import Check
from ..verification.admission import RouteAccessError as RouteAccessError
from ..verification.admission import unfillable
from ..verification.authenticator import Authenticator
from .handler import AuthenticatedHandler

_METHODS = ("get", "head", "post", "delete", "patch", "put", "options")


@dataclass(frozen=True)
class RouteProtection:
    """How one route is protected (one row of a route table)."""

    #: The path pattern (``/reports/(?P<namespace>[^/]+)``); ``None`` for the application's
    #: ``default_handler_class`` (every path no rule matches).
    route: str | None
    handler: type[tornado.web.RequestHandler]
    kind: Literal["http", "websocket"]
    #: HTTP methods the handler implements (``GET``, ...); others get 405.
    methods: tuple[str, ...]
    #: ``bearer``: an ``AuthenticatedHandler`` (service-wide subjects and checks apply too).
    authentication: Literal["bearer", "none"]
    #: The handler's own ``allowed_subjects`` (empty: none of its own).
    subjects: frozenset[str]
    #: The handler's own ``required_access``.
    checks: tuple[Check, ...]
    #: The route's named path arguments, which templates may name.
    arguments: frozenset[str]
    #: Whether the handler overrides ``get_required_access()`` (checks chosen per request).
    dynamic_checks: bool


def describe_routes(application: tornado.web.Application) -> list[RouteProtection]:
    """Every route of ``application`` in matching order, then its default handler."""
    found = [_describe(_route(matcher), handler, _arguments(matcher))
             for matcher, handler in _handlers(application.default_router.rules)]
    default = application.settings.get("default_handler_class")
    if isinstance(default, type) and issubclass(default, tornado.web.RequestHandler):
        found.append(_describe(None, default, frozenset()))
    return found


def check_routes(application: tornado.web.Application,
                 authenticator: Authenticator | None = None) -> None:
    """Raise ``RouteAccessError`` when a route cannot fill a template of its checks.

    ``authenticator`` defaults to ``application.settings["authenticator"]``; its settings give
    ``AUTH_REQUIRED_ACCESS``, and the authorizer (``application.settings["authorizer"]``, else
    the authenticator's) whether ``{service_namespace}`` is known. Call it
    once the application is built, before listening (the example service does)."""
    if authenticator is None:
        authenticator = application.settings["authenticator"]
    service_wide = tuple(authenticator.settings.required_access)
    authorizer = application.settings.get("authorizer") or authenticator.authorizer
    namespace_known = authorizer.service_namespace is not None
    problems: list[str] = []
    for route in describe_routes(application):
        if route.authentication != "bearer":
            continue
        for origin, checks in (("AUTH_REQUIRED_ACCESS", service_wide),
                               (f"{route.handler.__name__}.required_access", route.checks)):
            problems += _unfillable(origin, checks, route, namespace_known)
    if problems:
        raise RouteAccessError("; ".join(problems))


def _unfillable(origin: str, checks: Sequence[Check], route: RouteProtection,
                namespace_known: bool) -> Iterator[str]:
    where = f"route {route.route} ({route.handler.__name__})" if route.route is not None else (
        f"the default handler {route.handler.__name__} (every unmatched path)")
    return unfillable(origin, checks, where, route.arguments, namespace_known)


def _handlers(rules: Sequence[Any]) -> Iterator[tuple[Matcher, type[tornado.web.RequestHandler]]]:
    for rule in rules:
        target = rule.target
        if isinstance(target, RuleRouter):  # the application's own routers, nested ones
            yield from _handlers(target.rules)
        elif isinstance(target, type) and issubclass(target, tornado.web.RequestHandler):
            yield rule.matcher, target


def _route(matcher: Matcher) -> str:
    if isinstance(matcher, PathMatches):
        return matcher.regex.pattern.removesuffix("$")
    return repr(matcher)


def _arguments(matcher: Matcher) -> frozenset[str]:
    # Tornado passes named groups as keyword arguments (path_kwargs) and unnamed ones only
    # when there is no named group (tornado/routing.py, PathMatches.match).
    if isinstance(matcher, PathMatches):
        return frozenset(matcher.regex.groupindex)
    return frozenset()


def _describe(route: str | None, handler: type[tornado.web.RequestHandler],
              arguments: frozenset[str]) -> RouteProtection:
    authenticated = issubclass(handler, AuthenticatedHandler)
    dynamic = authenticated and (handler.get_required_access  # type: ignore[attr-defined]
                                 is not AuthenticatedHandler.get_required_access)
    methods = tuple(name.upper() for name in _METHODS
                    if getattr(handler, name) is not getattr(tornado.web.RequestHandler, name))
    return RouteProtection(
        route=route,
        handler=handler,
        kind="websocket" if issubclass(handler, tornado.websocket.WebSocketHandler) else "http",
        methods=methods,
        authentication="bearer" if authenticated else "none",
        subjects=frozenset(getattr(handler, "allowed_subjects", None) or ()),
        checks=tuple(getattr(handler, "required_access", None) or ()),
        arguments=arguments,
        dynamic_checks=dynamic,
    )
