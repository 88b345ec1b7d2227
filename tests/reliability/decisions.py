"""A fixed mix of valid and invalid tokens, and the answers each may get while things break.

Whatever fails (API server down, slow, lying, flapping), a valid token may only get 200 or 503,
and an invalid one only 401 or 503: never 200 (wrongly accepted), never 500 (a crash).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from compass_auth.testing import DevCluster

from ..conftest import AUDIENCE, COLLECTOR, RunningService

VALID_ANSWERS = frozenset({200, 503})
INVALID_ANSWERS = frozenset({401, 503})


@contextlib.contextmanager
def extra_key(cluster: DevCluster, key_type: Literal["RSA", "EC"] = "EC") -> Iterator[str]:
    """A newly published key, unpublished again afterwards: the emulator lives for the whole
    session, and a JWKS of more than 100 keys is refused (keyset.MAX_KEYS)."""
    kid = cluster.add_key(key_type)
    try:
        yield kid
    finally:
        cluster.remove_key(kid)


class KeysPublishedAhead:
    """New keys, each published at least ``lead`` seconds before its first use.

    kube-apiserver publishes a key long before it signs with it
    (docs/kubernetes-api.md#key-rotation-and-caching); a test that signs with a key the instant it
    is published races the service's last look at the key set: within the cool-down of a fetch, such
    a token rightly gets 401 ``unknown_key`` until the fetch at the end of the cool-down
    (docs/reliability.md, "Unknown kids"). With ``lead`` longer than the cool-down, a valid token
    with a new kid may only get 200 or 503.
    """

    #: Keys published but not yet used; the emulator refuses a JWKS of more than 100 keys.
    MAX_WAITING = 32

    def __init__(self, cluster: DevCluster, lead: float) -> None:
        self._cluster = cluster
        self._lead = lead
        self._waiting: collections.deque[tuple[float, str]] = collections.deque()

    @contextlib.contextmanager
    def next_key(self) -> Iterator[str | None]:
        """Publish one more key for later, and yield the oldest key that has waited ``lead``
        seconds (``None`` if none has yet); that key is unpublished afterwards."""
        if len(self._waiting) < self.MAX_WAITING:
            self._waiting.append((time.monotonic(), self._cluster.add_key("EC")))
        published_at, kid = self._waiting[0]
        if time.monotonic() - published_at < self._lead:
            yield None
            return
        self._waiting.popleft()
        try:
            yield kid
        finally:
            self._cluster.remove_key(kid)

    def close(self) -> None:
        while self._waiting:
            self._cluster.remove_key(self._waiting.popleft()[1])


def forge_subject(token: str, subject: str = "system:serviceaccount:kube-system:admin") -> str:
    """The token with another ``sub`` and the original signature: a bad signature."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = subject
    claims["kubernetes.io"]["serviceaccount"]["name"] = subject.rsplit(":", 1)[-1]
    claims["kubernetes.io"]["namespace"] = subject.split(":")[2]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def invalid_tokens(cluster: DevCluster) -> dict[str, str]:
    """One of each kind of token that must never be accepted, whatever the path."""
    now = int(time.time())
    valid = cluster.mint(audiences=(AUDIENCE,))
    return {
        "expired": cluster.mint(audiences=(AUDIENCE,), issued_at=now - 7200, lifetime=3600),
        "wrong audience": cluster.mint(audiences=("vault",)),
        "alg none": cluster.sign_raw(
            {"alg": "none", "kid": cluster.signing_key_id},
            {"aud": [AUDIENCE], "exp": now + 600, "iat": now, "iss": cluster.issuer,
             "sub": COLLECTOR},
            alg="none",
        ),
        "bad signature": forge_subject(valid),
        "unknown kid, bad signature": forge_subject(
            cluster.mint(audiences=(AUDIENCE,), header_override={"kid": "not-published"})
        ),
        "garbage": "garbage",
    }


@dataclass
class Decisions:
    """Every answer seen, by token kind; ``wrong`` lists the ones that must never happen."""

    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: list[tuple[str, int, str]] = field(default_factory=list)

    def record(self, kind: str, valid: bool, status: int, body: bytes) -> None:
        self.seen[(kind, status)] += 1
        allowed = VALID_ANSWERS if valid else INVALID_ANSWERS
        if status not in allowed:
            self.wrong.append((kind, status, body[:200].decode(errors="replace")))

    def count(self, kind: str, status: int) -> int:
        return self.seen[(kind, status)]

    async def probe(self, running: RunningService, valid_tokens: dict[str, str]) -> None:
        """Send every valid token in ``valid_tokens`` and every invalid kind once."""
        for kind, token in valid_tokens.items():
            response = await running.get(token=token)
            self.record(kind, True, response.code, response.body or b"")
        for kind, token in invalid_tokens(running.cluster).items():
            response = await running.get(token=token)
            self.record(kind, False, response.code, response.body or b"")

    def assert_none_wrong(self) -> None:
        assert self.wrong == [], f"wrong decisions: {self.wrong}; all answers: {dict(self.seen)}"
