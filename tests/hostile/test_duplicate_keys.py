"""Duplicate JSON keys in a token's header or payload, however they are spelled (issue 18,
finding 11): refused as ``malformed`` on every path, over real HTTP.

Each token is signed with the cluster's own key and its *last* duplicate is the valid value, so
a parser that keeps the last one (Python's) would accept it: only the duplicate check can refuse
it. The check used to count ``":`` in the text, so a space (or any JSON whitespace) before the
colon hid a duplicate. Controls show that the same spellings without a duplicate still pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from compass_auth.testing import DevCluster, Fault

from ..conftest import AUDIENCE, RunningService, StartService
from ..helpers import body
from .forge import Forge

_PLACEHOLDER = "__duplicate__"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _duplicated(document: dict[str, Any], path: tuple[str, ...], first: Any, before_colon: str,
                spelling: str | None = None) -> bytes:
    """``document`` as JSON where the key at ``path`` appears twice: first with ``first``, then,
    written as ``spelling`` followed by ``before_colon``, with its real value."""
    copy = json.loads(json.dumps(document))
    parent = copy
    for name in path[:-1]:
        parent = parent[name]
    name = path[-1]
    real = parent.get(name)
    parent[name] = _PLACEHOLDER
    key = spelling or _compact(name)
    text = _compact(copy).replace(
        f"{_compact(name)}:{_compact(_PLACEHOLDER)}",
        f"{_compact(name)}:{_compact(first)},{key}{before_colon}:{_compact(real)}", 1)
    assert _PLACEHOLDER not in text
    return text.encode()


def _payload(path: tuple[str, ...], first: Any, before_colon: str,
             spelling: str | None = None) -> Callable[[Forge], str]:
    return lambda f: f.with_raw_payload(
        _duplicated(f.claims(), path, first, before_colon, spelling))


def _header(name: str, first: Any, before_colon: str,
            spelling: str | None = None) -> Callable[[Forge], str]:
    return lambda f: f.signed(
        _duplicated({"alg": "RS256", "kid": f.kid}, (name,), first, before_colon, spelling),
        f.claims(), alg="RS256")


def _with_list_of_objects(f: Forge) -> str:
    return f.with_raw_payload(_compact(f.claims())[:-1].encode()
                              + b',"x":[{"a" :1,"a" :2}]}')


NAMESPACE = ("kubernetes.io", "namespace")
POD_NAME = ("kubernetes.io", "pod", "name")

#: (name, token builder) refused as malformed.
DUPLICATES: list[tuple[str, Callable[[Forge], str]]] = [
    ("payload aud, space before the colon", _payload(("aud",), ["vault"], " ")),
    ("payload aud, tab before the colon", _payload(("aud",), ["vault"], "\t")),
    ("payload aud, newline before the colon", _payload(("aud",), ["vault"], "\n")),
    ("payload aud, CR LF before the colon", _payload(("aud",), ["vault"], "\r\n")),
    ("payload aud, unicode-escaped key", _payload(("aud",), ["vault"], "", '"\\u0061ud"')),
    ("payload aud, unicode-escaped key and a space",
     _payload(("aud",), ["vault"], " ", '"\\u0061ud"')),
    ("payload sub, space before the colon",
     _payload(("sub",), "system:serviceaccount:kube-system:admin", " ")),
    ("nested: kubernetes.io namespace, space", _payload(NAMESPACE, "kube-system", " ")),
    ("nested: kubernetes.io namespace, escaped key",
     _payload(NAMESPACE, "kube-system", "", '"n\\u0061mespace"')),
    ("nested deeper: kubernetes.io pod name, tab", _payload(POD_NAME, "other-pod", "\t")),
    ("an object inside a list, spaces", _with_list_of_objects),
    ("header alg (none, then RS256), space", _header("alg", "none", " ")),
    ("header kid, tab", _header("kid", "other", "\t")),
    ("header alg, unicode-escaped key", _header("alg", "none", "", '"\\u0061lg"')),
]

#: The same spellings without a duplicate: accepted (whitespace and escapes are valid JSON).
CONTROLS: list[tuple[str, Callable[[Forge], str]]] = [
    ("whitespace before every colon", lambda f: f.with_raw_payload(
        json.dumps(f.claims(), separators=(",", " \t\n:")).encode())),
    ("payload aud as an escaped key", lambda f: f.with_raw_payload(
        _compact(f.claims(aud=None))[:-1].encode()
        + b',"\\u0061ud":["' + AUDIENCE.encode() + b'"]}')),
    ("header with spaces before the colons", lambda f: f.signed(
        f'{{"alg" :"RS256","kid"\t:"{f.kid}"}}'.encode(), f.claims(), alg="RS256")),
]


@pytest.fixture(params=["jwks", "tokenreview", "review-mode"])
async def target(request: pytest.FixtureRequest, devcluster: DevCluster,
                 start_service: StartService) -> tuple[RunningService, str]:
    """Local verification, TokenReview fallback (discovery down) and ``AUTH_MODE=review``."""
    env = {"AUTH_REDISCOVERY_INTERVAL": "60"}
    if request.param == "tokenreview":
        devcluster.set_fault("discovery", Fault(status=403))  # never retried: fallback at once
    if request.param == "review-mode":
        env["AUTH_MODE"] = "review"
    running: RunningService = await start_service(**env)
    expected_path = "jwks" if request.param == "jwks" else "tokenreview"
    assert running.authenticator.active_path() == expected_path
    return running, expected_path


async def test_duplicate_keys_are_malformed_on_every_path(
        target: tuple[RunningService, str], forge: Forge) -> None:
    running, _ = target
    reviews = running.api_calls("tokenreview")
    answers = {}
    for name, build in DUPLICATES:
        response = await running.get(token=build(forge))
        answers[name] = (response.code, body(response).get("reason"))
    assert answers == {name: (401, "malformed") for name, _ in DUPLICATES}
    # Refused before the API server is asked: a duplicate is never the API server's call.
    assert running.api_calls("tokenreview") == reviews


async def test_the_same_spellings_without_duplicates_are_accepted(
        target: tuple[RunningService, str], forge: Forge) -> None:
    running, path = target
    for name, build in CONTROLS:
        response = await running.get(token=build(forge))
        assert response.code == 200, (name, body(response))
        assert body(response)["verified_by"] == path, name
