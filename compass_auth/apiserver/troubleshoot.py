"""Failures an operator can meet, each as one stable log line with the fix in it.

Every ``MSG_*`` constant below is a message operators grep for, listed with its cause and fix in
``docs/troubleshooting.md`` (a test keeps the two in step). The ``fix`` field says what to do;
``error`` carries the underlying error text. Nothing here logs a token: only fingerprints,
subjects and issuers.

The classifiers are pure (exception or status in, ``Diagnosis`` out); ``Troubleshooter`` logs,
and repeats an identical diagnosis at most every ``REPEAT_AFTER`` seconds, because the start-up
retries and the background refresh would otherwise print the same ERROR several times a minute.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ..core.errors import MalformedToken
from ..core.segments import decode_segment
from ..logs.text import render

logger = logging.getLogger(__name__)

MSG_CA_FILE = "API server CA file is missing or unreadable"
# S105: these are log messages that mention tokens, not secrets.
MSG_TOKEN_FILE = "service account token file is missing or unreadable"  # noqa: S105
MSG_DNS = "cannot resolve the API server host name"
MSG_TLS = "TLS verification of the API server failed"
MSG_CONNECT = "cannot connect to the API server"
MSG_UNAUTHORIZED = "API server rejected the service's credentials (401)"
MSG_FORBIDDEN = "API server forbids OIDC discovery to this service (403)"
MSG_FORBIDDEN_TOKENREVIEW = "API server forbids TokenReview to this service (403)"
MSG_ISSUER_OWN_TOKEN = "issuer mismatch: own token and discovery disagree"  # noqa: S105
MSG_ISSUER_PINNED = "issuer mismatch: AUTH_ISSUER does not list the issuer discovery declares"

#: Every message, for the docs test.
ALL_MESSAGES = (
    MSG_CA_FILE, MSG_TOKEN_FILE, MSG_DNS, MSG_TLS, MSG_CONNECT, MSG_UNAUTHORIZED, MSG_FORBIDDEN,
    MSG_FORBIDDEN_TOKENREVIEW, MSG_ISSUER_OWN_TOKEN, MSG_ISSUER_PINNED,
)

#: Seconds before an identical diagnosis is logged again while the failure lasts.
REPEAT_AFTER = 300.0

_FIND_SERVICE_IP = "kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}'"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One operator-facing failure: the stable message, the fix, and context fields."""

    message: str
    fix: str
    fields: dict[str, Any] = field(default_factory=dict)
    level: int = logging.ERROR


# --- configuration time ---------------------------------------------------------------------


def diagnose_ca_file(path: Path | str | None, *, in_cluster: bool) -> Diagnosis | None:
    """``None`` when ``path`` holds a usable PEM CA bundle (or no CA file is configured)."""
    if path is None:
        return None
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        error = "no such file"
    except ssl.SSLError as problem:  # before OSError, its base class
        error = f"not a PEM certificate bundle ({problem.reason or problem})"
    except OSError as problem:
        error = problem.strerror or str(problem)
    else:
        return None
    fix = (
        "mount the projected service-account volume (automountServiceAccountToken: true) or "
        "point AUTH_SERVICEACCOUNT_DIR at the folder holding ca.crt"
        if in_cluster
        else "fix certificate-authority / certificate-authority-data of the kubeconfig cluster"
    )
    return Diagnosis(MSG_CA_FILE, fix, {"path": str(path), "error": error})


def diagnose_token_file(path: Path, error: str) -> Diagnosis:
    return Diagnosis(
        MSG_TOKEN_FILE,
        "mount the projected service-account volume (automountServiceAccountToken: true) or "
        "point AUTH_SERVICEACCOUNT_DIR at the folder holding the token",
        {"path": str(path), "error": error},
    )


# --- API-server calls -----------------------------------------------------------------------


def diagnose_transport(
    error: BaseException, *, host: str, bypass_address: str | None, ca_file: str | None
) -> Diagnosis | None:
    """Classify an aiohttp connection failure; ``None`` for anything else (e.g. timeouts)."""
    text = str(error)[:300]
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        fix = (
            f"the API server certificate must chain to the CA in {ca_file or 'the trust store'} "
            f"and name {host}"
        )
        if bypass_address is not None:
            fix += (
                f" (connections go to {bypass_address} by KUBERNETES_SERVICE_IP; set "
                "AUTH_API_SERVER_NAME to a name the certificate carries)"
            )
        fix += "; never turn verification off"
        return Diagnosis(MSG_TLS, fix, {"host": host, "error": text})
    if _is_dns_failure(error):
        return Diagnosis(
            MSG_DNS,
            "if pods cannot resolve it, set KUBERNETES_SERVICE_IP to the kubernetes Service's "
            f"ClusterIP (find it with: {_FIND_SERVICE_IP}); TLS still verifies the name",
            {"host": host, "error": text},
        )
    if isinstance(error, aiohttp.ClientConnectorError):
        where = bypass_address or host
        return Diagnosis(
            MSG_CONNECT,
            f"check that {where} is the API server address (KUBERNETES_SERVICE_HOST/PORT, "
            "KUBERNETES_SERVICE_IP or the kubeconfig server) and that egress to it is allowed "
            "(NetworkPolicy, proxy settings)",
            {"host": host, "error": text},
        )
    return None


#: The API paths whose 403 has a known RBAC fix.
OIDC_PATHS = frozenset({"/.well-known/openid-configuration", "/openid/v1/jwks"})
TOKENREVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def diagnose_status(
    status: int, *, path: str, own_subject: str | None, token_path: Path | None
) -> Diagnosis | None:
    """Classify a 401 (any path) or a 403 (discovery or TokenReview); else ``None``."""
    account = own_subject.removeprefix("system:serviceaccount:") if own_subject else "NS:NAME"
    if status == 401:
        where = (
            f"the projected token at {token_path} (is the kubelet still rotating it?)"
            if token_path is not None
            else "the kubeconfig user's credentials"
        )
        return Diagnosis(
            MSG_UNAUTHORIZED,
            f"the service's own token is expired, revoked or not for the API server's audience: "
            f"check {where}",
            {"status": status, "path": path},
        )
    if status == 403 and path in OIDC_PATHS:
        return Diagnosis(
            MSG_FORBIDDEN,
            "bind the ClusterRole system:service-account-issuer-discovery (by default bound to "
            "the group system:serviceaccounts): kubectl create clusterrolebinding "
            "compass-auth-issuer-discovery --clusterrole=system:service-account-issuer-discovery "
            f"--serviceaccount={account}",
            {"status": status, "path": path, "subject": own_subject or ""},
        )
    if status == 403 and path == TOKENREVIEW_PATH:
        return Diagnosis(
            MSG_FORBIDDEN_TOKENREVIEW,
            "allow `create` on tokenreviews.authentication.k8s.io: kubectl create "
            "clusterrolebinding compass-auth-tokenreview --clusterrole=system:auth-delegator "
            f"--serviceaccount={account}",
            {"status": status, "path": path, "subject": own_subject or ""},
        )
    return None


def _is_dns_failure(error: BaseException) -> bool:
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return True
    # Older aiohttp raises a plain ClientConnectorError around the resolver's gaierror.
    return isinstance(error, aiohttp.ClientConnectorError) and isinstance(
        error.os_error, socket.gaierror
    )


def token_claim(token: str, name: str) -> str | None:
    """An unverified string claim of a JWT, for diagnostics only (never for a decision)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        value = decode_segment(parts[1], "payload").get(name)
    except MalformedToken:
        return None
    return value if isinstance(value, str) else None


# --- logging --------------------------------------------------------------------------------


def log(diagnosis: Diagnosis) -> None:
    """One line: ``MESSAGE: host=..., error=...; fix: ...`` in its text (plain ``logging``
    prints nothing else) and the same as fields (``extra``) for structured formatters."""
    logger.log(diagnosis.level, render(diagnosis.message, diagnosis.fields, fix=diagnosis.fix),
               extra={**diagnosis.fields, "fix": diagnosis.fix})


class Troubleshooter:
    """Logs diagnoses, an identical one at most every ``REPEAT_AFTER`` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[str, float] | None = None

    def report(self, diagnosis: Diagnosis | None) -> None:
        if diagnosis is None:
            return
        now = self._clock()
        if self._last is not None:
            message, logged_at = self._last
            if message == diagnosis.message and now - logged_at < REPEAT_AFTER:
                return
        self._last = (diagnosis.message, now)
        log(diagnosis)

    def clear(self) -> None:
        """The API server answered: the next failure is news again."""
        self._last = None
