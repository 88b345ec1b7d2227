"""The emulator's RBAC objects: built-in, loaded from YAML, or created over HTTP.

Two layers. The *base* holds the built-in roles (``bootstrap``) and whatever was loaded
with ``persistent=True`` (``python -m compass_auth.testing --rbac FILE``); the *scoped* layer holds
objects a test loaded or created, and :meth:`RbacStore.reset` drops it, so one test's grants
never leak into the next. A scoped object with a base object's name hides it until the reset.

Readers never lock: every change builds a new immutable
:class:`~compass_auth.testing.rbac.authorizer.Policy` and swaps one reference (the go-oidc key-set
idea), so an authorization check sees either the old policy or the new one, never half of a
change.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml  # type: ignore[import-untyped]

from compass_auth.testing.rbac import authorizer
from compass_auth.testing.rbac.bootstrap import bootstrap_objects
from compass_auth.testing.rbac.errors import Invalid, Malformed
from compass_auth.testing.rbac.objects import KINDS, RbacObject, decode

logger = logging.getLogger(__name__)

#: Objects held at most (built-in ones included): a runaway loop in a test or a hostile client
#: must hit a clear 403, not eat memory or make every authorization check slow.
MAX_OBJECTS = 10_000
#: Where namespaced objects without ``metadata.namespace`` go, as with ``kubectl apply``.
DEFAULT_NAMESPACE = "default"
Key = tuple[str, str, str]


class AlreadyExists(Exception):
    """An object of that kind, namespace and name exists (HTTP create only)."""


class StoreFull(Exception):
    """Adding would exceed :data:`MAX_OBJECTS`."""


class ManifestError(ValueError):
    """A YAML document cannot be loaded; the message names the document and the problem."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a YAML load brought: RBAC objects, and ServiceAccounts as (namespace, name)."""

    objects: tuple[RbacObject, ...]
    service_accounts: tuple[tuple[str, str], ...]


class RbacStore:
    """Thread-safe holder of RBAC objects with a lock-free :attr:`policy` snapshot."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._versions = itertools.count(1)
        self._base: dict[Key, RbacObject] = {}
        self._scoped: dict[Key, RbacObject] = {}
        for obj in bootstrap_objects():
            self._base[obj.key] = self._stamp(obj)
        self._policy = build_policy(self._base.values())

    @property
    def policy(self) -> authorizer.Policy:
        """The current immutable snapshot."""
        return self._policy

    def authorize(self, attributes: authorizer.Attributes) -> authorizer.Decision:
        """RBAC's decision on ``attributes`` against the current snapshot."""
        return authorizer.authorize(attributes, self._policy)

    def get(self, kind: str, namespace: str, name: str) -> RbacObject | None:
        """The effective object (a scoped one hides a base one), or None."""
        key = (kind, namespace, name)
        with self._lock:
            return self._scoped.get(key) or self._base.get(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._base.keys() | self._scoped.keys())

    def create(self, obj: RbacObject) -> RbacObject:
        """Add a new scoped object; :class:`AlreadyExists` if its name is taken."""
        with self._lock:
            if obj.key in self._scoped or obj.key in self._base:
                raise AlreadyExists(obj.key)
            self._check_room(1)
            stamped = self._stamp(obj)
            self._scoped[stamped.key] = stamped
            self._rebuild()
        logger.info("devcluster rbac created %s %s/%s", obj.kind, obj.namespace, obj.name)
        return stamped

    def apply(self, objects: Sequence[RbacObject], *, persistent: bool = False) -> None:
        """Create or replace ``objects`` (``kubectl apply``), all or none."""
        with self._lock:
            layer = self._base if persistent else self._scoped
            new_keys = {obj.key for obj in objects} - self._base.keys() - self._scoped.keys()
            self._check_room(len(new_keys))
            for obj in objects:
                layer[obj.key] = self._stamp(obj)
            self._rebuild()
        logger.info(
            "devcluster rbac applied objects=%d persistent=%s", len(objects), persistent
        )

    def reset(self) -> None:
        """Drop the scoped layer: back to the built-in and persistent objects."""
        with self._lock:
            if self._scoped:
                self._scoped.clear()
                self._rebuild()

    def _check_room(self, adding: int) -> None:
        held = len(self._base.keys() | self._scoped.keys())
        if held + adding > MAX_OBJECTS:
            raise StoreFull(f"the emulator holds at most {MAX_OBJECTS} RBAC objects")

    def _stamp(self, obj: RbacObject) -> RbacObject:
        return replace(
            obj,
            uid=str(uuid.uuid4()),
            resource_version=str(next(self._versions)),
            created=self._clock(),
        )

    def _rebuild(self) -> None:
        self._policy = build_policy({**self._base, **self._scoped}.values())


def build_policy(objects: Iterable[RbacObject]) -> authorizer.Policy:
    """The evaluator's immutable snapshot of ``objects`` (one per key: callers merge layers)."""
    cluster_roles: dict[str, authorizer.Role] = {}
    roles: dict[tuple[str, str], authorizer.Role] = {}
    cluster_role_bindings: list[authorizer.Binding] = []
    role_bindings: dict[str, list[authorizer.Binding]] = {}
    for obj in objects:
        value = obj.value
        if isinstance(value, authorizer.Role):
            if obj.namespace:
                roles[(obj.namespace, obj.name)] = value
            else:
                cluster_roles[obj.name] = value
        elif obj.namespace:
            role_bindings.setdefault(obj.namespace, []).append(value)
        else:
            cluster_role_bindings.append(value)
    return authorizer.Policy(
        cluster_roles=cluster_roles,
        roles=roles,
        cluster_role_bindings=tuple(cluster_role_bindings),
        role_bindings={ns: tuple(found) for ns, found in role_bindings.items()},
    )


# ---- YAML ----------------------------------------------------------------------------------


def parse_manifests(text: str, default_namespace: str = DEFAULT_NAMESPACE) -> Loaded:
    """RBAC objects and ServiceAccounts from multi-document YAML (``kubectl kustomize`` output).

    Other kinds are skipped; ``List`` documents (``kubectl get -o yaml``) are unpacked. Any
    RBAC object a real API server would refuse makes the whole load fail with
    :class:`ManifestError`.
    """
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"not valid YAML: {exc}") from exc
    objects: list[RbacObject] = []
    accounts: list[tuple[str, str]] = []
    for where, document in _unpack(documents):
        if len(objects) + len(accounts) >= MAX_OBJECTS:
            raise ManifestError(f"more than {MAX_OBJECTS} objects")
        if not isinstance(document, dict):
            raise ManifestError(f"{where}: not a mapping")
        kind = document.get("kind")
        if kind == "ServiceAccount":
            accounts.append(_service_account(document, default_namespace, where))
        elif kind in KINDS:
            try:
                obj = decode(document, str(kind), default_namespace=default_namespace)
            except (Malformed, Invalid) as exc:
                raise ManifestError(f"{where} ({kind}): {exc}") from exc
            objects.append(obj)
    return Loaded(tuple(objects), tuple(accounts))


def _unpack(documents: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    """(where, document) for each document, and for each item of a ``*List`` document."""
    for number, document in enumerate(documents, 1):
        if document is None:  # empty or comment-only
            continue
        items = document.get("items") if isinstance(document, dict) else None
        if isinstance(items, list) and str(document.get("kind", "")).endswith("List"):
            for index, item in enumerate(items):
                yield f"document {number} items[{index}]", item
        else:
            yield f"document {number}", document


def _service_account(
    document: dict[str, Any], default_namespace: str, where: str
) -> tuple[str, str]:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    namespace = (metadata.get("namespace") if isinstance(metadata, dict) else None) or (
        default_namespace
    )
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        raise ManifestError(f"{where} (ServiceAccount): metadata.name is required")
    return (namespace, name)
