"""OIDC discovery and the JWKS: the two paths a verifier fetches keys from
(``pkg/serviceaccount/openidmetadata.go``, ``pkg/routes/openidmetadata.go``)."""

from __future__ import annotations

import logging
from typing import Any

from compass_auth.testing.credentials import jws
from compass_auth.testing.credentials.validation import UserInfo
from compass_auth.testing.server.pipeline import KubeHandler
from compass_auth.testing.wire import bodies

logger = logging.getLogger(__name__)


class OidcHandler(KubeHandler):
    """Base of the two discovery paths: public caching, issuer-discovery RBAC."""

    def reply_public(self, body: Any, content_type: str) -> None:
        """200 with ``Cache-Control: public, max-age=3600`` (openidmetadata.go).

        Only successful answers are cacheable: 401/403 come from filters that
        run before this handler and keep ``no-cache, private``.
        """
        self.set_header("Cache-Control", "public, max-age=3600")
        self.reply(200, body, content_type)

    def authorized(self, user: UserInfo) -> bool:
        return self.state.may_get_discovery(user, self.request.path)


class DiscoveryHandler(OidcHandler):
    """``GET /.well-known/openid-configuration``."""

    def get(self) -> None:
        state = self.state
        algs = [key.alg for key in state.keys.published()]
        jwks_uri = state.external_address + "/openid/v1/jwks"
        document = bodies.discovery_document(state.issuer, jwks_uri, algs)
        self.reply_public(document, self.content_type)


class JwksHandler(OidcHandler):
    """``GET /openid/v1/jwks``."""

    content_type = "application/jwk-set+json"

    def get(self) -> None:
        keys = [jws.jwk(key.public_key, key.kid) for key in self.state.keys.published()]
        self.reply_public({"keys": keys}, self.content_type)
