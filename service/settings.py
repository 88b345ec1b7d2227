"""The example service's own settings: its audience and how it writes its log lines.

The library reads only what it applies (compass_auth/settings.py). ``AUTH_LOG_FORMAT`` and
``AUTH_LOG_LEVEL`` configure service/logs.py, which a library application does not have, so
they are rows of this table instead, declared with the library's ``setting(...)``: same
parsing, same sentences on a bad value, and a table of their own in docs/settings.md
(scripts/render_settings.py).

``AUDIENCE`` is the audience of the example's deployment (config/auth.env, k8s/) and of the
demo. It is not a default: ``python -m service serve`` without ``AUTH_AUDIENCE`` refuses to
start, like the library, since every copy of a service that fell back on it would accept the
others' tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from compass_auth.settings import (
    SettingsError,
    Variable,
    check_settings,
    choices,
    parse_settings,
    setting,
    variables,
)

#: The audience the example's callers request (config/auth.env, k8s/, the demo).
AUDIENCE = "compass-internal"


def _log_level(name: str, text: str) -> str:
    level = text.upper()
    return "WARNING" if level == "WARN" else level


def _log_level_check(name: str, value: Any) -> None:
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"{name}={value!r} must be DEBUG, INFO, WARNING or ERROR")


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """The settings only the example service applies, validated."""

    log_format: Literal["logfmt", "json"] = setting(
        "AUTH_LOG_FORMAT", "logfmt", "Log lines as `logfmt` or `json`.",
        **choices("logfmt", "json"))
    log_level: str = setting(
        "AUTH_LOG_LEVEL", "INFO", "Python log level name: DEBUG, INFO, WARN(ING) or ERROR.",
        _log_level, _log_level_check)

    def __post_init__(self) -> None:
        check_settings(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceSettings:
        """Parse ``environ``; raise ``SettingsError`` naming the first bad variable."""
        return cls(**parse_settings(cls, environ))


#: The example's ``AUTH_*`` variables, with their defaults and meanings.
VARIABLES: tuple[Variable, ...] = variables(ServiceSettings)
_NAMES = frozenset(variable.name for variable in VARIABLES)


def library_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the example's own variables: what ``AuthSettings.from_env`` reads
    (it names any other ``AUTH_*`` variable as a likely typo)."""
    return {name: value for name, value in environ.items() if name not in _NAMES}
