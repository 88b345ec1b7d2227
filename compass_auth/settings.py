"""Settings: parsed and validated once at start-up from the environment.

``AuthSettings.from_env(environ)`` takes the environment as a parameter (kubernetes-asyncio's
in-cluster loader does the same) so tests pass a dict instead of patching ``os.environ``. A bad
value raises ``SettingsError`` with a sentence naming the variable; the service stops on it.

``VARIABLES`` is the single list of every ``AUTH_*`` variable with its default and meaning;
``config/auth.env`` and the README table are checked against it by the tests.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

logger = logging.getLogger(__name__)

DEFAULT_SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: What to do with a token past its ``kubernetes.io.warnafter`` (see ``AUTH_STALE_TOKENS``).
StalePolicy = Literal["off", "warn", "reject"]
#: kube-apiserver's TokenRequest minimum (docs/kubernetes-api.md#tokenrequest-spec): a lower
#: maximum rejects every token.
MIN_TOKEN_LIFETIME = 600


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


class Variable(NamedTuple):
    name: str
    default: str
    help: str


VARIABLES: tuple[Variable, ...] = (
    Variable("AUTH_AUDIENCE", "compass-internal",
             "Audience that tokens must carry in `aud` (required, non-empty)."),
    Variable("AUTH_ALLOWED_SUBJECTS", "",
             "Comma-separated `system:serviceaccount:NS:NAME` subjects allowed to call; "
             "empty = any."),
    Variable("AUTH_ISSUER", "",
             "Comma-separated accepted issuers; empty = the issuer the discovery document "
             "declares."),
    Variable("AUTH_SKIP_ISSUER_CHECK", "false",
             "INSECURE: accept any `iss` signed by the cluster's keys (parity with the system "
             "this is modelled on; logged as a WARN). Keep false; list aliases in AUTH_ISSUER."),
    Variable("AUTH_API_SERVER_NAME", "kubernetes.default.svc",
             "Host name the API server's certificate is verified against (and sent as SNI) "
             "when KUBERNETES_SERVICE_IP pins connections to an address (DNS bypass)."),
    Variable("AUTH_REQUIRE_POD_BOUND", "false",
             "Accept only tokens bound to a pod (`kubernetes.io.pod` claim)."),
    Variable("AUTH_MAX_TOKEN_LIFETIME", "0",
             "Reject tokens whose `exp - iat` exceeds this many seconds (e.g. the year-long "
             "extended tokens); 0 = no limit."),
    Variable("AUTH_STALE_TOKENS", "off",
             "Tokens past `kubernetes.io.warnafter`: `off` (accepted silently), `warn` "
             "(accepted, WARN once per token) or `reject`."),
    Variable("AUTH_SERVICEACCOUNT_DIR", DEFAULT_SERVICEACCOUNT_DIR,
             "Folder with the service's own `token`, `ca.crt` and `namespace` (in-cluster)."),
    Variable("AUTH_KUBE_CONTEXT", "",
             "kubeconfig context to use outside a cluster; empty = current-context."),
    Variable("AUTH_CLOCK_SKEW", "60",
             "Leeway in seconds for `exp`, `nbf` and `iat` (kube-apiserver uses 60)."),
    Variable("AUTH_MAX_TOKEN_BYTES", "8192",
             "Tokens longer than this are rejected before parsing (bound tokens are ~1 KiB)."),
    Variable("AUTH_API_TIMEOUT", "5",
             "Timeout in seconds for each call to the API server."),
    Variable("AUTH_JWKS_REFRESH_INTERVAL", "300",
             "Background refresh of discovery and JWKS, in seconds (with ±10% jitter)."),
    Variable("AUTH_JWKS_MIN_REFRESH_INTERVAL", "10",
             "Cool-down in seconds between refetches triggered by an unknown `kid`."),
    Variable("AUTH_JWKS_MAX_STALE", "21600",
             "How long, in seconds, the last good key set is used while refreshes fail."),
    Variable("AUTH_REDISCOVERY_INTERVAL", "60",
             "While discovery is down, retry it every this many seconds (with jitter)."),
    Variable("AUTH_REALM", "compass-auth",
             "`realm` in the `WWW-Authenticate` challenge."),
    Variable("AUTH_LOG_FORMAT", "logfmt", "`logfmt` or `json`."),
    Variable("AUTH_LOG_LEVEL", "INFO", "Python log level name."),
    Variable("AUTH_MODE", "auto",
             "`auto`: verify locally, TokenReview only when keys are unavailable. `review`: "
             "every first sight of a token also goes through TokenReview (revocation)."),
    Variable("AUTH_TOKENREVIEW_MAX_IN_FLIGHT", "8",
             "Outstanding TokenReviews at most; beyond that callers get 503."),
    Variable("AUTH_TOKENREVIEW_CACHE_TTL", "120",
             "Seconds an accepted TokenReview answer is reused (capped by the token's exp)."),
    Variable("AUTH_TOKENREVIEW_NEGATIVE_TTL", "30",
             "Seconds a rejected TokenReview answer is reused."),
    Variable("AUTH_TOKENREVIEW_CACHE_SIZE", "10000",
             "Entries in the TokenReview answer cache (least recently used go first)."),
    Variable("AUTH_CACHE_SIZE", "10000",
             "Locally verified tokens remembered (least recently used go first); 0 = off."),
    Variable("AUTH_CACHE_TTL", "300",
             "Seconds a locally verified token is remembered (never past its exp)."),
)
_KNOWN = {variable.name for variable in VARIABLES}
_DEFAULTS = {variable.name: variable.default for variable in VARIABLES}


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Every setting of the library and the example service, validated."""

    audience: str
    allowed_subjects: frozenset[str]
    issuers: tuple[str, ...]
    #: AUTH_SKIP_ISSUER_CHECK. Dangerous: any issuer whose tokens the cluster's keys sign passes.
    insecure_skip_issuer_check: bool
    #: The API server's host name for TLS when connections are pinned to ``service_ip``.
    api_server_name: str
    #: ``KUBERNETES_SERVICE_IP``: pin API-server connections to this address (DNS bypass).
    service_ip: str | None
    require_pod_bound: bool
    #: Maximum ``exp - iat`` in seconds; ``None`` = no limit.
    max_token_lifetime: float | None
    stale_tokens: StalePolicy
    serviceaccount_dir: Path
    kube_context: str | None
    #: True when ``KUBERNETES_SERVICE_HOST`` is set: then the in-cluster config is used.
    in_cluster: bool
    #: The kubeconfig outside a cluster: ``KUBECONFIG`` (first entry) or ``~/.kube/config``.
    kubeconfig: Path
    clock_skew: float
    max_token_bytes: int
    api_timeout: float
    jwks_refresh_interval: float
    jwks_min_refresh_interval: float
    jwks_max_stale: float
    rediscovery_interval: float
    realm: str
    log_format: Literal["logfmt", "json"]
    log_level: str
    mode: Literal["auto", "review"]
    tokenreview_max_in_flight: int
    tokenreview_cache_ttl: float
    tokenreview_negative_ttl: float
    tokenreview_cache_size: int
    cache_size: int
    cache_ttl: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthSettings:
        """Parse ``environ``; raise ``SettingsError`` naming the first bad variable."""
        for name in sorted(key for key in environ if key.startswith("AUTH_")):
            if name not in _KNOWN:
                logger.warning("unknown setting ignored (a typo?)", extra={"variable": name})

        def raw(name: str) -> str:
            return environ.get(name, _DEFAULTS[name]).strip()

        audience = raw("AUTH_AUDIENCE")
        if not audience:
            raise SettingsError("AUTH_AUDIENCE must not be empty: tokens need an audience")
        kubeconfig_env = environ.get("KUBECONFIG", "").split(":")[0]
        return cls(
            audience=audience,
            allowed_subjects=frozenset(_subjects(raw("AUTH_ALLOWED_SUBJECTS"))),
            issuers=tuple(_issuers(raw("AUTH_ISSUER"))),
            insecure_skip_issuer_check=_skip_issuer_check(raw),
            api_server_name=_host_name(raw("AUTH_API_SERVER_NAME")),
            service_ip=_service_ip(environ.get("KUBERNETES_SERVICE_IP", "").strip()),
            require_pod_bound=_flag(raw, "AUTH_REQUIRE_POD_BOUND"),
            max_token_lifetime=_lifetime(raw),
            stale_tokens=_choice(  # type: ignore[arg-type]
                raw, "AUTH_STALE_TOKENS", ("off", "warn", "reject")),
            serviceaccount_dir=Path(raw("AUTH_SERVICEACCOUNT_DIR") or DEFAULT_SERVICEACCOUNT_DIR),
            kube_context=raw("AUTH_KUBE_CONTEXT") or None,
            in_cluster=bool(environ.get("KUBERNETES_SERVICE_HOST")),
            kubeconfig=Path(kubeconfig_env) if kubeconfig_env else Path.home() / ".kube/config",
            clock_skew=_seconds(raw, "AUTH_CLOCK_SKEW", minimum=0, maximum=600),
            max_token_bytes=int(_number(raw, "AUTH_MAX_TOKEN_BYTES", int, 512, 1 << 20)),
            api_timeout=_seconds(raw, "AUTH_API_TIMEOUT", minimum=0.1, maximum=120),
            jwks_refresh_interval=_seconds(raw, "AUTH_JWKS_REFRESH_INTERVAL", 10, 86400),
            jwks_min_refresh_interval=_seconds(raw, "AUTH_JWKS_MIN_REFRESH_INTERVAL", 0.1, 3600),
            jwks_max_stale=_seconds(raw, "AUTH_JWKS_MAX_STALE", 60, 7 * 86400),
            rediscovery_interval=_seconds(raw, "AUTH_REDISCOVERY_INTERVAL", 0.1, 86400),
            realm=_realm(raw("AUTH_REALM")),
            log_format=_choice(raw, "AUTH_LOG_FORMAT", ("logfmt", "json")),  # type: ignore[arg-type]
            log_level=_log_level(raw("AUTH_LOG_LEVEL")),
            mode=_choice(raw, "AUTH_MODE", ("auto", "review")),  # type: ignore[arg-type]
            tokenreview_max_in_flight=int(
                _number(raw, "AUTH_TOKENREVIEW_MAX_IN_FLIGHT", int, 1, 256)
            ),
            tokenreview_cache_ttl=_seconds(raw, "AUTH_TOKENREVIEW_CACHE_TTL", 0, 3600),
            tokenreview_negative_ttl=_seconds(raw, "AUTH_TOKENREVIEW_NEGATIVE_TTL", 0, 3600),
            tokenreview_cache_size=int(
                _number(raw, "AUTH_TOKENREVIEW_CACHE_SIZE", int, 1, 1_000_000)
            ),
            cache_size=int(_number(raw, "AUTH_CACHE_SIZE", int, 0, 1_000_000)),
            cache_ttl=_seconds(raw, "AUTH_CACHE_TTL", 0, 3600),
        )

    def describe(self) -> dict[str, Any]:
        """The effective settings, for the one start-up log line (no secrets live here)."""
        described: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, frozenset | tuple):
                value = ",".join(sorted(value)) if isinstance(value, frozenset) else ",".join(value)
            described[item.name] = str(value)
        return described


def render_env_file() -> str:
    """The text of ``config/auth.env``: every variable, its meaning and its default."""
    lines = [
        "# compass-auth settings: every AUTH_* variable with its default.",
        "# The service reads them from the environment (k8s/ loads this file into a ConfigMap).",
        "# Edit what you need; an unknown AUTH_* variable is logged as a likely typo.",
        "# Regenerate after adding a variable: make config",
        "",
    ]
    for variable in VARIABLES:
        lines += [f"# {variable.help}", f"{variable.name}={variable.default}", ""]
    return "\n".join(lines)


def _subjects(text: str) -> list[str]:
    subjects = [item.strip() for item in text.split(",") if item.strip()]
    for subject in subjects:
        parts = subject.split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"] or not all(parts[2:]):
            raise SettingsError(
                f"AUTH_ALLOWED_SUBJECTS entry {subject!r} is not "
                "system:serviceaccount:<namespace>:<name>"
            )
    return subjects


def _issuers(text: str) -> list[str]:
    issuers = [item.strip() for item in text.split(",") if item.strip()]
    for issuer in issuers:
        # kube-apiserver requires the issuer to be a URL or, historically, a plain string such as
        # "kubernetes/serviceaccount" (legacy, which we never accept): insist on https URLs.
        if not issuer.startswith("https://"):
            raise SettingsError(f"AUTH_ISSUER entry {issuer!r} must be an https:// URL")
    return issuers


def _flag(raw: Callable[[str], str], name: str) -> bool:
    value = raw(name).lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={value!r} must be true or false")


def _skip_issuer_check(raw: Callable[[str], str]) -> bool:
    skip = _flag(raw, "AUTH_SKIP_ISSUER_CHECK")
    if skip:
        # go-oidc names its equivalent SkipIssuerCheck and documents it as dangerous: a token
        # from any issuer that the cluster's keys sign is accepted. Say so once, loudly.
        logger.warning(
            "INSECURE: issuer check disabled (AUTH_SKIP_ISSUER_CHECK=true); tokens are accepted "
            "whatever their iss. List issuer aliases in AUTH_ISSUER instead",
            extra={"variable": "AUTH_SKIP_ISSUER_CHECK"},
        )
    return skip


#: RFC 1123 host name: dot-separated labels of letters, digits and hyphens.
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _host_name(value: str) -> str:
    name = value.rstrip(".").lower()
    labels = name.split(".")
    is_ip = True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        is_ip = False
    if is_ip or not name or len(name) > 253 or not all(map(_HOST_LABEL.fullmatch, labels)):
        raise SettingsError(
            f"AUTH_API_SERVER_NAME={value!r} must be a DNS host name such as "
            "kubernetes.default.svc (the name in the API server's certificate)"
        )
    return name


def _service_ip(value: str) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise SettingsError(
            f"KUBERNETES_SERVICE_IP={value!r} is not an IP address (find it with "
            "`kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}'`)"
        ) from None


def _lifetime(raw: Callable[[str], str]) -> float | None:
    value = _seconds(raw, "AUTH_MAX_TOKEN_LIFETIME", 0, float(1 << 32))
    if value == 0:
        return None
    if value < MIN_TOKEN_LIFETIME:
        raise SettingsError(
            f"AUTH_MAX_TOKEN_LIFETIME={value:g} is below {MIN_TOKEN_LIFETIME}, the shortest "
            "lifetime the API server issues: every token would be rejected (0 = no limit)"
        )
    return value


def _number(
    raw: Callable[[str], str],
    name: str,
    kind: type[int] | type[float],
    minimum: float,
    maximum: float,
) -> float:
    text = raw(name)
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={text} is out of range [{minimum}, {maximum}]")
    return value


def _seconds(raw: Callable[[str], str], name: str, minimum: float, maximum: float) -> float:
    return _number(raw, name, float, minimum, maximum)


def _choice(raw: Callable[[str], str], name: str, choices: tuple[str, ...]) -> str:
    value = raw(name).lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _realm(value: str) -> str:
    # The realm is written inside a quoted-string of the challenge: keep it to safe characters.
    if not value or any(ch in value for ch in '"\\\r\n') or not value.isprintable():
        raise SettingsError("AUTH_REALM must be non-empty printable text without quotes")
    return value


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "WARN", "ERROR"):
        raise SettingsError(f"AUTH_LOG_LEVEL={value!r} must be DEBUG, INFO, WARNING or ERROR")
    return "WARNING" if level == "WARN" else level
