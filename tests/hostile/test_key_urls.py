"""Keys and key URLs named in a token header (``jku``, ``x5u``, ``jwk``, ``x5c``) are never used:
keys come only from the API server's JWKS. A listener on another loopback port stands in for
the attacker's key server and must never be contacted, on either verification path."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from compass_auth.testing import DevCluster, Fault
from compass_auth.testing.credentials.ca import CertificateAuthority

from ..conftest import RunningService, StartService
from .forge import Forge


class Listener:
    """Counts every connection made to it (and answers a JWKS to anyone who asks)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, jwks: dict[str, Any]) -> None:
        document = json.dumps(jwks).encode()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(document)}\r\n\r\n".encode() + document)
            await writer.drain()
            writer.close()

        self._server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def listener(forge: Forge) -> AsyncIterator[tuple[Listener, Forge]]:
    server = Listener()
    await server.start({"keys": [forge.attacker_jwk()]})
    yield server, forge
    server.stop()


@functools.cache
def attacker_certificate_chain() -> tuple[str, ...]:
    """x5c: a certificate from a CA the cluster does not know, base64 DER."""
    issued = CertificateAuthority().issue_server(("attacker.invalid",))
    der = x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(serialization.Encoding.DER)
    return (base64.b64encode(der).decode(),)


def hostile_headers(forge: Forge, url: str) -> dict[str, dict[str, Any]]:
    attacker = forge.attacker_jwk()
    chain = list(attacker_certificate_chain())
    return {
        "jku, attacker kid": {"alg": "RS256", "kid": attacker["kid"], "jku": url},
        "jku, cluster kid": {"alg": "RS256", "kid": forge.kid, "jku": url},
        "x5u, cluster kid": {"alg": "RS256", "kid": forge.kid, "x5u": url},
        "jwk embedded, attacker kid": {"alg": "RS256", "kid": attacker["kid"], "jwk": attacker},
        "jwk embedded, cluster kid": {"alg": "RS256", "kid": forge.kid, "jwk": attacker},
        "x5c, cluster kid": {"alg": "RS256", "kid": forge.kid,
                             "x5c": chain},
        "all four, no kid": {"alg": "RS256", "jku": url, "x5u": url, "jwk": attacker,
                             "x5c": chain},
    }


@pytest.mark.parametrize("path", ["jwks", "tokenreview"])
async def test_key_urls_and_embedded_keys_are_never_used(
    devcluster: DevCluster, start_service: StartService,
    listener: tuple[Listener, Forge], path: str,
) -> None:
    server, forge = listener
    if path == "tokenreview":
        devcluster.set_fault("discovery", Fault(status=403))
    running: RunningService = await start_service(AUTH_REDISCOVERY_INTERVAL="60")
    assert running.authenticator.active_path() == path
    answers = {}
    for scheme in ("https", "http"):
        url = f"{scheme}://127.0.0.1:{server.port}/keys"
        for name, header in hostile_headers(forge, url).items():
            response = await running.get(token=forge.attacker_signed(header))
            answers[f"{scheme}: {name}"] = (response.code, json.loads(response.body)["reason"])
    await asyncio.sleep(0.2)  # anything fetched in the background would have connected by now
    assert server.connections == 0
    assert {code for code, _ in answers.values()} == {401}, answers
    if path == "jwks":
        assert {reason for _, reason in answers.values()} == {
            "unknown_key", "bad_signature", "malformed"}, answers
    # The same headers on a token the cluster signed change nothing: it is still accepted.
    token = forge.signed({"alg": "RS256", "kid": forge.kid, "jku": f"https://127.0.0.1:"
                          f"{server.port}/keys"}, forge.claims(), alg="RS256")
    response = await running.get(token=token)
    assert response.code == 200
    assert server.connections == 0
    # The listener does count: one connection of our own shows up.
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()
    await asyncio.sleep(0.05)
    assert server.connections == 1
