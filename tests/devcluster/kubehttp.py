"""A tiny HTTPS client for the tests: stdlib only, no redirects, real TLS checks."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compass_auth.testing import DevCluster, Issued


@dataclass
class Response:
    """Status, headers (case-insensitive) and raw body of one answer."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def tls_context(cluster: DevCluster, client: Issued | None = None) -> ssl.SSLContext:
    """Trust only the cluster's CA, check host names; optionally present a client cert."""
    context = ssl.create_default_context(cafile=str(cluster.ca_path))
    if client is not None:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "c.crt"), Path(tmp, "c.key")
            cert.write_bytes(client.cert_pem)
            key.write_bytes(client.key_pem)
            context.load_cert_chain(cert, key)
    return context


def call(
    cluster: DevCluster,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    method: str | None = None,
    context: ssl.SSLContext | None = None,
    host: str | None = None,
    timeout: float = 5.0,
    content_type: str = "application/json",
    accept: str | None = "application/json",
) -> Response:
    """One request on a fresh connection; ``body`` dicts are sent as JSON, bytes as they are
    (labelled ``content_type``); ``accept`` None sends no Accept header."""
    connection = http.client.HTTPSConnection(
        host or "127.0.0.1",
        cluster.port,
        context=context or tls_context(cluster),
        timeout=timeout,
    )
    headers = {"Accept": accept} if accept is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    try:
        connection.request(
            method or ("POST" if data is not None else "GET"), path, data, headers
        )
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


def review(
    cluster: DevCluster,
    token: str,
    audiences: list[str] | None = None,
    caller: str | None = None,
) -> Response:
    """POST a TokenReview as the service account (or ``caller``)."""
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    }
    return call(
        cluster,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        token=caller or cluster.service_token(),
        body=body,
    )


def token_request_path(namespace: str, name: str) -> str:
    """Where a TokenRequest for the service account ``namespace/name`` is POSTed."""
    return f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"


SARS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def sar(cluster: DevCluster, spec: dict[str, Any], caller: str | None = None) -> Response:
    """POST a SubjectAccessReview as the service's account (a delegator), or ``caller``."""
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    return call(cluster, SARS, token=caller or cluster.service_token(), body=body)


def can(who: str, verb: str, resource: str, group: str = "", namespace: str = "",
        name: str = "", subresource: str = "", groups: list[str] | None = None
        ) -> dict[str, Any]:
    """A SubjectAccessReview spec: may ``who`` ``verb`` the resource (empty fields omitted)?"""
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource,
                  "subresource": subresource, "name": name}
    spec: dict[str, Any] = {"resourceAttributes": {k: v for k, v in attributes.items() if v},
                            "user": who}
    if groups:
        spec["groups"] = groups
    return spec


def can_get(who: str, path: str, groups: list[str] | None = None) -> dict[str, Any]:
    """A SubjectAccessReview spec: may ``who`` GET the non-resource URL ``path``?"""
    spec: dict[str, Any] = {"nonResourceAttributes": {"path": path, "verb": "get"}, "user": who}
    if groups:
        spec["groups"] = groups
    return spec


def segments(token: str) -> tuple[bytes, bytes, bytes]:
    """The three decoded parts of a compact JWS."""
    parts = token.split(".")
    assert len(parts) == 3, token
    return tuple(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in parts)  # type: ignore[return-value]


def payload_of(token: str) -> dict[str, Any]:
    """The decoded claims of a compact JWS (not verified)."""
    claims: dict[str, Any] = json.loads(segments(token)[1])
    return claims


def read_standalone_banner(stdout: Iterable[str]) -> dict[str, str]:
    """What ``python -m compass_auth.testing`` prints before it waits: ``key: value`` lines
    (``url``, ``ca``, ``kubeconfig``, ``admin kubeconfig``, ...) up to "files are removed"."""
    printed: dict[str, str] = {}
    for line in stdout:
        if line.startswith("files are removed"):
            break
        key, _, value = line.partition(":")
        printed[key.strip()] = value.strip()
    return printed


def get_url(url: str, ca_pem: bytes | str, *, token: str | None = None,
            timeout: float = 5.0) -> Response:
    """GET an absolute https URL trusting only ``ca_pem`` (host names checked), as another
    cluster's JWT authenticator fetches discovery: no credentials unless ``token``."""
    parts = urlsplit(url)
    assert parts.scheme == "https", url
    assert parts.hostname is not None, url
    cadata = ca_pem.decode("ascii") if isinstance(ca_pem, bytes) else ca_pem
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port, context=ssl.create_default_context(cadata=cadata),
        timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        connection.request("GET", parts.path or "/", headers=headers)
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()
