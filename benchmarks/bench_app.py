"""The example service plus two comparison routes, used only by the benchmarks.

* ``/noauth``: the body of ``/whoami`` without authentication (a fixed identity), so "no auth"
  and "known token" differ only by the verification.
* ``/naive``: a peer that calls PyJWT on every request (``get_unverified_header`` to pick the key,
  then ``jwt.decode``), the way most hand-written middlewares do.

    python -m benchmarks.bench_app --port P [--loop uvloop]   (settings from AUTH_*/OTEL_*)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import jwt

from compass_auth import Authenticator
from service.app import JsonHandler, main

IDENTITY = {
    "subject": "system:serviceaccount:default:collector",
    "namespace": "default",
    "service_account": "collector",
    "verified_by": "none",
}


class NoAuthHandler(JsonHandler):
    def compute_etag(self) -> str | None:
        return None  # as /whoami

    async def get(self) -> None:
        self.write(IDENTITY)


class NaivePyJWTHandler(JsonHandler):
    def initialize(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def compute_etag(self) -> str | None:
        return None

    async def get(self) -> None:
        keys = self.authenticator.local.keys.snapshot()
        _scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        try:
            header = jwt.get_unverified_header(token)
            key = keys.get(header["kid"]) if keys else None
            if key is None:
                raise jwt.InvalidKeyError("unknown kid")
            claims = jwt.decode(token, key.jwk, algorithms=["RS256", "ES256"],
                                audience=self.authenticator.settings.audience,
                                issuer=keys.issuer if keys else None)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            self.set_status(401)
            self.write({"error": "invalid_token"})
            return
        self.write({"subject": claims["sub"], "namespace": claims["kubernetes.io"]["namespace"],
                    "service_account": claims["kubernetes.io"]["serviceaccount"]["name"],
                    "verified_by": "naive"})


def extra_rules(authenticator: Authenticator) -> Sequence[tuple[Any, ...]]:
    return [
        (r"/noauth", NoAuthHandler),
        (r"/naive", NaivePyJWTHandler, {"authenticator": authenticator}),
    ]


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    return main(args.host, args.port, 2.0, args.loop, extra_rules)


if __name__ == "__main__":
    sys.exit(run())
