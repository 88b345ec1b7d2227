"""compass-auth: trust calls from workloads in the same Kubernetes cluster.

Public API::

    from compass_auth import AuthenticatedHandler, Authenticator, AuthSettings, Identity, connect

    authenticator = await connect(AuthSettings.from_env(os.environ), os.environ)

The test kit (the cluster emulator and its pytest fixtures) is ``compass_auth.testing``, installed
with the ``testing`` extra.
"""

from .core.access import NonResourceCheck, ResourceCheck, parse_access
from .core.errors import (
    AccessDenied,
    AudienceMismatch,
    AuthError,
    AuthorizationUnavailable,
    BadSignature,
    DiscoveryUnavailable,
    IssuerMismatch,
    KeysUnavailable,
    LegacyToken,
    LifetimeTooLong,
    MalformedHeader,
    MalformedToken,
    MissingToken,
    NotPodBound,
    NotYetValid,
    ReviewRejected,
    StaleToken,
    SubjectNotAllowed,
    TokenExpired,
    TokenRejected,
    TokenReviewUnavailable,
    TokenRevoked,
    TokenTooLarge,
    UnknownKey,
    UnsupportedAlgorithm,
    VerificationUnavailable,
)
from .core.identity import Identity
from .settings import AuthSettings, SettingsError
from .tornado.handler import AuthenticatedHandler
from .tornado.routes import RouteAccessError, check_routes, describe_routes
from .verification.authenticator import Authenticator
from .verification.factory import connect
from .verification.readiness import Readiness
from .version import __version__

__all__ = [
    "AccessDenied",
    "AudienceMismatch",
    "AuthError",
    "AuthSettings",
    "AuthenticatedHandler",
    "Authenticator",
    "AuthorizationUnavailable",
    "BadSignature",
    "DiscoveryUnavailable",
    "Identity",
    "IssuerMismatch",
    "KeysUnavailable",
    "LegacyToken",
    "LifetimeTooLong",
    "MalformedHeader",
    "MalformedToken",
    "MissingToken",
    "NonResourceCheck",
    "NotPodBound",
    "NotYetValid",
    "Readiness",
    "ResourceCheck",
    "ReviewRejected",
    "RouteAccessError",
    "SettingsError",
    "StaleToken",
    "SubjectNotAllowed",
    "TokenExpired",
    "TokenRejected",
    "TokenReviewUnavailable",
    "TokenRevoked",
    "TokenTooLarge",
    "UnknownKey",
    "UnsupportedAlgorithm",
    "VerificationUnavailable",
    "__version__",
    "check_routes",
    "connect",
    "describe_routes",
    "parse_access",
]
