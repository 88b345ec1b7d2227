"""Log messages that read well under plain ``logging`` and structured formatters alike.

An application with ``logging.basicConfig()`` prints only a record's message, never the fields
passed with ``extra=``; a structured formatter (the example's ``service/logs.py``) prints the
fields as ``key=value``. So each library line is a ``LogText``: a ``str`` that carries what an
operator needs (what failed, where, why, the fix) for the first, and remembers its stable
``message`` (the ``MSG_*`` prefix operators grep for) for the second, which prints that prefix
plus the fields rather than every value twice.

``clip`` bounds what a client controls (claim values, header values) before it reaches a line:
non-printable characters are escaped and the result cut, so that a line stays about as large as
the request that caused it.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Characters of one client-controlled value in a log line (escaped, then cut). A namespace,
#: subject or issuer fits; a claim padded to amplify the log does not.
MAX_VALUE_CHARS = 200


class LogText(str):
    """A log message: the full text, plus ``message``, its stable prefix."""

    message: str

    def __new__(cls, text: str, message: str) -> LogText:
        if not text.startswith(message):
            raise ValueError(f"log text {text[:60]!r} does not start with {message!r}")
        self = super().__new__(cls, text)
        self.message = message
        return self


def render(message: str, fields: Mapping[str, object], *, fix: str | None = None) -> LogText:
    """``message: key=value, key=value; fix: ...`` (no fields: ``message`` alone)."""
    text = message
    if fields:
        text += ": " + ", ".join(f"{key}={value}" for key, value in fields.items())
    if fix:
        text += f"; fix: {fix}"
    return LogText(text, message)


def clip(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` as text for a log line: non-printable characters escaped (``\\x01``), then cut
    to ``limit`` characters with a note of the value's length."""
    text = value if isinstance(value, str) else str(value)
    length = len(text)
    if not text.isprintable():
        # repr without its quotes: escapes controls and lone surrogates, keeps other text.
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[:limit])
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[cut from {length} chars]"
