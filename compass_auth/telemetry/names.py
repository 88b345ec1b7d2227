"""Every name the library's telemetry uses, defined once: spans, attributes, instruments.

Span attributes, metric attributes (the Prometheus labels ``auth_method``, ``auth_outcome``,
``auth_reason``) and the docs (docs/telemetry.md) use these.
"""

from __future__ import annotations

SCOPE = "compass_auth"

# Span names.
SPAN_VERIFY = "auth.verify"
SPAN_DISCOVERY = "auth.discovery"
SPAN_KEYS_FETCH = "auth.keys.fetch"
SPAN_TOKENREVIEW = "auth.tokenreview"
SPAN_AUTHORIZE = "auth.authorize"
SPAN_SUBJECTACCESSREVIEW = "auth.subjectaccessreview"
SPAN_REVOCATION_CONFIRM = "auth.revocation.confirm"

# Attribute keys (span and metric attributes).
AUTH_METHOD = "auth.method"
AUTH_OUTCOME = "auth.outcome"
AUTH_REASON = "auth.reason"
AUTH_CACHE_HIT = "auth.cache_hit"
AUTH_SUBJECT = "auth.subject"
AUTH_NAMESPACE = "auth.namespace"
AUTH_SERVICE_ACCOUNT = "auth.service_account"
AUTH_POD = "auth.pod"
AUTH_RESULT = "auth.result"
AUTH_PATH = "auth.path"
AUTH_CACHE = "auth.cache"
AUTH_ATTEMPT = "auth.attempt"
AUTH_FORCE = "auth.force"
AUTH_CREDENTIAL_ID = "auth.credential_id"
AUTH_CHECK = "auth.check"
#: The ``issuer.url`` of the AuthenticationConfiguration's ``jwt`` authenticator that answered
#: (absent for the cluster's own tokens): a bounded set, the file's issuers.
AUTH_AUTHENTICATOR = "auth.authenticator"
#: Reloads of AUTH_AUTHENTICATION_CONFIG by ``auth.result`` (``applied``, ``refused``).
METRIC_CONFIG_RELOADS = "auth.config.reloads"
# OpenTelemetry HTTP semantic conventions (stable), for client spans and the server spans of
# ``tornado/server_spans.py``. Written out rather than imported: ``opentelemetry-semantic-
# conventions`` is not a dependency of the library (tests/test_server_spans.py checks these
# against it).
HTTP_METHOD = "http.request.method"
HTTP_METHOD_ORIGINAL = "http.request.method_original"
HTTP_STATUS = "http.response.status_code"
HTTP_ROUTE = "http.route"
URL_FULL = "url.full"
URL_SCHEME = "url.scheme"
URL_PATH = "url.path"
URL_QUERY = "url.query"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
CLIENT_ADDRESS = "client.address"
NETWORK_PROTOCOL_VERSION = "network.protocol.version"
USER_AGENT = "user_agent.original"
ERROR_TYPE = "error.type"

# Instrument names.
METRIC_VERIFICATIONS = "auth.verifications"
METRIC_DURATION = "auth.verification.duration"
METRIC_KEY_FETCHES = "auth.jwks.fetches"
METRIC_REVIEWS = "auth.tokenreview.calls"
METRIC_CACHE_ENTRIES = "auth.cache.entries"
METRIC_ACTIVE_PATH = "auth.active_path"
METRIC_STALE = "auth.tokens.stale"
METRIC_WEBSOCKET_CLOSES = "auth.websocket.closes"
METRIC_AUTHORIZATIONS = "auth.authorizations"
METRIC_REVOCATION_CONFIRMATIONS = "auth.revocation.confirmations"
METRIC_REVOCATION_AVAILABLE = "auth.revocation.available"

#: Outcomes of a background confirmation (``auth.result`` of ``auth.revocation.confirmations``):
#: the API server accepted the token, refused it (revoked), could not answer, or no slot was
#: free (``skipped``: nothing sent, the next use of the token tries again).
CONFIRMATION_OUTCOMES = ("confirmed", "revoked", "unavailable", "skipped")

#: Verification latency buckets in seconds: a cached answer takes microseconds, a local
#: signature check ~0.1-0.3 ms, a TokenReview a few ms to the 5 s timeout.
DURATION_BUCKETS = (
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
)
PATHS = ("jwks", "tokenreview", "none")

#: Verification methods.
METHOD_JWKS = "jwks"
METHOD_TOKENREVIEW = "tokenreview"
