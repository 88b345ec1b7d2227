"""compass-auth: trust calls from workloads in the same Kubernetes cluster.

Public API::

    from compass_auth import AuthenticatedHandler, Authenticator, AuthSettings, Identity, connect

    authenticator = await connect(AuthSettings.from_env(os.environ), os.environ)

The test kit (the cluster emulator and its pytest fixtures) is ``compass_auth.testing``, installed
with the ``testing`` extra.
"""

from .access import NonResourceCheck, ResourceCheck, parse_access
from .authenticator import Authenticator
from .errors import (
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
    TokenTooLarge,
    UnknownKey,
    UnsupportedAlgorithm,
    VerificationUnavailable,
)
from .factory import connect
from .handler import AuthenticatedHandler
from .identity import Identity
from .readiness import Readiness
from .routes import RouteAccessError, check_routes, describe_routes
from .settings import AuthSettings, SettingsError
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
