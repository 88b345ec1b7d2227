"""The two paths a plain OIDC issuer serves to a verifier: its discovery document
(OpenID Connect Discovery 1.0, section 4) and the JWKS its ``jwks_uri`` names.

Paths sit under the issuer's own path, as upstream's JWT authenticator looks for them: discovery
at ``issuer.url + "/.well-known/openid-configuration"`` unless the configuration names a
``discoveryURL`` (``staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc.go``).
No credentials are asked for: upstream fetches both without any.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import tornado.web

from compass_auth.testing.credentials import jws
from compass_auth.testing.issuer.state import IssuerState
from compass_auth.testing.server.faulting import FaultingHandler
from compass_auth.testing.server.faults import Fault
from compass_auth.testing.server.requestlog import RequestRecord

logger = logging.getLogger(__name__)

#: Dex's name for the key set; any path works, the discovery document names it.
JWKS_PATH = "/keys"
DISCOVERY_PATH = "/.well-known/openid-configuration"
_JSON = "application/json"


class IssuerHandler(FaultingHandler):
    """Base: record the request, apply a fault, then the verb method."""

    def initialize(self, state: IssuerState, endpoint: str) -> None:
        self.state = state
        self.endpoint = endpoint

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        self.set_header("Content-Type", _JSON)

    def compute_etag(self) -> str | None:
        return None

    async def prepare(self) -> None:
        fault = self.state.faults.take(self.endpoint)
        if fault is not None:
            await self._apply_fault(fault)

    def _fault_error_body(self, fault: Fault) -> bytes:
        assert fault.status is not None
        return _error(fault.status)

    def reply(self, status: int, body: bytes, content_type: str = _JSON) -> None:
        self.set_status(status)
        self.set_header("Content-Type", content_type)
        self.finish(body)

    def reply_public(self, document: Any, content_type: str = _JSON) -> None:
        # Cacheable like the API server's discovery answers (and most issuers').
        self.set_header("Cache-Control", "public, max-age=3600")
        self.reply(200, json.dumps(document, separators=(",", ":")).encode(), content_type)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", _JSON)
        self.finish(_error(status_code))

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Record before the answer leaves, as ``KubeHandler.finish`` does."""
        if not self._finished:
            self._record(self.get_status())
        return super().finish(chunk)

    def _record(self, status: int) -> None:
        headers = {name: self.request.headers[name] for name in ("Cache-Control",)
                   if name in self.request.headers}
        self.state.requests.add(RequestRecord(self.endpoint, self.request.method or "",
                                              self.request.path, status, headers,
                                              self.state.clock()))


def _error(status: int) -> bytes:
    return json.dumps({"error": "server_error" if status >= 500 else "invalid_request",
                       "status": status}).encode()


class DiscoveryHandler(IssuerHandler):
    """``GET <path>/.well-known/openid-configuration``."""

    def get(self) -> None:
        algs = list(dict.fromkeys(key.alg for key in self.state.keys.published()))
        # The fields a verifier reads (issuer, jwks_uri, algorithms) and the two the spec
        # requires of every provider; like GitHub Actions' issuer, no authorization endpoint.
        self.reply_public({
            "issuer": self.state.issuer,
            "jwks_uri": self.state.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
        })


class JwksHandler(IssuerHandler):
    """``GET <path>/keys``."""

    def get(self) -> None:
        keys = [jws.jwk(key.public_key, key.kid) for key in self.state.keys.published()]
        self.reply_public({"keys": keys}, "application/jwk-set+json")


class NotFoundHandler(IssuerHandler):
    """Any other path: 404, recorded as ``notfound``."""

    async def prepare(self) -> None:
        await super().prepare()  # a fault set for "all" applies here too
        if not self._finished:
            self.reply(404, _error(404))


def make_app(state: IssuerState, path: str) -> tornado.web.Application:
    """The issuer's routes under ``path`` (``""`` or ``/segments`` without a trailing slash)."""
    base = re.escape(path)
    return tornado.web.Application(
        [
            (base + re.escape(DISCOVERY_PATH), DiscoveryHandler,
             {"state": state, "endpoint": "discovery"}),
            (base + re.escape(JWKS_PATH), JwksHandler, {"state": state, "endpoint": "jwks"}),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args={"state": state, "endpoint": "notfound"},
        log_function=lambda handler: None,
    )
