"""The base of every handler: the pipeline a request runs before its verb method.

Every request runs the same pipeline in ``prepare``: record, inject any fault,
authenticate (client certificate, then bearer token, else anonymous),
authorise, and only then reach the verb method. The handlers themselves are in
``handlers/``, their paths and names in ``endpoints.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from asyncio import Future
from typing import Any, ClassVar

from compass_auth.testing.credentials import jws
from compass_auth.testing.credentials.factory import TokenFactory
from compass_auth.testing.credentials.validation import UserInfo
from compass_auth.testing.server import negotiation
from compass_auth.testing.server.faulting import FaultingHandler
from compass_auth.testing.server.faults import Fault
from compass_auth.testing.server.requestlog import RequestRecord, fingerprint
from compass_auth.testing.state import ADMIN_USER, ANONYMOUS_USER, ClusterState
from compass_auth.testing.wire import bodies, kubeproto

logger = logging.getLogger(__name__)

# APF tags every answer with the flow schema and priority level that handled it;
# one fixed pair per process is as good as the real "exempt" ones.
_FLOWSCHEMA_UID = str(uuid.uuid4())
_PRIORITY_LEVEL_UID = str(uuid.uuid4())
_JSON = "application/json"
_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
API_VERSION = f"{bodies.TOKENREVIEW_GROUP}/v1"


class KubeHandler(FaultingHandler):
    """Base: headers, fault injection, authentication, RBAC and JSON replies.

    ``endpoint`` (an ``initialize`` argument, from ``endpoints.py``) is the name faults and
    the request log use.

    Class attributes:
        public: anonymous callers allowed (``system:public-info-viewer``).
        content_type: of a normal answer; a ``Fault(body=...)`` keeps it.
        negotiates: an API resource endpoint whose answers (errors included) follow the
            Accept header, JSON or protobuf; the others always answer JSON.
    """

    public: ClassVar[bool] = False
    negotiates: ClassVar[bool] = False

    def initialize(self, state: ClusterState, factory: TokenFactory, endpoint: str) -> None:
        self.endpoint = endpoint
        self.state = state
        self.factory = factory
        self.user: UserInfo = ANONYMOUS_USER
        self._fingerprint = ""
        # What answers are written in: JSON unless a negotiating endpoint's Accept header
        # prefers protobuf; None when it names neither (read_object answers 406, and error
        # answers fall back to JSON, as kube-apiserver's do).
        self.answer_type: str | None = _JSON

    def set_default_headers(self) -> None:
        # A real API server sends no Server header; Tornado adds one by default.
        self.clear_header("Server")
        self.set_header("Content-Type", _JSON)
        self.set_header("Audit-Id", str(uuid.uuid4()))
        self.set_header("Cache-Control", "no-cache, private")
        self.set_header("X-Kubernetes-Pf-Flowschema-Uid", _FLOWSCHEMA_UID)
        self.set_header("X-Kubernetes-Pf-Prioritylevel-Uid", _PRIORITY_LEVEL_UID)

    def compute_etag(self) -> str | None:
        """No ETag: the API server sends none on these paths."""
        return None

    def reply(self, code: int, body: Any, content_type: str = _JSON) -> None:
        """Finish with ``body``: bytes as is, an object in the negotiated format (compact
        Go-style JSON, or protobuf when the client prefers it)."""
        self.set_status(code)
        if isinstance(body, bytes):
            data = body
        elif self.answer_type == negotiation.PROTOBUF and kubeproto.can_encode(body):
            content_type, data = negotiation.PROTOBUF, kubeproto.encode(body)
        else:
            data = jws.go_json(body)
        self.set_header("Content-Type", content_type)
        self.finish(data)

    async def prepare(self) -> None:
        """Fault, then authentication, then RBAC; any of them may finish the request.

        Faults come first because they stand for failures in front of the
        API server (load balancer, overload) that no credential gets past.
        """
        bearer = self._bearer()
        self._fingerprint = fingerprint(bearer) if bearer else ""
        if self.negotiates:
            self.answer_type = negotiation.output_media_type(self.request.headers.get("Accept"))
        fault = self.state.faults.take(self.endpoint)
        if fault is not None:
            await self._apply_fault(fault)
            if self._finished:
                return
        user = self._authenticate(bearer)
        if user is None:
            logger.info(
                "devcluster unauthorized endpoint=%s token_fp=%s",
                self.endpoint,
                self._fingerprint,
            )
            self.reply(401, bodies.unauthorized())
            return
        self.user = user
        if not self.public and not self.authorized(user):
            self.reply(403, self.forbidden(user))

    def authorized(self, user: UserInfo) -> bool:
        """RBAC hook; the default lets any authenticated user in (``system:discovery``)."""
        return "system:authenticated" in user.groups

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        """The 403 body for this endpoint."""
        return bodies.forbidden_path(
            user.username, self.request.path, self.request.method.lower()
        )

    def _fault_error_body(self, fault: Fault) -> bytes:
        assert fault.status is not None
        return jws.go_json(
            bodies.fault_status(fault.status, self.user.username, self.request.path,
                                fault.retry_after)
        )

    def _bearer(self) -> str:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def _authenticate(self, bearer: str) -> UserInfo | None:
        """x509 first, then bearer; a bad bearer token is 401, never anonymous."""
        try:
            cert = self.request.get_ssl_certificate()
            der = self.request.get_ssl_certificate(binary_form=True)
        except AttributeError:
            # Tornado leaves the stream's socket None once the client has hung up.
            cert = der = None
        if isinstance(cert, dict) and cert.get("subject"):
            # Only CA-verified certificates get this far (CERT_OPTIONAL + CA).
            fields = [item for rdn in cert["subject"] for item in rdn]
            common = [v for k, v in fields if k == "commonName"]
            orgs = tuple(v for k, v in fields if k == "organizationName")
            if common:
                # x509.go's CommonNameUserConversion (1.31+) names the certificate in extra.
                extra = (
                    {_CREDENTIAL_ID: [f"X509SHA256={hashlib.sha256(der).hexdigest()}"]}
                    if isinstance(der, bytes)
                    else {}
                )
                return UserInfo(common[0], "", (*orgs, "system:authenticated"), extra)
        if not bearer:
            return ANONYMOUS_USER
        if hmac.compare_digest(bearer.encode(), self.state.admin_token.encode()):
            return ADMIN_USER
        review = self.state.validator.review(bearer)
        if review.user is None:
            logger.info(
                "devcluster rejected bearer token_fp=%s error=%s",
                self._fingerprint,
                review.error,
            )
        return review.user

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors Tornado raises itself (405, 500) also come out as metav1.Status."""
        if status_code == 405:
            body = bodies.status(
                405,
                "the server does not allow this method on the requested resource",
                "MethodNotAllowed",
                {},
            )
        else:
            body = bodies.fault_status(
                status_code, self.user.username, self.request.path, None
            )
        self.set_header("Content-Type", _JSON)
        self.finish(jws.go_json(body))

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        """Record the request *before* the answer leaves.

        ``on_finish`` would run after the bytes are written, so a test thread
        could read the response and count requests before the record exists.
        """
        if not self._finished:
            self._record(self.get_status())
        return super().finish(chunk)

    def _record(self, status: int) -> None:
        headers = {}
        for name in ("Cache-Control", "Content-Type"):
            if name in self.request.headers:
                headers[name] = self.request.headers[name]
        if self._fingerprint:
            headers["Authorization-Fingerprint"] = self._fingerprint
        self.state.requests.add(
            RequestRecord(
                self.endpoint,
                self.request.method or "",
                self.request.path,
                status,
                headers,
                self.state.clock(),
            )
        )


def read_object(handler: KubeHandler, kind: str) -> dict[str, Any] | None:
    """The request body as a dict, or None once the request is answered.

    In the API server's order (handlers/create.go): 406 when the Accept header names nothing
    the emulator writes, 415 for a Content-Type it does not read, 400 for a body that does
    not decode. A protobuf body comes out in the same shape as a JSON one.
    """
    if handler.answer_type is None:
        handler.reply(406, negotiation.not_acceptable())
        return None
    media = negotiation.input_media_type(handler.request.headers.get("Content-Type"))
    if media is None:
        handler.reply(415, negotiation.unsupported_media_type())
        return None
    if media == negotiation.PROTOBUF:
        try:
            return kubeproto.decode(handler.request.body, API_VERSION, kind)
        except kubeproto.ProtobufError as exc:
            logger.info("devcluster undecodable protobuf body endpoint=%s", handler.endpoint)
            handler.reply(400, bodies.bad_request(str(exc)))
            return None
    return json_body(handler)


def json_body(handler: KubeHandler) -> dict[str, Any] | None:
    """Parse a JSON request body, answering 400 like the API server when it is unusable."""
    try:
        body = json.loads(handler.request.body or b"{}")
    except ValueError as exc:
        handler.reply(
            400, bodies.bad_request(f"couldn't get version/kind; json parse error: {exc}")
        )
        return None
    if not isinstance(body, dict):
        handler.reply(
            400,
            bodies.bad_request(
                "couldn't get version/kind; json parse error: not an object"
            ),
        )
        return None
    return body
