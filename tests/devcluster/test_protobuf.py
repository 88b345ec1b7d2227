"""Kubernetes' protobuf encoding at the emulator's API endpoints (kubectl sends it).

The request bodies below are what kubectl v1.33.1 sent (its ``-v=8`` dump), so these tests hold
the emulator to a real client's bytes. Answers are read back with the protobuf library's
generic wire reader (no message descriptors), not with the emulator's own decoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import empty_pb2
from google.protobuf.unknown_fields import UnknownFieldSet
from hypothesis import given, settings
from hypothesis import strategies as st

from compass_auth.testing import DevCluster
from compass_auth.testing.server.negotiation import output_media_type
from compass_auth.testing.wire import kubeproto

from .kubehttp import Response, call, payload_of, token_request_path

PROTOBUF = "application/vnd.kubernetes.protobuf"
KUBECTL_ACCEPT = "application/vnd.kubernetes.protobuf,application/json"
TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SELFSUBJECTREVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
# kubectl create token collector -n default --audience X --duration 10m
KUBECTL_TOKEN_REQUEST = bytes.fromhex(
    "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631"
    "120c546f6b656e5265717565737412200a100a0012001a0022002a0032003800"
    "420012060a015820d8041a040a0012001a002200"
)
# ... --audience compass-internal --duration 10m --bound-object-kind Pod
#     --bound-object-name api-0 --bound-object-uid 11111111-2222-3333-4444-555555555555
KUBECTL_POD_TOKEN_REQUEST = bytes.fromhex(
    "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631"
    "120c546f6b656e5265717565737412670a100a0012001a0022002a0032003800"
    "4200124d0a10636f6d706173732d696e7465726e616c1a360a03506f64120276"
    "311a056170692d30222431313131313131312d323232322d333333332d343434"
    "342d35353535353535353535353520d8041a040a0012001a002200"
)
# kubectl auth whoami
KUBECTL_SELF_SUBJECT_REVIEW = bytes.fromhex(
    "6b3873000a2d0a1861757468656e7469636174696f6e2e6b38732e696f2f7631"
    "121153656c665375626a65637452657669657712" "1a0a100a0012001a0022002a"
    "0032003800420012060a040a0012001a002200"
)


def _post(
    cluster: DevCluster, path: str, body: bytes, token: str, accept: str = "application/json"
) -> Response:
    return call(cluster, path, token=token, body=body, content_type=PROTOBUF, accept=accept)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(field: int, data: bytes) -> bytes:
    """One length-delimited field (wire type 2), written by hand."""
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _wrapped(api_version: bytes, kind: bytes, raw: bytes) -> bytes:
    type_meta = _length_delimited(1, api_version) + _length_delimited(2, kind)
    return b"k8s\x00" + _length_delimited(1, type_meta) + _length_delimited(2, raw)


def _fields(data: bytes) -> dict[int, list[Any]]:
    """Field number -> values, read without any descriptor (length-delimited ones as bytes)."""
    holder = empty_pb2.Empty()
    holder.ParseFromString(data)
    fields: dict[int, list[Any]] = {}
    for field in UnknownFieldSet(holder):
        fields.setdefault(field.field_number, []).append(field.data)
    return fields


def test_kubectl_token_request_is_read(devcluster: DevCluster) -> None:
    devcluster.service_account_uid("default", "collector")
    answer = _post(
        devcluster, token_request_path("default", "collector"), KUBECTL_TOKEN_REQUEST,
        devcluster.admin_token,
    )
    assert answer.status == 201, answer.body
    body = answer.json()
    assert body["spec"] == {"audiences": ["X"], "expirationSeconds": 600, "boundObjectRef": None}
    claims = payload_of(body["status"]["token"])
    assert claims["aud"] == ["X"]
    assert claims["exp"] - claims["iat"] == 600
    assert devcluster.request_log[-1].headers_subset["Content-Type"] == PROTOBUF


def test_kubectl_bound_object_reference_is_read(devcluster: DevCluster) -> None:
    """The pod exists under another UID: the 409 quotes the UID from the body (field ``uID``)."""
    devcluster.service_account_uid("default", "collector")
    devcluster.pod_uid("default", "api-0")
    answer = _post(
        devcluster, token_request_path("default", "collector"), KUBECTL_POD_TOKEN_REQUEST,
        devcluster.admin_token,
    )
    assert answer.status == 409, answer.body
    assert "(11111111-2222-3333-4444-555555555555) does not match" in answer.json()["message"]


def test_kubectl_self_subject_review_is_read(devcluster: DevCluster) -> None:
    answer = _post(devcluster, SELFSUBJECTREVIEWS, KUBECTL_SELF_SUBJECT_REVIEW,
                   devcluster.admin_token)
    assert answer.status == 201, answer.body
    assert answer.json()["status"]["userInfo"]["username"] == "kubernetes-admin"


def test_token_review_in_protobuf(devcluster: DevCluster) -> None:
    token = devcluster.mint()
    # TokenReviewSpec{token=1, audiences=2} as TokenReview.spec (2).
    spec = _length_delimited(1, token.encode()) + _length_delimited(2, b"compass-internal")
    body = _wrapped(b"authentication.k8s.io/v1", b"TokenReview", _length_delimited(2, spec))
    answer = _post(devcluster, TOKENREVIEWS, body, devcluster.service_token())
    assert answer.status == 201, answer.body
    status = answer.json()["status"]
    assert status["authenticated"] is True
    assert status["audiences"] == ["compass-internal"]
    assert status["user"]["username"] == "system:serviceaccount:default:collector"

    answer = _post(devcluster, TOKENREVIEWS, body, devcluster.service_token(),
                   accept=KUBECTL_ACCEPT)
    assert answer.headers["Content-Type"] == PROTOBUF
    review = _fields(_fields(answer.body[4:])[2][0])
    assert _fields(review[2][0]) == {1: [token.encode()], 2: [b"compass-internal"]}
    status_fields = _fields(review[3][0])
    # TokenReviewStatus{authenticated=1, user=2, error=3, audiences=4}
    assert (status_fields[1], status_fields[4]) == ([1], [b"compass-internal"])
    user = _fields(status_fields[2][0])
    assert user[1] == [b"system:serviceaccount:default:collector"]
    assert user[3] == [
        b"system:serviceaccounts", b"system:serviceaccounts:default", b"system:authenticated"
    ]
    # UserInfo.extra: map entries {key=1, value=ExtraValue{items=1}}, in key order.
    extra = [_fields(entry) for entry in user[4]]
    keys = [entry[1][0].decode() for entry in extra]
    assert keys == sorted(keys)
    assert "authentication.kubernetes.io/pod-name" in keys


def test_answer_is_protobuf_when_the_client_prefers_it(devcluster: DevCluster) -> None:
    devcluster.service_account_uid("default", "collector")
    answer = _post(
        devcluster, token_request_path("default", "collector"), KUBECTL_TOKEN_REQUEST,
        devcluster.admin_token, accept=KUBECTL_ACCEPT,
    )
    assert answer.status == 201
    assert answer.headers["Content-Type"] == PROTOBUF
    assert answer.body.startswith(b"k8s\x00")
    unknown = _fields(answer.body[4:])
    type_meta = _fields(unknown[1][0])
    assert (type_meta[1], type_meta[2]) == ([b"authentication.k8s.io/v1"], [b"TokenRequest"])
    token_request = _fields(unknown[2][0])
    spec = _fields(token_request[2][0])
    assert (spec[1], spec[4]) == ([b"X"], [600])
    status = _fields(token_request[3][0])
    token = status[1][0].decode()
    expiration_seconds = _fields(status[2][0])[1][0]
    assert expiration_seconds == payload_of(token)["exp"]


def test_errors_follow_the_accept_header(devcluster: DevCluster) -> None:
    as_protobuf = _post(devcluster, SELFSUBJECTREVIEWS, KUBECTL_SELF_SUBJECT_REVIEW,
                        "not-a-token", accept=KUBECTL_ACCEPT)
    assert as_protobuf.status == 401
    assert as_protobuf.headers["Content-Type"] == PROTOBUF
    unknown = _fields(as_protobuf.body[4:])
    assert _fields(unknown[1][0]) == {1: [b"v1"], 2: [b"Status"]}
    status = _fields(unknown[2][0])
    assert (status[2], status[3], status[4], status[6]) == (
        [b"Failure"], [b"Unauthorized"], [b"Unauthorized"], [401]
    )
    as_json = _post(devcluster, SELFSUBJECTREVIEWS, KUBECTL_SELF_SUBJECT_REVIEW, "not-a-token")
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.json()["code"] == 401


def _typed(raw: bytes) -> Callable[[str], bytes]:
    """A well-framed body for the endpoint's own kind whose typed message is ``raw``."""
    return lambda kind: _wrapped(b"authentication.k8s.io/v1", kind.encode(), raw)


def _fixed(body: bytes) -> Callable[[str], bytes]:
    return lambda kind: body


# (body for a kind, fragment of the Status message)
MALFORMED = [
    pytest.param(
        _fixed(b""), "unrecognized (must be of type {kind}): empty data (<empty>)", id="empty"
    ),
    pytest.param(
        _fixed(b'{"spec": {}}'),
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
        id="json-labelled-protobuf",
    ),
    pytest.param(_fixed(b"k8s\x00"), "empty body", id="magic-only"),
    pytest.param(_fixed(KUBECTL_TOKEN_REQUEST[:-7]), "runtime.Unknown", id="truncated"),
    pytest.param(_fixed(b"k8s\x00\x0b"), "runtime.Unknown", id="unterminated-group"),
    pytest.param(_fixed(b"k8s\x00\x0a\xff\xff\xff\xff\x0f"), "runtime.Unknown", id="huge-length"),
    pytest.param(
        # Field 2 (spec) says 5 bytes follow and its int64 field 4 ends in a continuation byte.
        _typed(b"\x12\x05\x0a\x01X\x20\xff"),
        '{kind} in version "v1" cannot be handled as a {kind}',
        id="corrupt-typed-message",
    ),
    pytest.param(
        _fixed(_wrapped(b"v1", b"Status", b"")),
        'Status in version "v1" cannot be handled as a {kind}',
        id="another-kind",
    ),
    pytest.param(
        # metadata.labels with the key b"\xff", which is not UTF-8.
        _typed(_length_delimited(1, _length_delimited(11, _length_delimited(1, b"\xff")))),
        '{kind} in version "v1" cannot be handled as a {kind}',
        id="label-key-not-utf8",
    ),
]


@pytest.mark.parametrize(("body", "fragment"), MALFORMED)
@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("TokenRequest", token_request_path("default", "collector")),
        ("TokenReview", TOKENREVIEWS),
        ("SelfSubjectReview", SELFSUBJECTREVIEWS),
    ],
)
def test_malformed_protobuf_is_a_400_status(
    devcluster: DevCluster, kind: str, path: str, body: Callable[[str], bytes], fragment: str
) -> None:
    devcluster.service_account_uid("default", "collector")
    answer = _post(devcluster, path, body(kind), devcluster.admin_token)
    assert answer.status == 400, answer.body
    status = answer.json()
    assert (status["kind"], status["status"], status["reason"], status["code"]) == (
        "Status", "Failure", "BadRequest", 400
    )
    assert fragment.replace("{kind}", kind) in status["message"]


def test_every_truncation_of_a_kubectl_body_is_answered(devcluster: DevCluster) -> None:
    devcluster.service_account_uid("default", "collector")
    statuses = set()
    for end in range(len(KUBECTL_TOKEN_REQUEST) + 1):
        answer = _post(
            devcluster, token_request_path("default", "collector"), KUBECTL_TOKEN_REQUEST[:end],
            devcluster.admin_token,
        )
        assert answer.status in (201, 400), (end, answer.status, answer.body)
        assert answer.json()["kind"] in ("TokenRequest", "Status")
        statuses.add(answer.status)
    assert statuses == {201, 400}


GOLDEN = [
    (KUBECTL_TOKEN_REQUEST, "TokenRequest"),
    (KUBECTL_POD_TOKEN_REQUEST, "TokenRequest"),
    (KUBECTL_SELF_SUBJECT_REVIEW, "SelfSubjectReview"),
]


@settings(max_examples=300, deadline=None)
@given(
    golden=st.sampled_from(GOLDEN),
    position=st.integers(min_value=0, max_value=200),
    replacement=st.binary(max_size=8),
    cut=st.integers(min_value=0, max_value=8),
)
def test_mutated_kubectl_bodies_decode_or_raise_protobuf_error(
    golden: tuple[bytes, str], position: int, replacement: bytes, cut: int
) -> None:
    body, kind = golden
    position %= len(body) + 1
    mutated = body[:position] + replacement + body[position + cut :]
    try:
        decoded = kubeproto.decode(mutated, "authentication.k8s.io/v1", kind)
    except kubeproto.ProtobufError as exc:
        message = str(exc)
        # A mutation may hit the kind's name in typeMeta, so only the end is fixed.
        unrecognized = f"the object provided is unrecognized (must be of type {kind})"
        assert message.startswith(unrecognized) or (
            f'cannot be handled as a {kind}: ' in message
        )
        return
    assert decoded["kind"] == kind
    json.dumps(decoded)  # the handlers' shape: plain JSON values only


def test_unsupported_content_type_is_415(devcluster: DevCluster) -> None:
    answer = call(devcluster, TOKENREVIEWS, token=devcluster.service_token(), body=b"token",
                  content_type="text/plain")
    assert answer.status == 415
    assert answer.json()["reason"] == "UnsupportedMediaType"
    assert answer.json()["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/vnd.kubernetes.protobuf"
    )


def test_unacceptable_accept_is_406_after_authentication(devcluster: DevCluster) -> None:
    answer = call(devcluster, TOKENREVIEWS, token=devcluster.service_token(), body={},
                  accept="text/html")
    assert answer.status == 406
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["message"] == (
        "only the following media types are accepted: "
        "application/json, application/vnd.kubernetes.protobuf"
    )
    # Authentication runs first; its 401 falls back to JSON.
    unauthenticated = call(devcluster, TOKENREVIEWS, token="bad", body={}, accept="text/html")
    assert unauthenticated.status == 401
    assert unauthenticated.json()["reason"] == "Unauthorized"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("application/json", "application/json"),
        (KUBECTL_ACCEPT, PROTOBUF),
        ("application/json, application/vnd.kubernetes.protobuf", "application/json"),
        ("application/json;q=0.5, application/vnd.kubernetes.protobuf", PROTOBUF),
        ("*/*, application/vnd.kubernetes.protobuf", PROTOBUF),
        ("application/vnd.kubernetes.protobuf;q=0, application/json", "application/json"),
        ("application/json;as=Table;v=v1;g=meta.k8s.io, application/json", "application/json"),
        ("application/json;as=Table;v=v1;g=meta.k8s.io", None),
        ("text/html", None),
        ("application/yaml", None),
    ],
)
def test_output_media_type(accept: str | None, expected: str | None) -> None:
    assert output_media_type(accept) == expected
