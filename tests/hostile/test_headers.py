"""Hostile Authorization headers and oversized header lines, sent as raw bytes."""

from __future__ import annotations

import asyncio
import json

import pytest

from service.limits import MAX_HEADER_BYTES

from ..conftest import RunningService, read_until_closed
from ..helpers import Answer, assert_431, raw_request


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


async def exchange(running: RunningService, data: bytes) -> bytes:
    """Send ``data`` on a new connection; everything the server sends until it closes."""
    port = running.service.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_until_closed(reader, 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("name", "headers", "target"),
    [
        ("Authorization header of 16 KiB (issue 11 §3)",
         ["Authorization: Bearer " + "A" * 16384], "/whoami"),
        ("Authorization line of 64 KiB", ["Authorization: Bearer " + "A" * 65536], "/whoami"),
        ("a Cookie of 20 KiB next to a valid token",
         ["Cookie: c=" + "c" * 20480, "Authorization: Bearer {t}"], "/whoami"),
        ("another header line of 64 KiB next to a valid token",
         ["X-Padding: " + "p" * 65536, "Authorization: Bearer {t}"], "/whoami"),
        ("200 header lines of 100 bytes next to a valid token",
         [f"X-Pad-{i}: " + "p" * 100 for i in range(200)] + ["Authorization: Bearer {t}"],
         "/whoami"),
        ("2,000 header lines of 10 bytes", [f"X-{i:05d}: v" for i in range(2000)], "/healthz"),
        ("request line of 64 KiB", ["Authorization: Bearer {t}"], "/whoami?" + "q" * 65536),
        ("a head over the cap on a path without authentication",
         ["X-Padding: " + "p" * 20000], "/healthz"),
    ],
)
async def test_heads_over_the_cap_get_431_and_the_service_goes_on(
    running: RunningService, name: str, headers: list[str], target: str
) -> None:
    token = running.token()
    head = request(*(h.replace("{t}", token) for h in headers), target=target)
    assert len(head) > MAX_HEADER_BYTES
    assert_431(Answer.parse(await exchange(running, head)))
    # The next caller is served as usual.
    response = await running.get(token=token)
    assert response.code == 200


def head_of(size: int, token_bytes: int | None = None) -> bytes:
    """A request head of exactly ``size`` bytes (final blank line included), padded with an
    ``X-Padding`` header, or with a token of ``token_bytes`` bytes and then the padding."""
    lines = ["GET /whoami HTTP/1.1", "Host: test", "Connection: close"]
    if token_bytes is not None:
        lines.append("Authorization: Bearer " + "A" * token_bytes)
    fixed = len(("\r\n".join([*lines, "X-Padding: "]) + "\r\n\r\n").encode())
    head = ("\r\n".join([*lines, "X-Padding: " + "p" * (size - fixed)]) + "\r\n\r\n").encode()
    assert len(head) == size
    return head


async def test_the_cap_is_exact_and_a_token_too_large_under_it_is_401(
    running: RunningService,
) -> None:
    """A head of exactly ``MAX_HEADER_BYTES`` is read; its token, over AUTH_MAX_TOKEN_BYTES
    (8 KiB by default), is refused by the authenticator. One more byte and the head is 431."""
    token_bytes = MAX_HEADER_BYTES - 200
    at_cap = Answer.parse(await exchange(running, head_of(MAX_HEADER_BYTES, token_bytes)))
    assert at_cap.status == 401
    assert json.loads(at_cap.body)["reason"] == "too_large"
    assert 'error="invalid_token"' in at_cap.headers["www-authenticate"]
    assert_431(Answer.parse(await exchange(running, head_of(MAX_HEADER_BYTES + 1, token_bytes))))
    # Without a token, the same byte decides: the cap is on the whole head, not on one header.
    assert Answer.parse(await exchange(running, head_of(MAX_HEADER_BYTES))).status == 401
    assert_431(Answer.parse(await exchange(running, head_of(MAX_HEADER_BYTES + 1))))


async def test_a_head_over_the_cap_on_a_kept_alive_connection_ends_it_with_431(
    running: RunningService,
) -> None:
    token = running.token()
    first = (f"GET /whoami HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}"
             "\r\n\r\n").encode()
    second = request("X-Padding: " + "p" * 20000).replace(b"Connection: close\r\n", b"")
    data = await exchange(running, first + second)
    first_head, _, rest = data.partition(b"\r\n\r\n")
    assert first_head.startswith(b"HTTP/1.1 200 "), data[:200]
    length = int(first_head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert_431(Answer.parse(rest[length:]))
