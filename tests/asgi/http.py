"""HTTP helpers the ASGI tests share: a GET with an optional token, and an answer reduced to what
both servers must agree on."""

from __future__ import annotations

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

#: Headers each server adds of its own (its name, the time): everything else must be equal.
SERVER_OWN = {"date", "server"}


async def get(url: str, token: str | None = None) -> HTTPResponse:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False,
                                         request_timeout=20)


def answer(response: HTTPResponse) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case, without ``SERVER_OWN``) and body."""
    headers = {name.lower(): value for name, value in response.headers.get_all()
               if name.lower() not in SERVER_OWN}
    return response.code, headers, response.body
