"""The attributes a span gets: built here once, for first sights, cache hits and decisions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..core.errors import Outcome
from ..core.identity import Identity
from .names import (
    AUTH_AUTHENTICATOR,
    AUTH_CACHE_HIT,
    AUTH_CHECK,
    AUTH_CREDENTIAL_ID,
    AUTH_METHOD,
    AUTH_NAMESPACE,
    AUTH_OUTCOME,
    AUTH_POD,
    AUTH_REASON,
    AUTH_SERVICE_ACCOUNT,
    AUTH_SUBJECT,
    HTTP_METHOD,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_FULL,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def identity_attributes(identity: Identity,
                        attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The caller's ``auth.*`` attributes: subject, namespace, service account, and the pod and
    credential id when known (every span that names a caller carries these); added to
    ``attributes`` when given (one dict per span: a cache hit builds these on the request
    path)."""
    if attributes is None:
        attributes = {}
    attributes[AUTH_SUBJECT] = identity.subject
    attributes[AUTH_NAMESPACE] = identity.namespace
    attributes[AUTH_SERVICE_ACCOUNT] = identity.service_account
    if identity.pod_name:
        attributes[AUTH_POD] = identity.pod_name
    if identity.credential_id:
        attributes[AUTH_CREDENTIAL_ID] = identity.credential_id
    if identity.authenticator is not None:
        attributes[AUTH_AUTHENTICATOR] = identity.authenticator
    return attributes


def verification_attributes(method: str, outcome: Outcome, reason: str, cache_hit: bool,
                            identity: Identity | None) -> dict[str, Any]:
    """An ``auth.verify`` span's attributes (or, for a cache hit, the server span's)."""
    attributes: dict[str, Any] = {
        AUTH_METHOD: method,
        AUTH_OUTCOME: outcome,
        AUTH_REASON: reason,
        AUTH_CACHE_HIT: cache_hit,
    }
    if identity is not None:
        identity_attributes(identity, attributes)
    return attributes


def authorization_attributes(check: object, identity: Identity, outcome: Outcome, reason: str,
                             cache_hit: bool) -> dict[str, Any]:
    """An ``auth.authorize`` span's attributes."""
    attributes: dict[str, Any] = {
        AUTH_CHECK: str(check),  # the text form: only written when a span records
        AUTH_OUTCOME: outcome,
        AUTH_REASON: reason,
        AUTH_CACHE_HIT: cache_hit,
    }
    return identity_attributes(identity, attributes)


def http_attributes(method: str, url: str) -> dict[str, Any]:
    """Client-span attributes for a call to ``url``, by the stable HTTP semantic conventions:
    ``server.address`` is the host alone (an IPv6 address without brackets) and ``server.port``
    the port, the scheme's default when the URL has none. Credentials in the URL are replaced
    with ``REDACTED``, as the conventions ask for ``url.full``."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        url = urlunsplit(parts._replace(
            netloc="REDACTED:REDACTED@" + parts.netloc.rpartition("@")[2]))
    attributes: dict[str, Any] = {HTTP_METHOD: method, URL_FULL: url,
                                  SERVER_ADDRESS: parts.hostname or ""}
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if port is not None:
        attributes[SERVER_PORT] = port
    return attributes
