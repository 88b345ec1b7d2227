"""The few cluster objects bound tokens refer to: service accounts, pods, nodes, secrets.

Objects spring into existence on first use (a test asks for a token of
``default/collector`` and the emulator invents that service account with a
uuid4 UID) and keep their UID until removed. A later mint re-creates a removed
object with a *new* UID, like a recreated pod of the same name.

Deletion comes in the API server's two forms (``metadata.deletionTimestamp``,
``pkg/registry/rest/delete.go``): removed at once, or *graceful*, where the object
stays readable with ``deletionTimestamp`` = the time of the request plus its grace
period until it is removed (a pod's kubelet confirms, a finalizer is dropped).
TokenReview refuses a token whose bound object is gone, has another UID, or has a
``deletionTimestamp`` more than 60 s in the past (credentials/validation.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

logger = logging.getLogger(__name__)

Kind = Literal["serviceaccount", "pod", "node", "secret"]


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """An existing object: its UID, the node for pods, the token for secrets, and, once a
    graceful deletion was asked, its ``deletionTimestamp`` in whole seconds (the API stores it
    as RFC 3339 with second precision)."""

    uid: str
    node: str | None = None
    token: str | None = None
    deletion_timestamp: int | None = None


class ObjectStore:
    """Thread-safe registry keyed by (kind, namespace, name); nodes use namespace ``""``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._objects: dict[tuple[Kind, str, str], ObjectRecord] = {}

    def ensure(
        self, kind: Kind, namespace: str, name: str, *, node: str | None = None
    ) -> str:
        """Return the UID of the object, creating it first if it does not exist.

        An object being deleted gracefully still exists: its UID is returned, as a GET would.
        """
        key = (kind, namespace, name)
        with self._lock:
            record = self._objects.get(key)
            if record is None:
                record = ObjectRecord(str(uuid.uuid4()), node=node)
                self._objects[key] = record
                logger.debug(
                    "devcluster created %s %s/%s uid=%s",
                    kind,
                    namespace,
                    name,
                    record.uid,
                )
            elif node is not None and record.node != node:
                record = replace(record, node=node)
                self._objects[key] = record
            return record.uid

    def put_secret_token(self, namespace: str, name: str, token: str) -> None:
        """Store a legacy token in its Secret (the legacy validator compares them)."""
        key: tuple[Kind, str, str] = ("secret", namespace, name)
        with self._lock:
            self._objects[key] = replace(self._objects[key], token=token)

    def get(self, kind: Kind, namespace: str, name: str) -> ObjectRecord | None:
        """The object, or None when it does not exist (never created, or removed)."""
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def uid(self, kind: Kind, namespace: str, name: str) -> str:
        """The UID of an existing object; KeyError if there is none."""
        record = self.get(kind, namespace, name)
        if record is None:
            raise KeyError(f"no {kind} {namespace}/{name}")
        return record.uid

    def delete(
        self, kind: Kind, namespace: str, name: str, *, grace_period: int | None = None
    ) -> None:
        """Delete the object: removed at once (``grace_period`` None), or gracefully.

        Graceful: ``deletionTimestamp`` becomes now + ``grace_period`` seconds and the object
        stays until a deletion without grace removes it. Asking again may only bring the
        timestamp closer, never push it later (the API's rule for ``deletionTimestamp``).
        KeyError if there is no such object.
        """
        key = (kind, namespace, name)
        with self._lock:
            record = self._objects.get(key)
            if record is None:
                raise KeyError(f"no {kind} {namespace}/{name}")
            if grace_period is None:
                del self._objects[key]
            else:
                if grace_period < 0:
                    raise ValueError(f"grace_period must be >= 0, not {grace_period}")
                stamp = int(self._clock()) + grace_period
                if record.deletion_timestamp is not None:
                    stamp = min(stamp, record.deletion_timestamp)
                self._objects[key] = replace(record, deletion_timestamp=stamp)
        if grace_period is None:
            logger.info("devcluster removed %s %s/%s", kind, namespace, name)
        else:
            logger.info(
                "devcluster deleting %s %s/%s (grace %s s)", kind, namespace, name, grace_period
            )

    def recreate(self, kind: Kind, namespace: str, name: str) -> str:
        """Remove the object if it exists and create it again: same name, new UID."""
        key = (kind, namespace, name)
        with self._lock:
            old = self._objects.pop(key, None)
            record = ObjectRecord(str(uuid.uuid4()), node=old.node if old else None)
            self._objects[key] = record
        logger.info("devcluster recreated %s %s/%s uid=%s", kind, namespace, name, record.uid)
        return record.uid

    def remove_terminating(self) -> int:
        """Remove every object being deleted gracefully (what a kubelet or garbage collector
        would finish); returns how many. ``reset()`` calls it so that one test's graceful
        deletion does not reach into the next test, which may use the same names."""
        with self._lock:
            doomed = [key for key, record in self._objects.items()
                      if record.deletion_timestamp is not None]
            for key in doomed:
                del self._objects[key]
        return len(doomed)
