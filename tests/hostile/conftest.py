"""Fixtures of the hostile-input suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from compass_auth.testing import DevCluster

from .forge import Forge


@pytest.fixture(scope="session")
def forge_keys(devcluster_session: DevCluster) -> Iterator[tuple[str, str]]:
    """An RSA and an EC key published for the whole session: whatever other tests rotate to,
    the forge knows which key type it signs with (RSA key generation is too slow per test)."""
    rsa_kid, ec_kid = devcluster_session.add_key("RSA"), devcluster_session.add_key("EC")
    yield rsa_kid, ec_kid
    published = {key["kid"] for key in devcluster_session.jwks()["keys"]}
    for kid in (rsa_kid, ec_kid):
        if kid in published:
            devcluster_session.remove_key(kid)


@pytest.fixture
def forge(devcluster: DevCluster, forge_keys: tuple[str, str]) -> Forge:
    rsa_kid, ec_kid = forge_keys
    return Forge(devcluster, rsa_kid=rsa_kid, ec_kid=ec_kid)
