"""Hostile Authorization headers and oversized header lines, sent as raw bytes."""

from __future__ import annotations

import json

import pytest

from ..conftest import RunningService
from ..test_service_http import raw_request

#: What a refused oversized request may look like: Tornado closes the connection (0) or answers
#: 400/431. Never 200, never 500.
REFUSED = (0, 400, 431)


def request(*headers: str, target: str = "/whoami") -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: test", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(running: RunningService, head: bytes) -> tuple[int, dict[str, str]]:
    port = running.service.port
    assert port is not None
    status, payload = await raw_request(port, head)
    try:
        result = json.loads(payload) if payload else {}
    except ValueError:
        result = {"raw": payload[:100].decode("latin-1")}
    return status, result


@pytest.mark.parametrize(
    ("name", "header", "status", "reason"),
    [
        ("two tokens, space", "Authorization: Bearer {t} {t}", 400, "malformed_header"),
        ("two tokens, comma", "Authorization: Bearer {t},{t}", 400, "malformed_header"),
        ("two tokens, semicolon", "Authorization: Bearer {t};{t}", 400, "malformed_header"),
        ("two tokens, tab", "Authorization: Bearer {t}\t{t}", 400, "malformed_header"),
        ("two schemes", "Authorization: Bearer {t}, Basic dXNlcjpwYXNz", 400,
         "malformed_header"),
        ("token then junk", "Authorization: Bearer {t} x", 400, "malformed_header"),
        ("scheme without token", "Authorization: Bearer", 400, "malformed_header"),
        ("Basic", "Authorization: Basic dXNlcjpwYXNz", 401, "missing"),
        ("Bearer glued to the token", "Authorization: Bearer{t}", 401, "missing"),
        ("token without scheme", "Authorization: {t}", 401, "missing"),
        # Refused by Tornado's header parser before any handler runs (empty 400).
        ("NUL in the token", "Authorization: Bearer {t}\x00", 400, ""),
        ("token of 9000 bytes (headers below 16 KiB)", "Authorization: Bearer " + "A" * 9000,
         401, "too_large"),
        ("lower-case scheme (RFC 7235: case-insensitive)", "Authorization: bearer {t}", 200, ""),
        ("upper-case scheme", "Authorization: BEARER {t}", 200, ""),
        ("several spaces (RFC 6750: 1*SP)", "Authorization: Bearer   {t}", 200, ""),
    ],
)
async def test_authorization_header_shapes(
    running: RunningService, name: str, header: str, status: int, reason: str
) -> None:
    token = running.token()
    got, result = await send(running, request(header.replace("{t}", token)))
    assert got == status, result
    if reason:
        assert result["reason"] == reason


async def test_two_authorization_headers_are_400(running: RunningService) -> None:
    token = running.token()
    status, result = await send(running, request(f"Authorization: Bearer {token}",
                                                 f"Authorization: Bearer {token}"))
    assert (status, result["reason"]) == (400, "malformed_header")


@pytest.mark.parametrize(
    ("name", "headers", "target"),
    [
        ("Authorization line of 64 KiB", ["Authorization: Bearer " + "A" * 65536], "/whoami"),
        ("another header line of 64 KiB next to a valid token",
         ["X-Padding: " + "p" * 65536, "Authorization: Bearer {t}"], "/whoami"),
        ("200 header lines of 100 bytes next to a valid token",
         [f"X-Pad-{i}: " + "p" * 100 for i in range(200)] + ["Authorization: Bearer {t}"],
         "/whoami"),
        ("request line of 64 KiB", ["Authorization: Bearer {t}"], "/whoami?" + "q" * 65536),
    ],
)
async def test_oversized_headers_are_refused_and_the_service_goes_on(
    running: RunningService, name: str, headers: list[str], target: str
) -> None:
    token = running.token()
    status, _ = await send(running, request(*(h.replace("{t}", token) for h in headers),
                                            target=target))
    assert status in REFUSED
    # The next caller is served as usual.
    response = await running.get(token=token)
    assert response.code == 200
