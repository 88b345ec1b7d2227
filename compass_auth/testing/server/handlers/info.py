"""The informational paths (``/version``, health, API discovery lists) and the 404 of every
other path."""

from __future__ import annotations

import json
import logging

from compass_auth.testing.server.pipeline import KubeHandler
from compass_auth.testing.wire import bodies

logger = logging.getLogger(__name__)


class VersionHandler(KubeHandler):
    """``GET /version``: public, pretty-printed like the real one."""

    public = True

    def get(self) -> None:
        self.reply(200, json.dumps(bodies.version_info(), indent=2).encode())


class HealthHandler(KubeHandler):
    """``/healthz``, ``/livez``, ``/readyz``: public, plain ``ok``."""

    public = True

    def get(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.reply(200, b"ok", "text/plain; charset=utf-8")


class ApiVersionsHandler(KubeHandler):
    """``/api`` (authenticated users, via ``system:discovery``)."""

    def get(self) -> None:
        address = self.state.external_address.split("://", 1)[-1]
        self.reply(200, bodies.api_versions(address))


class CoreResourcesHandler(KubeHandler):
    """``/api/v1`` (``kubectl api-resources`` reads it)."""

    def get(self) -> None:
        self.reply(200, bodies.core_resources())


class ApiGroupsHandler(KubeHandler):
    """``/apis``."""

    def get(self) -> None:
        self.reply(200, bodies.api_group_list())


class AuthenticationResourcesHandler(KubeHandler):
    """``/apis/authentication.k8s.io/v1``."""

    def get(self) -> None:
        self.reply(200, bodies.authentication_resources())


class NotFoundHandler(KubeHandler):
    """Any other path: 404 Status for authenticated callers, 403 for anonymous."""

    def _not_found(self, *args: str) -> None:
        self.reply(404, bodies.not_found())

    get = post = put = delete = patch = _not_found
