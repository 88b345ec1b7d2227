"""``authorization.k8s.io`` and ``rbac.authorization.k8s.io``: SubjectAccessReview, and creating
RBAC objects (their paths are in ``endpoints.py``).

* ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``: the caller needs ``create
  subjectaccessreviews`` (``system:auth-delegator``), checked like TokenReview's permission
  (``ClusterState.may_create_subjectaccessreviews``); the answer is RBAC's over the emulator's
  objects, 201 as upstream.
* ``POST /apis/rbac.authorization.k8s.io/v1/{clusterroles,clusterrolebindings}`` and
  ``.../namespaces/NS/{roles,rolebindings}``: create only (no get, list, update or delete). The
  caller needs RBAC ``create`` on that resource (admins have it through ``cluster-admin``). A
  real API server also refuses to let a caller grant permissions it does not hold (escalation
  check): not modelled, the emulator is no security boundary.

Bodies are streamed and capped at :data:`MAX_BODY_BYTES` (kube-apiserver's default limit), so
a huge body costs at most that much memory and gets a 413 Status, never a silent close.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import tornado.web

from compass_auth.testing.credentials.factory import TokenFactory
from compass_auth.testing.credentials.validation import UserInfo
from compass_auth.testing.rbac import access_review, authorizer, errors, objects
from compass_auth.testing.rbac.store import MAX_OBJECTS, AlreadyExists, StoreFull
from compass_auth.testing.server.pipeline import KubeHandler, json_body
from compass_auth.testing.state import ClusterState
from compass_auth.testing.wire import bodies

logger = logging.getLogger(__name__)

#: kube-apiserver's --max-request-bytes default for JSON bodies (3 MiB).
MAX_BODY_BYTES = 3 * 1024 * 1024

T = TypeVar("T")


@tornado.web.stream_request_body
class BoundedBodyHandler(KubeHandler):
    """A :class:`KubeHandler` that reads its body itself, keeping at most :data:`MAX_BODY_BYTES`.

    The usual pipeline (fault, authentication, RBAC) runs once the body has arrived, in
    :meth:`admitted`: answering while the client still uploads, then closing with unread bytes,
    can reset the connection before the client reads the answer. A longer body is read to its
    end and dropped, then answered with 413. A client that sent ``Expect: 100-continue`` waits
    for us before uploading: it goes through the pipeline at once, and a ``Content-Length``
    over the limit gets the 413 before any body is sent. Verb methods start with ``if not
    await self.admitted(): return``, then call :meth:`json_document`.
    """

    def initialize(self, state: ClusterState, factory: TokenFactory, endpoint: str) -> None:
        super().initialize(state, factory, endpoint)
        self._parts: list[bytes] = []
        self._size = 0
        self._admitted: bool | None = None

    async def prepare(self) -> None:
        if self.request.headers.get("Expect", "").lower() != "100-continue":
            return
        if not await self.admitted():
            return
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            self._too_large()

    async def admitted(self) -> bool:
        """Run the shared pipeline once; False when it already answered (fault, 401, 403)."""
        if self._admitted is None:
            await super().prepare()
            self._admitted = not self._finished
        return self._admitted

    async def _not_allowed(self, *args: str) -> None:
        # Only create is served; other verbs get 405 once the caller passed the pipeline.
        if await self.admitted():
            raise tornado.web.HTTPError(405)

    get = put = patch = delete = _not_allowed

    def data_received(self, chunk: bytes) -> None:
        """Collect the body; past the cap, count and drop."""
        self._size += len(chunk)
        if self._size > MAX_BODY_BYTES:
            self._parts.clear()
        else:
            self._parts.append(chunk)

    def json_document(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None once answered (413, or 400 by ``json_body``)."""
        if self._size > MAX_BODY_BYTES:
            self._too_large()
            return None
        self.request.body = b"".join(self._parts)
        return json_body(self)

    async def decoded_body(self, decode: Callable[[dict[str, Any]], T]) -> T | None:
        """:meth:`admitted`, :meth:`json_document`, then ``decode`` it; None once answered
        (by the pipeline, 413, 400, or 400/422 for a malformed/invalid document)."""
        if not await self.admitted():
            return None
        body = self.json_document()
        if body is None:
            return None
        try:
            return decode(body)
        except errors.Malformed as exc:
            self.reply(400, bodies.bad_request(str(exc)))
        except errors.Invalid as exc:
            self.reply(422, exc.status())
        return None

    def _too_large(self) -> None:
        logger.info(
            "devcluster body over limit endpoint=%s bytes=%d limit=%d",
            self.endpoint,
            self._size,
            MAX_BODY_BYTES,
        )
        self.reply(413, errors.too_large(MAX_BODY_BYTES))


class SubjectAccessReviewHandler(BoundedBodyHandler):
    """``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``."""

    def authorized(self, user: UserInfo) -> bool:
        return self.state.may_create_subjectaccessreviews(user)

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        return errors.forbidden(
            user.username, "create", access_review.GROUP, "subjectaccessreviews"
        )

    async def post(self) -> None:
        review = await self.decoded_body(access_review.decode)
        if review is None:
            return
        decision = self.state.rbac.authorize(review.attributes)
        logger.info(
            "devcluster subjectaccessreview caller=%s user=%s allowed=%s reason=%s",
            self.user.username,
            review.attributes.user,
            decision.allowed,
            decision.reason,
        )
        self.reply(201, access_review.answer(review.spec, decision))


class RbacCreateHandler(BoundedBodyHandler):
    """``POST`` of one RBAC kind (class attribute ``kind``), authorized by RBAC itself."""

    kind: ClassVar[str] = ""

    def _namespace(self) -> str:
        return str(self.path_kwargs.get("namespace", ""))

    def authorized(self, user: UserInfo) -> bool:
        attributes = authorizer.Attributes(
            user=user.username,
            groups=user.groups,
            verb="create",
            resource_request=True,
            namespace=self._namespace(),
            api_group=authorizer.RBAC_GROUP,
            resource=objects.resource_of(self.kind),
        )
        return self.state.rbac.authorize(attributes).allowed

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        return errors.forbidden(
            user.username,
            "create",
            authorizer.RBAC_GROUP,
            objects.resource_of(self.kind),
            self._namespace(),
        )

    async def post(self, namespace: str = "") -> None:
        obj = await self.decoded_body(lambda body: objects.decode(body, self.kind, namespace))
        if obj is None:
            return
        resource = objects.resource_of(self.kind)
        try:
            created = self.state.rbac.create(obj)
        except AlreadyExists:
            self.reply(409, errors.already_exists(authorizer.RBAC_GROUP, resource, obj.name))
            return
        except StoreFull:
            self.reply(
                403, errors.store_full(authorizer.RBAC_GROUP, resource, obj.name, MAX_OBJECTS)
            )
            return
        self.reply(201, created.to_wire())


def create_handler(kind: str) -> type[RbacCreateHandler]:
    """The :class:`RbacCreateHandler` of one kind (``Role``, ``ClusterRoleBinding``, ...)."""
    return type(f"{kind}CreateHandler", (RbacCreateHandler,), {"kind": kind})
