"""Whether every route of an ASGI application can fill its checks, decided at start-up.

The ASGI counterpart of ``compass_auth.check_routes`` (issue 18, finding 9): a ``{name}``
template in ``AUTH_REQUIRED_ACCESS`` or in a route's ``required_access`` that the route has no
path parameter for would answer 500 to every authenticated request of the route. ``Auth``'s
lifespan calls ``check_routes`` with the application, so such a configuration refuses to start
with a sentence naming the setting and the route (``admission.unfillable`` writes it, for both
adapters).

What a gate can fill depends on where it sits, because Starlette fills ``path_params`` while
routing:

* an ``AuthMiddleware`` (or ``AuthenticationMiddleware`` with a ``KubernetesBackend``) of the
  application or of a ``Router`` runs before routing: it has no path parameters at all;
* one on a ``Mount`` has the parameters of the mounts above it and its own, not its routes';
* one on a ``Route`` or ``WebSocketRoute``, and the FastAPI dependency (it runs in the
  endpoint), have every parameter of the route and of the mounts above it.

The walk follows ``.app`` from middleware to middleware, a ``Router``'s routes, a ``Mount``'s
or ``Host``'s application, and a FastAPI route's dependencies; only the gates of the given
``Auth`` are checked. An application built lazily (a mounted ``Starlette`` whose middleware has
not run yet) has its middleware built here, as Starlette would on its first request.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import BaseRoute, Host, Mount, Router

from ..verification.admission import RouteAccessError, unfillable
from ..verification.authenticator import Authenticator
from .gate import Gate, GateOwner

#: How deep the walk goes: far more nesting than an application has, and a bound on a cycle.
_MAX_DEPTH = 64


def check_routes(app: Any, auth: GateOwner, authenticator: Authenticator | None = None) -> None:
    """Raise ``RouteAccessError`` when a route of ``app`` cannot fill a template of the checks
    of a gate of ``auth`` (gates of other ``Auth`` objects are theirs to check).
    ``authenticator`` (by default ``auth``'s) gives ``AUTH_REQUIRED_ACCESS`` and whether
    ``{service_namespace}`` is known. ``Auth.lifespan`` calls it; call it yourself with a
    lifespan of your own that enters ``auth.running()`` without the application."""
    if authenticator is None:
        authenticator = auth.authenticator
    service_wide = tuple(authenticator.settings.required_access)
    namespace_known = authenticator.authorizer.service_namespace is not None
    problems: list[str] = []
    seen: set[tuple[int, str]] = set()
    before_routing = _Place("", frozenset(), "the application's {kind} (it runs before "
                            "routing: no path parameter is known there)")
    for gate, where, arguments in _gates(app, before_routing, 0):
        if gate.auth is not auth or (id(gate), where) in seen:
            continue
        seen.add((id(gate), where))
        for origin, checks in (("AUTH_REQUIRED_ACCESS", service_wide),
                               (gate.where, gate.required_access or ())):
            problems += unfillable(origin, checks, where, arguments, namespace_known,
                                   noun="path parameter", listed="path parameters")
    if problems:
        # The service-wide setting repeats for every gate that cannot fill it: say it once.
        raise RouteAccessError("; ".join(dict.fromkeys(problems)))


@dataclass(frozen=True)
class _Place:
    """Where the walk is: the path so far, the parameters known there, and how to name a gate
    found there (``{kind}``: its class)."""

    path: str
    arguments: frozenset[str]
    where: str


def _gates(node: Any, place: _Place,
           depth: int) -> Iterator[tuple[Gate, str, frozenset[str]]]:
    """(gate, where it sits, the path parameters it sees) for every gate at or below ``node``."""
    if depth > _MAX_DEPTH or node is None:
        return
    depth += 1
    if isinstance(node, Starlette):
        if node.middleware_stack is None:
            node.middleware_stack = node.build_middleware_stack()
        yield from _gates(node.middleware_stack, place, depth)
    elif isinstance(node, Router):
        yield from _gates(node.middleware_stack, place, depth)
    elif inspect.ismethod(node) and isinstance(node.__self__, Router):
        # The end of a Router's middleware chain (``Router.app``): routing happens here.
        for route in node.__self__.routes:
            yield from _route(route, place, depth)
    else:
        gate = _gate_of(node)
        if gate is not None:
            yield gate, place.where.replace("{kind}", type(node).__name__), place.arguments
        yield from _gates(getattr(node, "app", None), place, depth)


def _route(route: BaseRoute, place: _Place,
           depth: int) -> Iterator[tuple[Gate, str, frozenset[str]]]:
    own = frozenset(getattr(route, "param_convertors", {}))
    if isinstance(route, Mount):
        # A mount's pattern ends in {path:path}, which Starlette pops: not a parameter. Its
        # middleware and its routers' run before its routes are matched.
        path = place.path + route.path
        yield from _gates(route.app, _Place(
            path, place.arguments | (own - {"path"}),
            f"the {{kind}} of mount {path} (it runs before the mount's routes: only the "
            "mounts' path parameters are known there)"), depth)
        return
    if isinstance(route, Host):
        yield from _gates(route.app, _Place(place.path, place.arguments | own, place.where),
                          depth)
        return
    # A route's own middleware and a FastAPI route's dependencies run after routing, with
    # every parameter of the route and of the mounts above it.
    path = place.path + str(getattr(route, "path", ""))
    routed = _Place(path, place.arguments | own, f"route {path} ({{kind}})")
    for call in _dependencies(getattr(route, "dependant", None), 0):
        gate = _gate_of(call)
        if gate is not None:
            yield gate, routed.where.replace("{kind}", type(call).__name__), routed.arguments
    yield from _gates(getattr(route, "app", None), routed, depth)


def _dependencies(dependant: Any, depth: int) -> Iterator[Any]:
    """The callables of a FastAPI ``Dependant``'s dependencies, nested ones included."""
    if dependant is None or depth > _MAX_DEPTH:
        return
    for dependency in getattr(dependant, "dependencies", ()):
        yield dependency.call
        yield from _dependencies(dependency, depth + 1)


def _gate_of(node: Any) -> Gate | None:
    """The gate of an adapter of this package: ``AuthMiddleware``, ``Authenticated``, or
    Starlette's ``AuthenticationMiddleware`` with a ``KubernetesBackend``."""
    if isinstance(node, AuthenticationMiddleware):
        node = node.backend
    gate = getattr(node, "gate", None)
    return gate if isinstance(gate, Gate) else None
