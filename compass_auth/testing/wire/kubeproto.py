"""Kubernetes' protobuf wire format for the few objects the emulator reads and writes.

``application/vnd.kubernetes.protobuf`` (k8s.io/apimachinery/pkg/runtime/serializer/protobuf/
protobuf.go): the four bytes ``k8s\\x00``, then a ``runtime.Unknown`` message whose ``typeMeta``
names the kind and whose ``raw`` holds the typed message. kubectl sends its TokenRequest and
SelfSubjectReview bodies this way and prefers answers in it.

The message descriptors are built here at import time from tables copied from upstream's
``generated.proto`` files (field names and numbers must match them exactly):

* k8s.io/apimachinery/pkg/runtime/generated.proto: ``TypeMeta``, ``Unknown``
* k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto: ``ObjectMeta`` and what it uses,
  ``Status`` (``ListMeta`` without the newer ``shardInfo``)
* k8s.io/api/authentication/v1/generated.proto: ``TokenRequest``, ``TokenReview``,
  ``SelfSubjectReview`` and their parts

The ``protobuf`` library does all wire work; there is no protoc step and no generated code.
Objects cross this module as the dicts the JSON path uses (JSON field names, ``metav1.Time``
as RFC 3339 strings, ``ExtraValue`` as a plain list), so handlers never see protobuf types.
"""

from __future__ import annotations

import binascii
import datetime
import logging
from typing import Any

# protobuf ships no type information (no py.typed); this module keeps its values behind
# typed functions.
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message,
    message_factory,
)

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
# "k8s" plus the encoding style 0x00: the rest is a runtime.Unknown (protobuf.go).
MAGIC = b"k8s\x00"
# How Go's %v prints it in the serializer's error.
_GO_MAGIC = "[" + " ".join(str(byte) for byte in MAGIC) + "]"

_RUNTIME = "k8s.io.apimachinery.pkg.runtime"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_AUTHN = "k8s.io.api.authentication.v1"
_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
}

# A field: (name, number, type, repeated, JSON name or None for the field name). A type is a
# scalar above, a message of the same file, or "map:<value type>" for map<string, value>.
_Field = tuple[str, int, str, bool, str | None]


def _opt(name: str, number: int, kind: str, json_name: str | None = None) -> _Field:
    return (name, number, kind, False, json_name)


def _rep(name: str, number: int, kind: str) -> _Field:
    return (name, number, kind, True, None)


_TIME = f".{_META}.Time"
_OBJECT_META = f".{_META}.ObjectMeta"
_FILES: tuple[tuple[str, str, tuple[str, ...], dict[str, list[_Field]]], ...] = (
    (
        "k8s.io/apimachinery/pkg/runtime/generated.proto",
        _RUNTIME,
        (),
        {
            "TypeMeta": [_opt("apiVersion", 1, "string"), _opt("kind", 2, "string")],
            "Unknown": [
                _opt("typeMeta", 1, "TypeMeta"),
                _opt("raw", 2, "bytes"),
                _opt("contentEncoding", 3, "string"),
                _opt("contentType", 4, "string"),
            ],
        },
    ),
    (
        "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
        _META,
        (),
        {
            "Time": [_opt("seconds", 1, "int64"), _opt("nanos", 2, "int32")],
            "FieldsV1": [_opt("Raw", 1, "bytes")],
            "ManagedFieldsEntry": [
                _opt("manager", 1, "string"),
                _opt("operation", 2, "string"),
                _opt("apiVersion", 3, "string"),
                _opt("time", 4, "Time"),
                _opt("fieldsType", 6, "string"),
                _opt("fieldsV1", 7, "FieldsV1"),
                _opt("subresource", 8, "string"),
            ],
            "OwnerReference": [
                _opt("apiVersion", 5, "string"),
                _opt("kind", 1, "string"),
                _opt("name", 3, "string"),
                _opt("uid", 4, "string"),
                _opt("controller", 6, "bool"),
                _opt("blockOwnerDeletion", 7, "bool"),
            ],
            "ObjectMeta": [
                _opt("name", 1, "string"),
                _opt("generateName", 2, "string"),
                _opt("namespace", 3, "string"),
                _opt("selfLink", 4, "string"),
                _opt("uid", 5, "string"),
                _opt("resourceVersion", 6, "string"),
                _opt("generation", 7, "int64"),
                _opt("creationTimestamp", 8, "Time"),
                _opt("deletionTimestamp", 9, "Time"),
                _opt("deletionGracePeriodSeconds", 10, "int64"),
                _opt("labels", 11, "map:string"),
                _opt("annotations", 12, "map:string"),
                _rep("ownerReferences", 13, "OwnerReference"),
                _rep("finalizers", 14, "string"),
                _rep("managedFields", 17, "ManagedFieldsEntry"),
            ],
            "ListMeta": [
                _opt("selfLink", 1, "string"),
                _opt("resourceVersion", 2, "string"),
                _opt("continue", 3, "string"),
                _opt("remainingItemCount", 4, "int64"),
            ],
            "StatusCause": [
                _opt("reason", 1, "string"),
                _opt("message", 2, "string"),
                _opt("field", 3, "string"),
            ],
            "StatusDetails": [
                _opt("name", 1, "string"),
                _opt("group", 2, "string"),
                _opt("kind", 3, "string"),
                _opt("uid", 6, "string"),
                _rep("causes", 4, "StatusCause"),
                _opt("retryAfterSeconds", 5, "int32"),
            ],
            "Status": [
                _opt("metadata", 1, "ListMeta"),
                _opt("status", 2, "string"),
                _opt("message", 3, "string"),
                _opt("reason", 4, "string"),
                _opt("details", 5, "StatusDetails"),
                _opt("code", 6, "int32"),
            ],
        },
    ),
    (
        "k8s.io/api/authentication/v1/generated.proto",
        _AUTHN,
        ("k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",),
        {
            "ExtraValue": [_rep("items", 1, "string")],
            "AttestationValue": [_rep("items", 1, "string")],
            "UserInfo": [
                _opt("username", 1, "string"),
                _opt("uid", 2, "string"),
                _rep("groups", 3, "string"),
                _opt("extra", 4, "map:ExtraValue"),
            ],
            # The Go field is UID; its JSON name is "uid".
            "BoundObjectReference": [
                _opt("kind", 1, "string"),
                _opt("apiVersion", 2, "string"),
                _opt("name", 3, "string"),
                _opt("uID", 4, "string", json_name="uid"),
            ],
            "TokenRequestSpec": [
                _rep("audiences", 1, "string"),
                _opt("expirationSeconds", 4, "int64"),
                _opt("boundObjectRef", 3, "BoundObjectReference"),
                _opt("attestations", 5, "map:AttestationValue"),
            ],
            "TokenRequestStatus": [
                _opt("token", 1, "string"),
                _opt("expirationTimestamp", 2, _TIME),
            ],
            "TokenRequest": [
                _opt("metadata", 1, _OBJECT_META),
                _opt("spec", 2, "TokenRequestSpec"),
                _opt("status", 3, "TokenRequestStatus"),
            ],
            "TokenReviewSpec": [_opt("token", 1, "string"), _rep("audiences", 2, "string")],
            "TokenReviewStatus": [
                _opt("authenticated", 1, "bool"),
                _opt("user", 2, "UserInfo"),
                _rep("audiences", 4, "string"),
                _opt("error", 3, "string"),
            ],
            "TokenReview": [
                _opt("metadata", 1, _OBJECT_META),
                _opt("spec", 2, "TokenReviewSpec"),
                _opt("status", 3, "TokenReviewStatus"),
            ],
            "SelfSubjectReviewStatus": [_opt("userInfo", 1, "UserInfo")],
            "SelfSubjectReview": [
                _opt("metadata", 1, _OBJECT_META),
                _opt("status", 2, "SelfSubjectReviewStatus"),
            ],
        },
    ),
)
# Messages whose JSON form is their one repeated field (Go: type ExtraValue []string).
_LIST_VALUES = frozenset({f"{_AUTHN}.ExtraValue", f"{_AUTHN}.AttestationValue"})


def _add_field(
    parent: Any, package: str, owner: str, spec: _Field
) -> None:
    name, number, kind, repeated, json_name = spec
    field = parent.field.add(name=name, number=number, json_name=json_name or name)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if kind.startswith("map:"):
        # protoc's lowering of map<string, V>: a nested FooEntry{key=1, value=2} marked map_entry.
        entry_name = name[0].upper() + name[1:] + "Entry"
        entry = parent.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        _add_field(entry, package, f"{owner}.{entry_name}", _opt("key", 1, "string"))
        _add_field(entry, package, f"{owner}.{entry_name}", _opt("value", 2, kind[4:]))
        field.label = _F.LABEL_REPEATED
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{package}.{owner}.{entry_name}"
    elif kind in _SCALARS:
        field.type = _SCALARS[kind]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = kind if kind.startswith(".") else f".{package}.{kind}"


def _build_pool() -> Any:
    # A private pool: nothing clashes with other users of the default pool.
    pool = descriptor_pool.DescriptorPool()
    for file_name, package, dependencies, messages in _FILES:
        proto = descriptor_pb2.FileDescriptorProto(
            name=file_name, package=package, syntax="proto2", dependency=list(dependencies)
        )
        for message_name, fields in messages.items():
            described = proto.message_type.add(name=message_name)
            for spec in fields:
                _add_field(described, package, message_name, spec)
        pool.Add(proto)
    return pool


_POOL = _build_pool()
# (apiVersion, kind) of every object this module encodes and decodes.
_KINDS: dict[tuple[str, str], str] = {
    ("authentication.k8s.io/v1", "TokenRequest"): f"{_AUTHN}.TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): f"{_AUTHN}.TokenReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): f"{_AUTHN}.SelfSubjectReview",
    ("v1", "Status"): f"{_META}.Status",
}


def _message_class(full_name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


_UNKNOWN = _message_class(f"{_RUNTIME}.Unknown")


class ProtobufError(ValueError):
    """A request body that is not a usable protobuf object; the text suits a 400 Status."""


def can_encode(obj: Any) -> bool:
    """Whether :func:`encode` knows ``obj``'s kind (the four objects the emulator answers with)."""
    return isinstance(obj, dict) and (obj.get("apiVersion"), obj.get("kind")) in _KINDS


def encode(obj: dict[str, Any]) -> bytes:
    """``obj`` (JSON shape, with ``kind`` and ``apiVersion``) as the API server writes it.

    Keys the typed message does not have are dropped, as a JSON decode on the server would.
    """
    api_version, kind = obj["apiVersion"], obj["kind"]
    typed = _message_class(_KINDS[(api_version, kind)])()
    _fill(typed, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
    unknown = _UNKNOWN()
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    # Go map fields are written in sorted key order; deterministic=True does the same.
    unknown.raw = typed.SerializeToString(deterministic=True)
    # Go writes these (empty) non-pointer fields too.
    unknown.contentEncoding = ""
    unknown.contentType = ""
    return MAGIC + bytes(unknown.SerializeToString())


def decode(body: bytes, api_version: str, kind: str) -> dict[str, Any]:
    """A request body for the ``api_version``/``kind`` endpoint, in the JSON path's shape.

    A missing ``typeMeta`` defaults to the endpoint's kind, as the API server does. Errors are
    worded like ``handlers/rest.go``'s ``transformDecodeError`` around the serializer's own.
    """
    full_name = _KINDS[(api_version, kind)]
    if not body:
        raise ProtobufError(_unrecognized(kind, "empty data", body))
    if not body.startswith(MAGIC):
        reason = "provided data does not appear to be a protobuf message, expected prefix"
        raise ProtobufError(_unrecognized(kind, f"{reason} {_GO_MAGIC}", body))
    if body == MAGIC:
        raise ProtobufError(_unrecognized(kind, "empty body", body))
    unknown = _UNKNOWN()
    try:
        unknown.ParseFromString(body[len(MAGIC) :])
    except message.DecodeError as exc:
        raise ProtobufError(_unrecognized(kind, f"runtime.Unknown: {exc}", body)) from None
    sent_version = _text(unknown.typeMeta.apiVersion) or api_version
    sent_kind = _text(unknown.typeMeta.kind) or kind
    version = sent_version.rsplit("/", 1)[-1]
    prefix = f'{sent_kind} in version "{version}" cannot be handled as a {kind}'
    if (sent_version, sent_kind) != (api_version, kind):
        raise ProtobufError(f"{prefix}: this endpoint takes {api_version} {kind}")
    typed = _message_class(full_name)()
    try:
        typed.ParseFromString(unknown.raw)
        fields = _to_dict(typed)
    except (message.DecodeError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"{prefix}: {exc}") from None
    return {"kind": kind, "apiVersion": api_version, **fields}


def _unrecognized(kind: str, reason: str, body: bytes) -> str:
    # summarizeData(body, 30): the first 30 bytes in hex.
    summary = binascii.hexlify(body[:30]).decode("ascii") if body else "<empty>"
    if len(body) > 30:
        summary += " ..."
    return f"the object provided is unrecognized (must be of type {kind}): {reason} ({summary})"


def _is_repeated(field: Any) -> bool:
    # protobuf 7 has only is_repeated; releases before it was added have only label.
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


def _to_dict(typed: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field, value in typed.ListFields():
        result[field.json_name] = _value_to_python(field, value)
    return result


def _value_to_python(field: Any, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {_text(key): _single(value_field, item) for key, item in value.items()}
    if _is_repeated(field):
        return [_single(field, item) for item in value]
    return _single(field, value)


def _text(value: str | bytes) -> str:
    # The library hands back bytes for a proto2 string that is not UTF-8; Go keeps the bytes
    # and its JSON encoder writes U+FFFD for them, so the JSON path sees the same.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _single(field: Any, value: Any) -> Any:
    if field.message_type is None:
        if field.type == field.TYPE_BYTES:
            return binascii.b2a_base64(value, newline=False).decode("ascii")
        return _text(value) if field.type == field.TYPE_STRING else value
    full_name = field.message_type.full_name
    if full_name in _LIST_VALUES:
        return list(value.items)
    if full_name == _TIME[1:]:
        # metav1.Time is RFC 3339 in JSON; the zero time is null.
        if not value.seconds:
            return None
        moment = datetime.datetime.fromtimestamp(value.seconds, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _to_dict(value)


def _fill(typed: Any, data: dict[str, Any]) -> None:
    fields = {field.json_name: field for field in typed.DESCRIPTOR.fields}
    for key, value in data.items():
        field = fields.get(key)
        if field is None or value is None:
            continue
        target = getattr(typed, field.name)
        if field.message_type is None:
            if _is_repeated(field):
                target.extend(value)
            else:
                setattr(typed, field.name, value)
        elif field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for map_key, item in value.items():
                if value_field.message_type is None:
                    target[map_key] = item
                else:
                    _fill_single(target[map_key], item)
        elif _is_repeated(field):
            for item in value:
                _fill_single(target.add(), item)
        else:
            # Present even when empty, as Go writes its non-pointer structs (metadata: {}).
            target.SetInParent()
            _fill_single(target, value)


def _fill_single(target: Any, value: Any) -> None:
    full_name = target.DESCRIPTOR.full_name
    if full_name in _LIST_VALUES:
        target.items.extend(str(item) for item in value)
    elif full_name == _TIME[1:]:
        moment = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        target.seconds = int(moment.replace(tzinfo=datetime.UTC).timestamp())
    else:
        _fill(target, value)
