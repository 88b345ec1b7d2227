"""Settings: one table, validated once, in code or from the environment.

Each field of ``AuthSettings`` carries its own ``AUTH_*`` variable, default, converter and help
text (``setting(...)``): that one table generates the parsing (``from_env``), the rows of
``config/auth.env`` and the table in docs/settings.md (``variables``, ``render_docs_table``;
scripts/render_settings.py writes both, ``make config``, and the tests check them). The table
holds only what the library applies; the example service keeps its own (service/settings.py)
with the same machinery.

In code, ``AuthSettings(audience="reports")`` takes the documented default for everything else;
either way a bad value raises ``SettingsError`` naming the variable. The audience has no default
anywhere, in code or in the environment: services that shared one would accept each other's
tokens. ``from_env(environ)`` takes the environment as a parameter (kubernetes-asyncio's
in-cluster loader does the same), so tests pass a dict instead of patching ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .core.access import AccessSyntaxError, Check, NonResourceCheck, ResourceCheck, format_access
from .core.access import parse_access as _parse_access
from .core.claims import StalePolicy
from .logs.text import LogText, clip

logger = logging.getLogger(__name__)

#: Log message operators grep for; keep it stable (docs/troubleshooting.md).
MSG_UNKNOWN_SETTING = "unknown setting ignored (a typo?)"

DEFAULT_SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: What to do with a token past its ``kubernetes.io.warnafter`` (see ``AUTH_STALE_TOKENS``).
#: kube-apiserver's TokenRequest minimum (docs/kubernetes-api.md#tokenrequest-spec): a lower
#: maximum rejects every token.
MIN_TOKEN_LIFETIME = 600


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    """How one field is set from the environment and checked."""

    env: str
    help: str
    #: The variable's text -> the field's value; raises SettingsError.
    parse: Callable[[str, str], Any]
    #: Raises SettingsError when a value (parsed, or given in code) is out of bounds.
    check: Callable[[str, Any], None]
    #: The field's value -> the variable's text (config/auth.env, docs/settings.md).
    text: Callable[[Any], str]


def setting(
    env: str,
    default: Any,
    help: str,
    parse: Callable[[str, str], Any],
    check: Callable[[str, Any], None] | None = None,
    text: Callable[[Any], str] = lambda value: str(value),
) -> Any:
    """A dataclass field that is also a row of a settings table (``default=MISSING``: the
    field must be given in code and the variable must be set)."""
    spec = Setting(env, help, parse, check or _no_check, text)
    if default is dataclasses.MISSING:
        return field(metadata={"setting": spec})
    return field(default=default, metadata={"setting": spec})


# --- converters: (variable, text) -> value, and checks: (variable, value) -> None ------------


def _no_check(name: str, value: Any) -> None:
    del name, value


def _text(name: str, text: str) -> str:
    return text


def _flag(name: str, text: str) -> bool:
    value = text.lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={value!r} must be true or false")


def _flag_text(value: bool) -> str:
    return "true" if value else "false"


def _number(kind: type[int] | type[float], minimum: float, maximum: float) -> tuple[
        Callable[[str, str], Any], Callable[[str, Any], None]]:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind is int and not isinstance(value, int)):
            wanted = "an integer" if kind is int else "a number"
            raise SettingsError(f"{name}={value!r} is not {wanted}")
        if not minimum <= value <= maximum:
            raise SettingsError(f"{name}={value:g} is out of range [{minimum:g}, {maximum:g}]")

    def parse(name: str, text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise SettingsError(f"{name}={text!r} is not a number") from None

    return parse, check


def _seconds_text(value: float) -> str:
    return f"{value:g}"


def _choice(*choices: str) -> tuple[Callable[[str, str], str], Callable[[str, Any], None]]:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}")

    return lambda name, text: text.lower(), check


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


#: The audience kube-apiserver gives the tokens for itself, every pod's automounted token among
#: them: ``--api-audiences``, which defaults to the issuer (docs/kubernetes-api.md#claims), and
#: the issuer is one of these on most clusters. (An issuer of AUTH_ISSUER is refused too.)
API_SERVER_AUDIENCE = re.compile(r"https://kubernetes\.default\.svc(\.[a-z0-9.-]+)?/?")


def _audience_check(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{name} must not be empty: tokens need an audience")
    if API_SERVER_AUDIENCE.fullmatch(value.lower()):
        raise SettingsError(_api_audience_error(f"{name}={value!r} is", "the API server's"))


def _api_audience_error(what: str, whose: str) -> str:
    return (
        f"{what} {whose} own audience: every pod's automounted token carries it, so any "
        "workload could call this service, and the service would receive tokens it could "
        "replay to the API server. Use the service's own audience (e.g. its name), which "
        "callers request in a projected token"
    )


def _is_service_account(subject: str) -> bool:
    parts = subject.split(":")
    return len(parts) == 4 and parts[:2] == ["system", "serviceaccount"] and all(parts[2:])


def _subjects_check(name: str, value: Any) -> None:
    for subject in value:
        if not _is_service_account(subject) and (
                subject.startswith("system:serviceaccount") or not subject
                or any(character.isspace() for character in subject)):
            raise SettingsError(
                f"{name} entry {subject!r} is not system:serviceaccount:<namespace>:<name>"
            )


def _access(name: str, text: str) -> tuple[Check, ...]:
    try:
        return _parse_access(text)
    except AccessSyntaxError as error:
        raise SettingsError(f"{name}: {error} (docs/authorization.md#the-syntax)") from None


def _access_check(name: str, value: Any) -> None:
    if not isinstance(value, tuple) or not all(
            isinstance(check, ResourceCheck | NonResourceCheck) for check in value):
        raise SettingsError(f"{name} must be a tuple of ResourceCheck or NonResourceCheck")


def _issuers_check(name: str, value: Any) -> None:
    for issuer in value:
        # kube-apiserver requires the issuer to be a URL or, historically, a plain string such
        # as "kubernetes/serviceaccount" (legacy, never accepted here): insist on https URLs.
        if not issuer.startswith("https://"):
            raise SettingsError(f"{name} entry {issuer!r} must be an https:// URL")


#: RFC 1123 host name: dot-separated labels of letters, digits and hyphens.
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _host_name(name: str, text: str) -> str:
    return text.rstrip(".").lower()


def _host_name_check(name: str, value: Any) -> None:
    is_ip = True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        is_ip = False
    if (is_ip or not value or len(value) > 253
            or not all(map(_HOST_LABEL.fullmatch, value.split(".")))):
        raise SettingsError(
            f"{name}={value!r} must be a DNS host name such as kubernetes.default.svc (the name "
            "in the API server's certificate)"
        )


def _lifetime(name: str, text: str) -> float | None:
    parse, check = _number(float, 0, float(1 << 32))
    value = parse(name, text)
    check(name, value)
    return None if value == 0 else value


def _lifetime_check(name: str, value: Any) -> None:
    if value is not None and value < MIN_TOKEN_LIFETIME:
        raise SettingsError(
            f"{name}={value:g} is below {MIN_TOKEN_LIFETIME}, the shortest lifetime the API "
            "server issues: every token would be rejected (0 = no limit)"
        )


def _realm_check(name: str, value: Any) -> None:
    # The realm is written inside a quoted-string of the challenge: keep it to safe characters.
    if not value or any(ch in value for ch in '"\\\r\n') or not value.isprintable():
        raise SettingsError(f"{name} must be non-empty printable text without quotes")


def _seconds(minimum: float, maximum: float) -> dict[str, Any]:
    parse, check = _number(float, minimum, maximum)
    return {"parse": parse, "check": check, "text": _seconds_text}


def _integer(minimum: int, maximum: int) -> dict[str, Any]:
    parse, check = _number(int, minimum, maximum)
    return {"parse": parse, "check": check}


def choices(*choices: str) -> dict[str, Any]:
    """``setting(...)`` arguments for a variable that takes one of ``choices`` (any case)."""
    parse, check = _choice(*choices)
    return {"parse": parse, "check": check}


_FLAG: dict[str, Any] = {"parse": _flag, "text": _flag_text}
_LIST: dict[str, Any] = {"parse": lambda name, text: tuple(_comma_list(text)),
                         "text": ",".join}
_SET: dict[str, Any] = {"parse": lambda name, text: frozenset(_comma_list(text)),
                        "text": lambda value: ",".join(sorted(value))}
_OPTIONAL_SECONDS: dict[str, Any] = {
    "parse": lambda name, text: _number(float, 1, 3600)[0](name, text) if text else None,
    "check": lambda name, value: None if value is None else _number(float, 1, 3600)[1](
        name, value),
    "text": lambda value: "" if value is None else _seconds_text(value)}
_OPTIONAL_TEXT: dict[str, Any] = {"parse": lambda name, text: text or None,
                                  "text": lambda value: value or ""}


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Every setting the library applies, validated.

    Each field is one row of the settings table: its variable, default and meaning are in the
    field's ``setting(...)`` (docs/settings.md is generated from them).
    """

    audience: str = setting(
        "AUTH_AUDIENCE", dataclasses.MISSING,
        "Audience that tokens must carry in `aud`, the one callers request (e.g. the "
        "service's name). Required, no default: services sharing one would accept each "
        "other's tokens.",
        _text, _audience_check)
    allowed_subjects: frozenset[str] = setting(
        "AUTH_ALLOWED_SUBJECTS", frozenset(),
        "Comma-separated `system:serviceaccount:NS:NAME` subjects allowed to call (with "
        "AUTH_AUTHENTICATION_CONFIG, also other issuers' mapped usernames); empty = any.",
        check=_subjects_check, **_SET)
    required_access: tuple[Check, ...] = setting(
        "AUTH_REQUIRED_ACCESS", (),
        "RBAC checks every caller of every `AuthenticatedHandler` (WebSockets included) must "
        "pass, before the handler's own `required_access` (SubjectAccessReview), "
        "`;`-separated, e.g. `verb=get,group=compass.example,resource=whoami,"
        "namespace={service_namespace}` or `verb=get,path=/whoami` "
        "([syntax](authorization.md#the-syntax), "
        "[service-wide](authorization.md#service-wide-checks)); empty = none.",
        _access, _access_check, text=format_access)
    issuers: tuple[str, ...] = setting(
        "AUTH_ISSUER", (),
        "Comma-separated accepted issuers; empty = the issuer the discovery document declares.",
        check=_issuers_check, **_LIST)
    #: Kubernetes' AuthenticationConfiguration: other issuers' tokens (issue 22).
    authentication_config: str | None = setting(
        "AUTH_AUTHENTICATION_CONFIG", None,
        "Path of a Kubernetes `AuthenticationConfiguration` file (`apiserver.config.k8s.io/v1`) "
        "whose `jwt` authenticators are trusted besides the cluster's own issuer; validated at "
        "start-up, re-read every 10 s ([several issuers](authentication-config.md#in-the-service)"
        "); empty = the cluster's issuer only.", **_OPTIONAL_TEXT)
    #: Dangerous: any issuer whose tokens the cluster's keys sign passes.
    insecure_skip_issuer_check: bool = setting(
        "AUTH_SKIP_ISSUER_CHECK", False,
        "INSECURE: accept any `iss` signed by the cluster's keys (parity with the system this is "
        "modelled on; logged as a WARN). Keep false; list aliases in AUTH_ISSUER.", **_FLAG)
    #: The API server's host name for TLS when connections are pinned to ``service_ip``.
    api_server_name: str = setting(
        "AUTH_API_SERVER_NAME", "kubernetes.default.svc",
        "Host name the API server's certificate is verified against (and sent as SNI) when "
        "KUBERNETES_SERVICE_IP pins connections to an address (DNS bypass).",
        _host_name, _host_name_check)
    require_pod_bound: bool = setting(
        "AUTH_REQUIRE_POD_BOUND", False,
        "Accept only tokens bound to a pod (`kubernetes.io.pod` claim).", **_FLAG)
    #: Maximum ``exp - iat`` in seconds; ``None`` = no limit.
    max_token_lifetime: float | None = setting(
        "AUTH_MAX_TOKEN_LIFETIME", None,
        "Reject tokens whose `exp - iat` exceeds this many seconds (e.g. the year-long extended "
        "tokens); 0 = no limit.",
        _lifetime, _lifetime_check, text=lambda value: "0" if value is None else f"{value:g}")
    stale_tokens: StalePolicy = setting(
        "AUTH_STALE_TOKENS", "off",
        "Tokens past `kubernetes.io.warnafter`: `off` (accepted silently), `warn` (accepted, WARN "
        "once per token) or `reject`.", **choices("off", "warn", "reject"))
    serviceaccount_dir: Path = setting(
        "AUTH_SERVICEACCOUNT_DIR", Path(DEFAULT_SERVICEACCOUNT_DIR),
        "Folder with the service's own `token`, `ca.crt` and `namespace` (in-cluster).",
        lambda name, text: Path(text or DEFAULT_SERVICEACCOUNT_DIR))
    kube_context: str | None = setting(
        "AUTH_KUBE_CONTEXT", None,
        "kubeconfig context to use outside a cluster; empty = current-context.", **_OPTIONAL_TEXT)
    clock_skew: float = setting(
        "AUTH_CLOCK_SKEW", 60.0,
        "Leeway in seconds for `exp`, `nbf` and `iat` (kube-apiserver uses 60).",
        **_seconds(0, 600))
    websocket_grace: float = setting(
        "AUTH_WEBSOCKET_GRACE", 0.0,
        "Seconds a WebSocket connection (`AuthenticatedWebSocketHandler`) may outlive its "
        "token's `exp` before it is closed with 1008 (docs/websocket.md).", **_seconds(0, 3600))
    websocket_max_pending_bytes: int = setting(
        "AUTH_WEBSOCKET_MAX_PENDING_BYTES", 256 * 1024,
        "Bytes of output a WebSocket connection may leave unread; a message that would take it "
        "past this closes the connection with 1008 (docs/websocket.md#a-memory-budget).",
        **_integer(64 * 1024, 1 << 30))
    websocket_max_per_caller: int = setting(
        "AUTH_WEBSOCKET_MAX_PER_CALLER", 100,
        "WebSocket connections one subject may hold open at once; one more handshake gets 429 "
        "(docs/websocket.md#a-memory-budget).", **_integer(1, 1_000_000))
    max_token_bytes: int = setting(
        "AUTH_MAX_TOKEN_BYTES", 8192,
        "Tokens longer than this are rejected before parsing (bound tokens are ~1 KiB).",
        **_integer(512, 1 << 20))
    api_timeout: float = setting(
        "AUTH_API_TIMEOUT", 5.0,
        "Timeout in seconds for each call to the API server.", **_seconds(0.1, 120))
    jwks_refresh_interval: float = setting(
        "AUTH_JWKS_REFRESH_INTERVAL", 300.0,
        "Background refresh of discovery and JWKS, in seconds (with ±10% jitter).",
        **_seconds(10, 86400))
    jwks_min_refresh_interval: float = setting(
        "AUTH_JWKS_MIN_REFRESH_INTERVAL", 10.0,
        "Cool-down in seconds between key fetches triggered by unknown `kid`s "
        "(docs/reliability.md#unknown-kids).", **_seconds(0.1, 3600))
    jwks_max_stale: float = setting(
        "AUTH_JWKS_MAX_STALE", 21600.0,
        "How long, in seconds, the last good key set is used while refreshes fail.",
        **_seconds(60, 7 * 86400))
    rediscovery_interval: float = setting(
        "AUTH_REDISCOVERY_INTERVAL", 60.0,
        "While discovery is down, retry it every this many seconds (with jitter).",
        **_seconds(0.1, 86400))
    realm: str = setting(
        "AUTH_REALM", "compass-auth", "`realm` in the `WWW-Authenticate` challenge.",
        _text, _realm_check)
    mode: Literal["auto", "review"] = setting(
        "AUTH_MODE", "auto",
        "`auto`: verify locally, TokenReview only when keys are unavailable. `review`: every "
        "first sight of a token also goes through TokenReview (revocation).",
        **choices("auto", "review"))
    tokenreview_max_in_flight: int = setting(
        "AUTH_TOKENREVIEW_MAX_IN_FLIGHT", 8,
        "Outstanding TokenReviews at most (in review mode, half of them for one caller); beyond "
        "that callers get 503.", **_integer(1, 256))
    tokenreview_cache_ttl: float = setting(
        "AUTH_TOKENREVIEW_CACHE_TTL", 120.0,
        "Seconds an accepted TokenReview answer is reused (capped by the token's exp).",
        **_seconds(0, 3600))
    revocation_check: bool = setting(
        "AUTH_REVOCATION_CHECK", True,
        "In `auto` mode, confirm each locally verified token with TokenReview in the "
        "background, off the request path, and refuse it (401 `token_revoked`) once the API "
        "server does (pod or service account deleted); docs/verification.md#revocation.",
        **_FLAG)
    revocation_window: float | None = setting(
        "AUTH_REVOCATION_WINDOW", None,
        "Seconds between two confirmations of a token in use (at most one TokenReview per "
        "token per window). Empty: AUTH_TOKENREVIEW_CACHE_TTL.", **_OPTIONAL_SECONDS)
    tokenreview_negative_ttl: float = setting(
        "AUTH_TOKENREVIEW_NEGATIVE_TTL", 30.0,
        "Seconds a rejected TokenReview answer is reused.", **_seconds(0, 3600))
    tokenreview_cache_size: int = setting(
        "AUTH_TOKENREVIEW_CACHE_SIZE", 10000,
        "Entries in the TokenReview answer cache (segmented LRU: entries used once go first).",
        **_integer(1, 1_000_000))
    authz_allowed_ttl: float = setting(
        "AUTH_AUTHZ_ALLOWED_TTL", 300.0,
        "Seconds an allowed SubjectAccessReview answer is reused (kube-apiserver's webhook "
        "authorizer default).", **_seconds(0, 3600))
    authz_denied_ttl: float = setting(
        "AUTH_AUTHZ_DENIED_TTL", 30.0,
        "Seconds a denied SubjectAccessReview answer is reused (kube-apiserver's webhook "
        "authorizer default).", **_seconds(0, 3600))
    authz_cache_size: int = setting(
        "AUTH_AUTHZ_CACHE_SIZE", 10000,
        "Entries in the SubjectAccessReview answer cache, one per caller and check (segmented "
        "LRU: entries used once go first).", **_integer(1, 1_000_000))
    authz_max_in_flight: int = setting(
        "AUTH_AUTHZ_MAX_IN_FLIGHT", 8,
        "Outstanding SubjectAccessReviews at most, half of them for one caller; beyond that "
        "callers get 503.",
        **_integer(1, 256))
    cache_size: int = setting(
        "AUTH_CACHE_SIZE", 10000,
        "Locally verified tokens remembered (segmented LRU: tokens used once go first); 0 = off.",
        **_integer(0, 1_000_000))
    cache_ttl: float = setting(
        "AUTH_CACHE_TTL", 300.0,
        "Seconds a locally verified token is remembered (never past its exp).",
        **_seconds(0, 3600))

    # --- from the Kubernetes environment, not AUTH_* (see from_env) ---
    #: ``KUBERNETES_SERVICE_IP``: pin API-server connections to this address (DNS bypass).
    service_ip: str | None = None
    #: True when ``KUBERNETES_SERVICE_HOST`` is set: then the in-cluster config is used.
    in_cluster: bool = False
    #: The kubeconfig outside a cluster: ``KUBECONFIG`` (first entry) or ``~/.kube/config``.
    kubeconfig: Path = field(default_factory=lambda: Path.home() / ".kube/config")

    def __post_init__(self) -> None:
        check_settings(self)
        # Usernames other than service accounts come only from AUTH_AUTHENTICATION_CONFIG's
        # claim mappings (issue 22); without that file such an entry is a typo.
        others = sorted(subject for subject in self.allowed_subjects
                        if not _is_service_account(subject))
        if others and not self.authentication_config:
            raise SettingsError(
                f"AUTH_ALLOWED_SUBJECTS entry {others[0]!r} is not "
                "system:serviceaccount:<namespace>:<name> (other usernames need "
                "AUTH_AUTHENTICATION_CONFIG)")
        if self.audience in self.issuers:
            raise SettingsError(_api_audience_error(
                f"AUTH_AUDIENCE={self.audience!r} is an issuer of AUTH_ISSUER, by default the "
                "API server's", "(--api-audiences)"))
        if self.service_ip is not None:
            _check_service_ip(self.service_ip)
        if self.insecure_skip_issuer_check:
            # go-oidc names its equivalent SkipIssuerCheck and documents it as dangerous: a token
            # from any issuer that the cluster's keys sign is accepted. Say so once, loudly.
            logger.warning(
                "INSECURE: issuer check disabled (AUTH_SKIP_ISSUER_CHECK=true); tokens are "
                "accepted whatever their iss. List issuer aliases in AUTH_ISSUER instead",
                extra={"variable": "AUTH_SKIP_ISSUER_CHECK"},
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthSettings:
        """Parse ``environ``; raise ``SettingsError`` naming the first bad variable."""
        for name in sorted(key for key in environ if key.startswith("AUTH_")):
            if name not in _KNOWN:
                _warn_unknown(name)
        values = parse_settings(cls, environ)
        service_ip = environ.get("KUBERNETES_SERVICE_IP", "").strip()
        kubeconfig = environ.get("KUBECONFIG", "").split(":")[0]
        return cls(
            **values,
            service_ip=str(_check_service_ip(service_ip)) if service_ip else None,
            in_cluster=bool(environ.get("KUBERNETES_SERVICE_HOST")),
            kubeconfig=Path(kubeconfig) if kubeconfig else Path.home() / ".kube/config",
        )

    def describe(self) -> dict[str, Any]:
        """The effective settings, for the one start-up log line (no secrets live here)."""
        described: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "required_access":
                value = format_access(value)
            elif isinstance(value, frozenset | tuple):
                value = ",".join(sorted(value)) if isinstance(value, frozenset) else ",".join(value)
            described[item.name] = str(value)
        return described


class Variable(NamedTuple):
    """One row of a settings table, as text."""

    name: str
    #: The default as the variable's text; ``None``: required, no default.
    default: str | None
    help: str
    #: The field it sets.
    field: str


def _settings(table: type) -> Iterator[tuple[dataclasses.Field[Any], Setting]]:
    for item in fields(table):
        spec = item.metadata.get("setting")
        if spec is not None:
            yield item, spec


def parse_settings(table: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields of the dataclass ``table`` that ``environ`` sets, parsed (a variable that is
    not set leaves its field's default); ``SettingsError`` names a bad or missing variable."""
    values: dict[str, Any] = {}
    for item, spec in _settings(table):
        text = environ.get(spec.env)
        if text is not None:
            values[item.name] = spec.parse(spec.env, text.strip())
        elif item.default is dataclasses.MISSING:
            raise SettingsError(f"{spec.env} is not set. {spec.help}")
    return values


def check_settings(settings: Any) -> None:
    """Check every field of a settings dataclass (set in code or parsed) against its row."""
    for item, spec in _settings(type(settings)):
        spec.check(spec.env, getattr(settings, item.name))


def variables(table: type) -> tuple[Variable, ...]:
    """The rows of the dataclass ``table`` (fields declared with ``setting``), in order."""
    rows = []
    for item, spec in _settings(table):
        default = None if item.default is dataclasses.MISSING else spec.text(item.default)
        rows.append(Variable(spec.env, default, spec.help, item.name))
    return tuple(rows)


#: Every ``AUTH_*`` variable the library reads, with its default (as text) and meaning.
VARIABLES: tuple[Variable, ...] = variables(AuthSettings)
_KNOWN = {variable.name for variable in VARIABLES}


def render_docs_table(rows: tuple[Variable, ...] = VARIABLES, table: str = "AuthSettings") -> str:
    """A table of docs/settings.md (Markdown), one row per variable of ``rows``, whose fields
    belong to the class named ``table``."""
    lines = [f"| variable | `{table}` field | default | meaning |", "|---|---|---|---|"]
    for variable in rows:
        if variable.default is None:
            default = "(required)"
        else:
            default = f"`{variable.default}`" if variable.default else "(empty)"
        lines.append(
            f"| `{variable.name}` | `{variable.field}` | {default} | {variable.help} |")
    return "\n".join(lines) + "\n"


def _check_service_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise SettingsError(
            f"KUBERNETES_SERVICE_IP={value!r} is not an IP address (find it with "
            "`kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}'`)"
        ) from None


def _warn_unknown(name: str) -> None:
    """The line for an ``AUTH_*`` variable that is no setting, with the nearest real one."""
    variable = clip(name, 80)
    fields: dict[str, str] = {"variable": variable}
    text = f"{MSG_UNKNOWN_SETTING}: {variable} is not a compass-auth setting"
    close = difflib.get_close_matches(name, sorted(_KNOWN), n=1)
    if close:
        fields["did_you_mean"] = close[0]
        text += f"; did you mean {close[0]}?"
    text += " (docs/settings.md lists every setting)"
    logger.warning(LogText(text, MSG_UNKNOWN_SETTING), extra=fields)
