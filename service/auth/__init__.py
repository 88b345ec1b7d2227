"""compass-auth: trust calls from workloads in the same Kubernetes cluster.

Public API::

    from service.auth import AuthenticatedHandler, Authenticator, AuthSettings, Identity
"""

from .authenticator import Authenticator
from .errors import (
    AudienceMismatch,
    AuthError,
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
from .handler import AuthenticatedHandler
from .identity import Identity
from .settings import AuthSettings, SettingsError

__all__ = [
    "AudienceMismatch",
    "AuthError",
    "AuthSettings",
    "AuthenticatedHandler",
    "Authenticator",
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
    "NotPodBound",
    "NotYetValid",
    "ReviewRejected",
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
]
