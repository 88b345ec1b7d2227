"""Log formatting for the example service: logfmt (default) or JSON, one line per record.

Fields are passed with ``extra={...}`` and appear as ``key=value`` after ``msg``; nothing here
ever sees a token (callers log ``token_fp``, a short SHA-256 fingerprint).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from compass_auth.telemetry import current_trace_ids

#: Attributes every LogRecord has; anything else came from ``extra=`` and is a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_LEVELS = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """time, level, logger, msg, then the record's extra fields in the order given."""
    fields: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": _LEVELS.get(record.levelname, record.levelname),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    # Formatting runs in the logging call's context, so this is the span that was current then.
    ids = current_trace_ids()
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


class LogfmtFormatter(logging.Formatter):
    """``key=value`` pairs; values with spaces, quotes or ``=`` are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record), default=str, ensure_ascii=False)


def configure_logging(log_format: str = "logfmt", level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (replacing earlier ones)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Tornado's access log duplicates what spans and metrics say, at a cost per request.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(ch in text for ch in ' "=\\') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text
