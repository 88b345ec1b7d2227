"""Which format a request body is in and which one its answer should use.

The API resource endpoints (TokenReview, TokenRequest, SelfSubjectReview) negotiate like
k8s.io/apiserver/pkg/endpoints/handlers/negotiation: the Content-Type picks the decoder (none
means JSON), the Accept header the encoder, in the client's order of preference. kubectl sends
``Accept: application/vnd.kubernetes.protobuf,application/json`` and so gets protobuf, as from
a real API server. The emulator speaks JSON and protobuf only (no YAML, no CBOR).
"""

from __future__ import annotations

import logging
from typing import Any

from compass_auth.testing.wire import bodies, kubeproto

logger = logging.getLogger(__name__)

JSON = "application/json"
PROTOBUF = kubeproto.MEDIA_TYPE
SUPPORTED = (JSON, PROTOBUF)
# Accept clauses that match JSON: the first supported type answers a wildcard.
_JSON_RANGES = frozenset({JSON, "application/*", "*/*"})


def output_media_type(accept: str | None) -> str | None:
    """JSON or protobuf for this Accept header, or None when it names neither (406).

    Clauses go by quality, then specificity (``*/*`` last), then the client's order, as
    goautoneg sorts them. A clause asking for another representation (``as=Table``) does not
    match: the emulator serves objects only as themselves.
    """
    if accept is None or not accept.strip():
        return JSON
    clauses: list[tuple[float, int, int, str]] = []
    for position, clause in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in clause.split(";"))
        quality, alternative = 1.0, False
        for param in params:
            key, _, value = param.partition("=")
            key = key.strip().lower()
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif key == "as":
                alternative = True
        if quality <= 0 or alternative:
            continue
        media = media.lower()
        wildcards = media.count("*")
        clauses.append((-quality, wildcards, position, media))
    for _, _, _, media in sorted(clauses):
        if media == PROTOBUF:
            return PROTOBUF
        if media in _JSON_RANGES:
            return JSON
    return None


def input_media_type(content_type: str | None) -> str | None:
    """JSON or protobuf for this Content-Type (none at all means JSON), or None (415)."""
    if content_type is None or not content_type.strip():
        return JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media if media in SUPPORTED else None


def not_acceptable() -> dict[str, Any]:
    """406 for an Accept header that names no type the emulator writes."""
    return bodies.status(
        406,
        f"only the following media types are accepted: {', '.join(SUPPORTED)}",
        "NotAcceptable",
    )


def unsupported_media_type() -> dict[str, Any]:
    """415 for a body in a format the emulator does not read."""
    return bodies.status(
        415,
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(SUPPORTED),
        "UnsupportedMediaType",
    )
