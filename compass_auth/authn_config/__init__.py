"""Kubernetes' structured authentication configuration (``AuthenticationConfiguration``,
``apiserver.config.k8s.io/v1`` and ``v1beta1``): read, validated as kube-apiserver validates it,
and applied to verified claims as its JWT authenticator does. A pure layer: no asyncio, no
network; the one I/O is reading the file. CEL expressions need the ``cel`` extra.

The service uses it through ``verification/issuers.py`` (``AUTH_AUTHENTICATION_CONFIG``);
docs/authentication-config.md.
"""

from __future__ import annotations

from .errors import (
    AuthenticationConfigError,
    ClaimRejected,
    FieldError,
    IssuerUnknown,
    UserRejected,
)
from .expressions import INSTALL_HINT
from .loading import (
    AuthenticationConfig,
    load_authentication_config,
    parse_authentication_config,
)
from .mapping import MappedUser, user_from_claims
from .model import AuthenticationConfiguration, JWTAuthenticator
from .validation import CompiledAuthenticator, validate_authenticator, validate_configuration

__all__ = [
    "INSTALL_HINT",
    "AuthenticationConfig",
    "AuthenticationConfigError",
    "AuthenticationConfiguration",
    "ClaimRejected",
    "CompiledAuthenticator",
    "FieldError",
    "IssuerUnknown",
    "JWTAuthenticator",
    "MappedUser",
    "UserRejected",
    "load_authentication_config",
    "parse_authentication_config",
    "user_from_claims",
    "validate_authenticator",
    "validate_configuration",
]
