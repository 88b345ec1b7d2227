"""Log formatting for the example service: logfmt (default) or JSON, one line per record.

Fields are passed with ``extra={...}`` and appear as ``key=value`` after ``msg``; nothing here
ever sees a token (callers log ``token_fp``, a short SHA-256 fingerprint). The library's lines
carry their fields in their text too, for plain ``logging`` (``compass_auth.logs.text.LogText``):
here ``msg`` is then their stable message alone, so that no value is printed twice.

Tornado's own lines pass through ``TornadoLogFilter``: a line per malformed request or timed-out
connection is rate-limited like the library's rejection lines, and the values Tornado quotes
from a request (a header value, the request's repr with its query string) never reach the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from tornado.httputil import HTTPServerRequest

from compass_auth.logs.budget import LogBudget
from compass_auth.logs.text import LogText, clip
from compass_auth.telemetry import current_trace_ids
from compass_auth.tornado.handler import request_summary

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
        "msg": record.msg.message if isinstance(record.msg, LogText) else record.getMessage(),
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
    tornado_filter = TornadoLogFilter()
    for name in TornadoLogFilter.LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, TornadoLogFilter)]:
            logger.removeFilter(old)
        logger.addFilter(tornado_filter)


class TornadoLogFilter(logging.Filter):
    """Budgets Tornado's lines and keeps request values out of them.

    ``tornado.general`` writes a line per malformed request ("Malformed HTTP message from %s:
    %s", tornado/http1connection.py), whose error may quote a header value ("Invalid header
    value %r", tornado/httputil.py): an ``Authorization`` header with a stray control character
    would put its token in the log. ``tornado.application`` writes ``%r`` of the request, with
    its query string, under an uncaught exception of a handler that does not use
    ``compass_auth.tornado.handler.log_uncaught``. Each template (``record.msg``) gets a
    ``LogBudget`` share; an error argument keeps its words up to the first quoted value; a
    request argument becomes ``request_summary``.
    """

    LOGGERS = ("tornado.general", "tornado.application")

    def __init__(self, budget: LogBudget | None = None) -> None:
        super().__init__()
        self.budget = budget or LogBudget()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, LogText):
            return True  # compass_auth.tornado.handler.log_uncaught: budgeted and redacted already
        suppressed = self.budget.admit(f"{record.name}:{clip(record.msg, 80)}")
        if suppressed is None:
            return False
        if suppressed:
            record.suppressed = suppressed
        if isinstance(record.args, tuple):
            # Tornado's default summary of a request ("GET /x?query (ip)") is as bad as its
            # repr: both become the redacted summary.
            unsafe = {f"{arg.method} {arg.uri} ({arg.remote_ip})": request_summary(arg)
                      for arg in record.args if isinstance(arg, HTTPServerRequest)}
            record.args = tuple(_without_request_values(arg, unsafe) for arg in record.args)
        return True


def _without_request_values(arg: object, summaries: dict[str, str]) -> object:
    if isinstance(arg, HTTPServerRequest):
        return request_summary(arg)
    if isinstance(arg, str) and arg in summaries:
        return summaries[arg]
    if isinstance(arg, BaseException):
        # "Invalid header value 'Bearer eyJ...'" -> "Invalid header value <...>"
        text = str(arg)
        cut = min((i for i in (text.find("'"), text.find('"')) if i >= 0), default=-1)
        return clip(text if cut < 0 else text[:cut] + "<...>", 120)
    return arg


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(ch in text for ch in ' "=\\') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text
