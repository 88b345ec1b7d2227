"""``python -m tests.log_service``: ``python -m service serve`` plus routes that fail with 500,
one per kind of handler, for the tests of what reaches the log (tests/test_log_secrets.py)."""

from __future__ import annotations

import sys
from typing import Any

import tornado.web

from compass_auth import AuthenticatedHandler, Authenticator
from service.app import JsonHandler, main


class JsonBoom(JsonHandler):
    def get(self) -> None:
        raise RuntimeError("the example's handler failed")


class AuthenticatedBoom(AuthenticatedHandler):
    async def get(self) -> None:
        raise RuntimeError("the library's handler failed")


class PlainBoom(tornado.web.RequestHandler):
    """Tornado's own handler, with none of our overrides: only the log filter protects it."""

    def get(self) -> None:
        raise RuntimeError("a plain handler failed")


def routes(authenticator: Authenticator) -> list[tuple[Any, ...]]:
    return [(r"/boom/json", JsonBoom), (r"/boom/authenticated", AuthenticatedBoom),
            (r"/boom/plain", PlainBoom)]


if __name__ == "__main__":
    sys.exit(main("127.0.0.1", 0, 5.0, "asyncio", extra_rules=routes))
