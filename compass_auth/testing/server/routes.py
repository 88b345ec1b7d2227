"""TokenRequest, SelfSubjectReview, the informational paths, 404s, and the Tornado application."""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web

from compass_auth.testing.credentials.factory import TokenFactory
from compass_auth.testing.credentials.validation import UserInfo
from compass_auth.testing.server.handlers.authorization import rbac_routes
from compass_auth.testing.server.pipeline import (
    DEFAULT_EXPIRATION_SECONDS,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    DiscoveryHandler,
    JwksHandler,
    KubeHandler,
    TokenReviewHandler,
    read_object,
)
from compass_auth.testing.state import ClusterState
from compass_auth.testing.wire import bodies

logger = logging.getLogger(__name__)


class TokenRequestHandler(KubeHandler):
    """``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`` (admins only)."""

    endpoint = "tokenrequest"
    negotiates = True

    def authorized(self, user: UserInfo) -> bool:
        return "system:masters" in user.groups

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        namespace, name = self.path_kwargs["namespace"], self.path_kwargs["name"]
        return bodies.forbidden_token_request(user.username, namespace, name)

    def post(self, namespace: str, name: str) -> None:
        body = read_object(self, "TokenRequest")
        if body is None:
            return
        raw_spec = body.get("spec")
        spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
        objects = self.state.objects
        if objects.get("serviceaccount", namespace, name) is None:
            self.reply(
                404,
                bodies.status(
                    404,
                    f'serviceaccounts "{name}" not found',
                    "NotFound",
                    {"name": name, "kind": "serviceaccounts"},
                ),
            )
            return
        # null (kubectl before 1.32 sends it without --duration) is unset: the default.
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = DEFAULT_EXPIRATION_SECONDS
        if not isinstance(seconds, int) or seconds < MIN_EXPIRATION_SECONDS:
            self.reply(
                422,
                bodies.invalid(
                    "TokenRequest",
                    "authentication.k8s.io",
                    name,
                    "spec.expirationSeconds",
                    seconds,
                    "may not specify a duration less than 10 minutes",
                ),
            )
            return
        if seconds > MAX_EXPIRATION_SECONDS:
            self.reply(
                422,
                bodies.invalid(
                    "TokenRequest",
                    "authentication.k8s.io",
                    name,
                    "spec.expirationSeconds",
                    seconds,
                    "may not specify a duration larger than 2^32 seconds",
                ),
            )
            return
        audiences = spec.get("audiences") or list(self.state.api_audiences)
        pod = node = None
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict):
            kind, ref_name = ref.get("kind"), str(ref.get("name", ""))
            found = objects.get(
                "pod" if kind == "Pod" else "node",
                namespace if kind == "Pod" else "",
                ref_name,
            )
            if kind not in ("Pod", "Node") or found is None:
                resource = "pods" if kind == "Pod" else "nodes"
                self.reply(
                    404,
                    bodies.status(
                        404,
                        f'{resource} "{ref_name}" not found',
                        "NotFound",
                        {"name": ref_name, "kind": resource},
                    ),
                )
                return
            if ref.get("uid") and ref["uid"] != found.uid:
                message = (
                    f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                    "in record. The object might have been deleted and then recreated"
                )
                self.reply(409, bodies.status(409, message, "Conflict", {}))
                return
            pod, node = (ref_name, found.node) if kind == "Pod" else (None, ref_name)
        now = int(self.state.clock())
        token = self.factory.mint(
            namespace=namespace,
            service_account=name,
            audiences=audiences,
            lifetime=seconds,
            pod=pod,
            node=node,
            issued_at=now,
            issuer=None,
            warnafter=None,
            claims_override=None,
            header_override=None,
            key_id=None,
        )
        echoed = {
            "audiences": audiences,
            "expirationSeconds": seconds,
            # The typed BoundObjectReference: its four strings, empty ones omitted.
            "boundObjectRef": (
                {k: str(ref[k]) for k in ("kind", "apiVersion", "name", "uid") if ref.get(k)}
                if isinstance(ref, dict)
                else None
            ),
        }
        self.reply(
            201, bodies.token_request(namespace, name, echoed, token, now + seconds, now)
        )


class SelfSubjectReviewHandler(KubeHandler):
    """``POST /apis/authentication.k8s.io/v1/selfsubjectreviews`` (``kubectl auth whoami``).

    Any authenticated user may ask (``system:basic-user``); the answer is the user this very
    request authenticated as, extra included (``selfsubjectreview/rest.go``).
    """

    endpoint = "selfsubjectreview"
    negotiates = True

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        return bodies.forbidden_create(user.username, "selfsubjectreviews")

    def post(self) -> None:
        # The body says nothing the answer depends on, but it must decode.
        if read_object(self, "SelfSubjectReview") is None:
            return
        self.reply(201, bodies.self_subject_review(self.user, self.state.clock()))


class VersionHandler(KubeHandler):
    """``GET /version``: public, pretty-printed like the real one."""

    endpoint = "version"
    public = True

    def get(self) -> None:
        self.reply(200, json.dumps(bodies.version_info(), indent=2).encode())


class HealthHandler(KubeHandler):
    """``/healthz``, ``/livez``, ``/readyz``: public, plain ``ok``."""

    endpoint = "healthz"
    public = True

    def get(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.reply(200, b"ok", "text/plain; charset=utf-8")


class ApiVersionsHandler(KubeHandler):
    """``/api`` (authenticated users, via ``system:discovery``)."""

    endpoint = "api"

    def get(self) -> None:
        address = self.state.external_address.split("://", 1)[-1]
        self.reply(200, bodies.api_versions(address))


class CoreResourcesHandler(KubeHandler):
    """``/api/v1`` (``kubectl api-resources`` reads it)."""

    endpoint = "api"

    def get(self) -> None:
        self.reply(200, bodies.core_resources())


class ApiGroupsHandler(KubeHandler):
    """``/apis``."""

    endpoint = "api"

    def get(self) -> None:
        self.reply(200, bodies.api_group_list())


class AuthenticationResourcesHandler(KubeHandler):
    """``/apis/authentication.k8s.io/v1``."""

    endpoint = "api"

    def get(self) -> None:
        self.reply(200, bodies.authentication_resources())


class NotFoundHandler(KubeHandler):
    """Any other path: 404 Status for authenticated callers, 403 for anonymous."""

    endpoint = "notfound"

    def _not_found(self, *args: str) -> None:
        self.reply(404, bodies.not_found())

    get = post = put = delete = patch = _not_found


def make_app(state: ClusterState, factory: TokenFactory) -> tornado.web.Application:
    """The routes of the emulated API server."""
    deps: dict[str, Any] = {"state": state, "factory": factory}
    # DNS-1123 subdomain-ish names; anything else falls through to a 404.
    name = r"[a-z0-9][-a-z0-9.]*"

    return tornado.web.Application(
        [
            (r"/\.well-known/openid-configuration", DiscoveryHandler, deps),
            (r"/openid/v1/jwks", JwksHandler, deps),
            (
                r"/apis/authentication\.k8s\.io/v1/tokenreviews",
                TokenReviewHandler,
                deps,
            ),
            (
                r"/apis/authentication\.k8s\.io/v1/selfsubjectreviews",
                SelfSubjectReviewHandler,
                deps,
            ),
            (
                rf"/api/v1/namespaces/(?P<namespace>{name})/serviceaccounts/(?P<name>{name})/token",
                TokenRequestHandler,
                deps,
            ),
            *rbac_routes(deps),
            (r"/version/?", VersionHandler, deps),
            (r"/(?:healthz|livez|readyz)", HealthHandler, deps),
            (r"/api/?", ApiVersionsHandler, deps),
            (r"/api/v1/?", CoreResourcesHandler, deps),
            (r"/apis/?", ApiGroupsHandler, deps),
            (
                r"/apis/authentication\.k8s\.io/v1/?",
                AuthenticationResourcesHandler,
                deps,
            ),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
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
