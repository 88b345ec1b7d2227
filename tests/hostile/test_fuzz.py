"""Property-based fuzzing (hypothesis) of the Authorization header and of token bytes, over real
HTTP: the answer is always 400 or 401, never 5xx and never 200 (unless the bytes are exactly a
token the cluster minted).

The number of examples per property is ``COMPASS_FUZZ_EXAMPLES`` (default 300: the CI size,
a few seconds each); run with e.g. ``COMPASS_FUZZ_EXAMPLES=20000`` for a long session. Each test
prints how many inputs it sent (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compass_auth.testing import DevCluster, Fault

from ..conftest import AUDIENCE, RunningService, StartService
from ..helpers import raw_request
from .forge import b64

EXAMPLES = int(os.environ.get("COMPASS_FUZZ_EXAMPLES", "300"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # real HTTP on a shared CI machine: timing is not the property
    database=None,  # no example database in the repository or the CI workspace
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Fuzzer:
    """Sends one raw request per example from hypothesis's thread to the service's loop."""

    def __init__(self, running: RunningService, loop: asyncio.AbstractEventLoop) -> None:
        self.running = running
        self.loop = loop
        self.statuses: Counter[int] = Counter()
        self.sent = 0

    def run(self, coroutine: Coroutine[Any, Any, tuple[int, bytes]]) -> tuple[int, bytes]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def authorization(self, value: bytes) -> int:
        port = self.running.service.port
        assert port is not None
        head = (b"GET /whoami HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
                b"Authorization: " + value + b"\r\n\r\n")
        status, _ = self.run(raw_request(port, head))
        self.sent += 1
        self.statuses[status] += 1
        return status


def check(status: int, token_was_minted: bool = False) -> None:
    allowed = {200} if token_was_minted else {400, 401}
    # 0: Tornado closed the connection on a header it cannot parse (e.g. obs-fold junk).
    assert status in allowed | {0}, status


async def run_property(running: RunningService, prop: Callable[[Fuzzer], None]) -> Fuzzer:
    fuzzer = Fuzzer(running, asyncio.get_running_loop())
    await asyncio.to_thread(prop, fuzzer)
    print(f"\n{prop.__name__}: {fuzzer.sent} inputs, statuses {dict(fuzzer.statuses)}")
    return fuzzer


# --- the Authorization header --------------------------------------------------------------

#: Header value bytes: anything but CR and LF (those would end the header, another test's job).
header_bytes = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
bearerish = st.builds(
    lambda scheme, spaces, body: scheme + spaces + body,
    st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"Bearer:", b"Basic", b"", b"Bear"]),
    st.sampled_from([b"", b" ", b"  ", b"\t", b" \t "]),
    st.text(alphabet=B64URL + ".=+/~ ,;\"'\\", max_size=400).map(str.encode),
)


def fuzz_authorization_header(fuzzer: Fuzzer) -> None:
    @FUZZ_SETTINGS
    @given(value=st.one_of(header_bytes, bearerish))
    def prop(value: bytes) -> None:
        check(fuzzer.authorization(value))

    prop()


async def test_fuzz_authorization_header(running: RunningService) -> None:
    fuzzer = await run_property(running, fuzz_authorization_header)
    assert fuzzer.sent >= EXAMPLES
    assert 200 not in fuzzer.statuses


# --- token bytes ---------------------------------------------------------------------------


def mutations(valid: str) -> st.SearchStrategy[str]:
    """Edits of a valid token: replace, insert, delete, truncate, swap segments."""
    position = st.integers(min_value=0, max_value=len(valid) - 1)
    char = st.sampled_from(B64URL + ".")

    def replace(i: int, c: str) -> str:
        return valid[:i] + c + valid[i + 1:]

    def insert(i: int, c: str) -> str:
        return valid[:i] + c + valid[i:]

    def delete(i: int, n: int) -> str:
        return valid[:i] + valid[i + n:]

    head, payload, signature = valid.split(".")
    return st.one_of(
        st.builds(replace, position, char),
        st.builds(insert, position, char),
        st.builds(delete, position, st.integers(min_value=1, max_value=40)),
        position.map(lambda i: valid[:i]),
        st.permutations([head, payload, signature]).map(".".join),
        st.lists(st.sampled_from([head, payload, signature, ""]), min_size=1,
                 max_size=5).map(".".join),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


def structured(valid: str, kid: str, issuer: str) -> st.SearchStrategy[str]:
    """Well-formed JWS with hostile header and claims, and a signature taken from a real token:
    gets past the shape checks to the claim checks and the signature."""
    _, _, signature = valid.split(".")
    header = st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "ES256", "none", "HS256", "PS256"]),
         "kid": st.sampled_from([kid, "x"]) | st.text(max_size=10)},
        optional={"crit": json_values, "jku": st.text(max_size=30), "typ": json_values},
    )
    claims = st.fixed_dictionaries(
        {"aud": st.sampled_from([[AUDIENCE], AUDIENCE]) | json_values,
         "iss": st.just(issuer) | json_values,
         "sub": st.just("system:serviceaccount:default:collector") | json_values,
         "exp": st.integers(min_value=-(2**40), max_value=2**40) | json_values,
         "iat": st.integers(min_value=-(2**40), max_value=2**40) | json_values},
        optional={"nbf": json_values, "kubernetes.io": json_values, "jti": json_values},
    )
    return st.builds(
        lambda h, c: f"{b64(json.dumps(h).encode())}.{b64(json.dumps(c).encode())}.{signature}",
        header, claims)


def fuzz_tokens(running: RunningService, cluster: DevCluster) -> Callable[[Fuzzer], None]:
    valid = running.token()
    minted = {valid}
    tokens = st.one_of(
        mutations(valid),
        structured(valid, cluster.signing_key_id, cluster.issuer),
        st.text(alphabet=B64URL + ".", max_size=600),
    )

    def fuzz_token_bytes(fuzzer: Fuzzer) -> None:
        @FUZZ_SETTINGS
        @given(token=tokens)
        def prop(token: str) -> None:
            status = fuzzer.authorization(b"Bearer " + token.encode())
            check(status, token_was_minted=token in minted)

        prop()

    return fuzz_token_bytes


@pytest.mark.parametrize("path", ["jwks", "tokenreview"])
async def test_fuzz_token_bytes(
    devcluster: DevCluster, start_service: StartService, path: str
) -> None:
    if path == "tokenreview":
        devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_REDISCOVERY_INTERVAL="60")
    assert running.authenticator.active_path() == path
    fuzzer = await run_property(running, fuzz_tokens(running, devcluster))
    assert fuzzer.sent >= EXAMPLES
    assert not {status for status in fuzzer.statuses if status >= 500}
