"""Fixtures of the reliability suites."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import pytest

from compass_auth.testing import DevCluster

NewKey = Callable[..., str]


@pytest.fixture
def new_key(devcluster: DevCluster) -> Iterator[NewKey]:
    """``new_key("EC"|"RSA")`` publishes a key, unpublished again after the test: the emulator
    lives for the whole session, and a JWKS of more than 100 keys is refused (keyset.MAX_KEYS)."""
    added: list[str] = []

    def add(key_type: Literal["RSA", "EC"] = "EC") -> str:
        kid = devcluster.add_key(key_type)
        added.append(kid)
        return kid

    yield add
    published = {key["kid"] for key in devcluster.jwks()["keys"]}
    for kid in added:
        if kid in published:  # a test may have removed it already
            devcluster.remove_key(kid)
