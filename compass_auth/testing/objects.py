"""The few cluster objects bound tokens refer to: service accounts, pods, nodes, secrets.

Objects spring into existence on first use (a test asks for a token of
``default/collector`` and the emulator invents that service account with a
uuid4 UID) and keep their UID until deleted. Deleting is what revokes tokens
for TokenReview; a later mint re-creates the object with a *new* UID, like a
recreated pod of the same name.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

Kind = Literal["serviceaccount", "pod", "node", "secret"]


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """An existing object: its UID, plus the node for pods and the token for secrets."""

    uid: str
    node: str | None = None
    token: str | None = None


class ObjectStore:
    """Thread-safe registry keyed by (kind, namespace, name); nodes use namespace ``""``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[Kind, str, str], ObjectRecord] = {}

    def ensure(
        self, kind: Kind, namespace: str, name: str, *, node: str | None = None
    ) -> str:
        """Return the UID of the object, creating it first if it does not exist."""
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
                record = ObjectRecord(record.uid, node=node, token=record.token)
                self._objects[key] = record
            return record.uid

    def put_secret_token(self, namespace: str, name: str, token: str) -> None:
        """Store a legacy token in its Secret (the legacy validator compares them)."""
        key: tuple[Kind, str, str] = ("secret", namespace, name)
        with self._lock:
            record = self._objects[key]
            self._objects[key] = ObjectRecord(record.uid, token=token)

    def get(self, kind: Kind, namespace: str, name: str) -> ObjectRecord | None:
        """The object, or None when it does not exist (never created, or deleted)."""
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def uid(self, kind: Kind, namespace: str, name: str) -> str:
        """The UID of an existing object; KeyError if there is none."""
        record = self.get(kind, namespace, name)
        if record is None:
            raise KeyError(f"no {kind} {namespace}/{name}")
        return record.uid

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        """Delete the object; tokens bound to it stop passing TokenReview."""
        with self._lock:
            if self._objects.pop((kind, namespace, name), None) is None:
                raise KeyError(f"no {kind} {namespace}/{name}")
        logger.info("devcluster deleted %s %s/%s", kind, namespace, name)
