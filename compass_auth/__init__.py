"""compass-auth: trust calls from workloads in the same Kubernetes cluster.

Public API::

    from compass_auth import AuthenticatedHandler, Authenticator, AuthSettings, Identity

The test kit (the cluster emulator and its pytest fixtures) is ``compass_auth.testing``, installed
with the ``testing`` extra.
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
from .version import __version__

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
    "__version__",
]
