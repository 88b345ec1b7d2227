"""The URL rules of kube-apiserver's ``validateURL`` (issuer ``url`` and ``discoveryURL``).

Upstream parses with Go's ``net/url.Parse`` and then requires https, no user info, no query and
no fragment (``staging/src/k8s.io/apiserver/pkg/apis/apiserver/validation/validation.go``).
Python's ``urlsplit`` is more lenient than Go's parser, so the two parse failures an issuer URL
can meet in practice (a control character, a port that is not a number) are checked here, with
Go's wording.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import FieldError, go_quote

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _parse_error(url: str) -> str | None:
    """Go's ``url.Parse`` error text for ``url``, or None when it parses."""
    if _CONTROL.search(url):
        return f"parse {go_quote(url)}: net/url: invalid control character in URL"
    scheme, separator, rest = url.partition("://")
    if not separator or "/" in scheme:
        return None
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        port = host.partition("]")[2]
    else:
        colon = host.find(":")
        port = host[colon:] if colon >= 0 else ""
    if port and (not port.startswith(":") or not port[1:].isdigit()) and port != ":":
        return f"parse {go_quote(url)}: invalid port {go_quote(port)} after host"
    return None


def url_errors(url: str, path: str, disallowed: frozenset[str] = frozenset()) -> list[FieldError]:
    errors: list[FieldError] = []
    if url in disallowed:
        listed = " ".join(sorted(disallowed))
        errors.append(FieldError(path, "Invalid",
                                 f"URL must not overlap with disallowed issuers: [{listed}]", url))
    parse_error = _parse_error(url)
    if parse_error is not None:
        errors.append(FieldError(path, "Invalid", parse_error, url))
        return errors
    parts = urlsplit(url)
    if parts.scheme != "https":
        errors.append(FieldError(path, "Invalid", "URL scheme must be https", url))
    if "@" in parts.netloc:
        errors.append(FieldError(path, "Invalid", "URL must not contain a username or password",
                                 url))
    if parts.query:
        errors.append(FieldError(path, "Invalid", "URL must not contain a query", url))
    if parts.fragment:
        errors.append(FieldError(path, "Invalid", "URL must not contain a fragment", url))
    return errors
