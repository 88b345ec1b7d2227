"""Every endpoint of the emulated API server, declared once: its name, verb, paths and handler.

Adding an endpoint is a handler in ``handlers/`` and one :class:`Endpoint` in :data:`ENDPOINTS`
(README.md, "Adding an endpoint"). The name is what ``DevCluster.set_fault`` and the request
log use; README.md's endpoint table is checked against this one (tests/devcluster/
test_endpoints.py), so the two cannot drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import tornado.web

from compass_auth.testing.credentials.factory import TokenFactory
from compass_auth.testing.server.handlers.authentication import (
    SelfSubjectReviewHandler,
    TokenRequestHandler,
    TokenReviewHandler,
)
from compass_auth.testing.server.handlers.authorization import (
    SubjectAccessReviewHandler,
    create_handler,
)
from compass_auth.testing.server.handlers.info import (
    ApiGroupsHandler,
    ApiVersionsHandler,
    AuthenticationResourcesHandler,
    CoreResourcesHandler,
    HealthHandler,
    NotFoundHandler,
    VersionHandler,
)
from compass_auth.testing.server.handlers.oidc import DiscoveryHandler, JwksHandler
from compass_auth.testing.server.pipeline import KubeHandler
from compass_auth.testing.state import ClusterState

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint: a row of README.md's endpoint table and the routes Tornado serves.

    Attributes:
        name: what ``set_fault`` and the request log call it; several rows may share one.
        method: the verb it serves, as the README shows it (the handler's methods decide;
            other verbs get 405).
        paths: Tornado patterns, each matched against the whole path (``\\.`` for a dot,
            ``(?P<name>...)`` for a part the verb method receives, ``/?`` for an optional
            trailing slash).
        handler: a :class:`~compass_auth.testing.server.pipeline.KubeHandler` from ``handlers/``.
        faults: whether ``set_fault(name, ...)`` takes it; the informational paths only get
            the faults set for ``"all"``.
    """

    name: str
    method: str
    paths: tuple[str, ...]
    handler: type[KubeHandler]
    faults: bool = True


# DNS-1123 subdomain-ish names; anything else falls through to a 404.
_NAME = r"[a-z0-9][-a-z0-9.]*"
_RBAC = r"/apis/rbac\.authorization\.k8s\.io/v1"
_RBAC_NAMESPACE = r"(?P<namespace>[a-z0-9][-a-z0-9]*)"

#: In routing order: the first row whose pattern matches the whole path serves it.
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("discovery", "GET", (r"/\.well-known/openid-configuration",), DiscoveryHandler),
    Endpoint("jwks", "GET", (r"/openid/v1/jwks",), JwksHandler),
    Endpoint(
        "tokenreview",
        "POST",
        (r"/apis/authentication\.k8s\.io/v1/tokenreviews",),
        TokenReviewHandler,
    ),
    Endpoint(
        "selfsubjectreview",
        "POST",
        (r"/apis/authentication\.k8s\.io/v1/selfsubjectreviews",),
        SelfSubjectReviewHandler,
    ),
    Endpoint(
        "tokenrequest",
        "POST",
        (rf"/api/v1/namespaces/(?P<namespace>{_NAME})/serviceaccounts/(?P<name>{_NAME})/token",),
        TokenRequestHandler,
    ),
    Endpoint(
        "subjectaccessreview",
        "POST",
        (r"/apis/authorization\.k8s\.io/v1/subjectaccessreviews",),
        SubjectAccessReviewHandler,
    ),
    Endpoint("rbac", "POST", (_RBAC + "/clusterroles",), create_handler("ClusterRole")),
    Endpoint(
        "rbac", "POST", (_RBAC + "/clusterrolebindings",), create_handler("ClusterRoleBinding")
    ),
    Endpoint("rbac", "POST", (f"{_RBAC}/namespaces/{_RBAC_NAMESPACE}/roles",),
             create_handler("Role")),
    Endpoint("rbac", "POST", (f"{_RBAC}/namespaces/{_RBAC_NAMESPACE}/rolebindings",),
             create_handler("RoleBinding")),
    Endpoint("version", "GET", (r"/version/?",), VersionHandler, faults=False),
    Endpoint("healthz", "GET", ("/healthz", "/livez", "/readyz"), HealthHandler, faults=False),
    Endpoint("api", "GET", (r"/api/?",), ApiVersionsHandler, faults=False),
    Endpoint("api", "GET", (r"/api/v1/?",), CoreResourcesHandler, faults=False),
    Endpoint("api", "GET", (r"/apis/?",), ApiGroupsHandler, faults=False),
    Endpoint(
        "api",
        "GET",
        (r"/apis/authentication\.k8s\.io/v1/?",),
        AuthenticationResourcesHandler,
        faults=False,
    ),
)

#: Every other path (no patterns: Tornado's default handler).
NOT_FOUND = Endpoint("notfound", "any", (), NotFoundHandler, faults=False)

#: The names ``DevCluster.set_fault`` takes: the endpoints that may fault, and ``"all"``.
FAULT_ENDPOINTS: tuple[str, ...] = (
    *dict.fromkeys(endpoint.name for endpoint in ENDPOINTS if endpoint.faults),
    "all",
)


def make_app(state: ClusterState, factory: TokenFactory) -> tornado.web.Application:
    """The emulated API server: the routes of :data:`ENDPOINTS`, :data:`NOT_FOUND` for the rest."""

    def arguments(endpoint: Endpoint) -> dict[str, Any]:
        return {"state": state, "factory": factory, "endpoint": endpoint.name}

    return tornado.web.Application(
        [
            (path, endpoint.handler, arguments(endpoint))
            for endpoint in ENDPOINTS
            for path in endpoint.paths
        ],
        default_handler_class=NOT_FOUND.handler,
        default_handler_args=arguments(NOT_FOUND),
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Paths and statuses only: Authorization never reaches the log.
    logger.debug(
        "devcluster %s %s -> %s",
        handler.request.method,
        handler.request.path,
        handler.get_status(),
    )
