"""``authentication.k8s.io``: TokenReview, TokenRequest and SelfSubjectReview.

TokenRequest is a subresource of the core group's ServiceAccounts
(``/api/v1/namespaces/NS/serviceaccounts/NAME/token``) but answers with an
``authentication.k8s.io/v1`` object, so it lives here with the other two.
"""

from __future__ import annotations

import logging
from typing import Any

from compass_auth.testing.credentials.validation import UserInfo
from compass_auth.testing.server.pipeline import KubeHandler, read_object
from compass_auth.testing.server.requestlog import fingerprint
from compass_auth.testing.wire import bodies

logger = logging.getLogger(__name__)

# TokenRequest bounds from pkg/apis/authentication/validation (10 min .. 2^32 s).
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
DEFAULT_EXPIRATION_SECONDS = 3600


def _expiration_problem(seconds: object) -> str | None:
    """Why ``spec.expirationSeconds`` is refused (upstream's wording), or None."""
    if not isinstance(seconds, int) or seconds < MIN_EXPIRATION_SECONDS:
        return "may not specify a duration less than 10 minutes"
    if seconds > MAX_EXPIRATION_SECONDS:
        return "may not specify a duration larger than 2^32 seconds"
    return None


class TokenRequestHandler(KubeHandler):
    """``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`` (admins only)."""

    negotiates = True

    def authorized(self, user: UserInfo) -> bool:
        return "system:masters" in user.groups

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        namespace, name = self.path_kwargs["namespace"], self.path_kwargs["name"]
        return bodies.forbidden_token_request(user.username, namespace, name)

    def post(self, namespace: str, name: str) -> None:
        body = read_object(self, "TokenRequest")
        if body is None:
            return
        raw_spec = body.get("spec")
        spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
        objects = self.state.objects
        if objects.get("serviceaccount", namespace, name) is None:
            self.reply(
                404,
                bodies.status(
                    404,
                    f'serviceaccounts "{name}" not found',
                    "NotFound",
                    {"name": name, "kind": "serviceaccounts"},
                ),
            )
            return
        # null (kubectl before 1.32 sends it without --duration) is unset: the default.
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = DEFAULT_EXPIRATION_SECONDS
        problem = _expiration_problem(seconds)
        if problem is not None:
            self.reply(
                422,
                bodies.invalid(
                    "TokenRequest",
                    "authentication.k8s.io",
                    name,
                    "spec.expirationSeconds",
                    seconds,
                    problem,
                ),
            )
            return
        audiences = spec.get("audiences") or list(self.state.api_audiences)
        pod = node = None
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict):
            kind, ref_name = ref.get("kind"), str(ref.get("name", ""))
            found = objects.get(
                "pod" if kind == "Pod" else "node",
                namespace if kind == "Pod" else "",
                ref_name,
            )
            if kind not in ("Pod", "Node") or found is None:
                resource = "pods" if kind == "Pod" else "nodes"
                self.reply(
                    404,
                    bodies.status(
                        404,
                        f'{resource} "{ref_name}" not found',
                        "NotFound",
                        {"name": ref_name, "kind": resource},
                    ),
                )
                return
            if ref.get("uid") and ref["uid"] != found.uid:
                message = (
                    f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                    "in record. The object might have been deleted and then recreated"
                )
                self.reply(409, bodies.status(409, message, "Conflict", {}))
                return
            pod, node = (ref_name, found.node) if kind == "Pod" else (None, ref_name)
        now = int(self.state.clock())
        token = self.factory.mint(
            namespace=namespace,
            service_account=name,
            audiences=audiences,
            lifetime=seconds,
            pod=pod,
            node=node,
            issued_at=now,
            issuer=None,
            warnafter=None,
            claims_override=None,
            header_override=None,
            key_id=None,
        )
        echoed = {
            "audiences": audiences,
            "expirationSeconds": seconds,
            # The typed BoundObjectReference: its four strings, empty ones omitted.
            "boundObjectRef": (
                {k: str(ref[k]) for k in ("kind", "apiVersion", "name", "uid") if ref.get(k)}
                if isinstance(ref, dict)
                else None
            ),
        }
        self.reply(
            201, bodies.token_request(namespace, name, echoed, token, now + seconds, now)
        )


class SelfSubjectReviewHandler(KubeHandler):
    """``POST /apis/authentication.k8s.io/v1/selfsubjectreviews`` (``kubectl auth whoami``).

    Any authenticated user may ask (``system:basic-user``); the answer is the user this very
    request authenticated as, extra included (``selfsubjectreview/rest.go``).
    """

    negotiates = True

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        return bodies.forbidden_create(user.username, "selfsubjectreviews")

    def post(self) -> None:
        # The body says nothing the answer depends on, but it must decode.
        if read_object(self, "SelfSubjectReview") is None:
            return
        self.reply(201, bodies.self_subject_review(self.user, self.state.clock()))


class TokenReviewHandler(KubeHandler):
    """``POST /apis/authentication.k8s.io/v1/tokenreviews``."""

    negotiates = True

    def authorized(self, user: UserInfo) -> bool:
        return self.state.may_create_tokenreviews(user)

    def forbidden(self, user: UserInfo) -> dict[str, Any]:
        return bodies.forbidden_tokenreviews(user.username)

    def post(self) -> None:
        body = read_object(self, "TokenReview")
        if body is None:
            return
        # kind/apiVersion may be missing: the server defaults them from the URL.
        raw_spec = body.get("spec")
        spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
        token = spec.get("token") or ""
        audiences = spec.get("audiences") or []
        if not isinstance(token, str) or not token:
            self.reply(
                400,
                bodies.bad_request("token is required for TokenReview in authentication"),
            )
            return
        if not isinstance(audiences, list) or not all(
            isinstance(a, str) for a in audiences
        ):
            self.reply(
                400, bodies.bad_request("spec.audiences must be a list of strings")
            )
            return
        review = self.state.validator.review(token, audiences)
        logger.info(
            "devcluster tokenreview token_fp=%s authenticated=%s error=%s",
            fingerprint(token),
            review.authenticated,
            review.error,
        )
        echoed: dict[str, Any] = {"token": token}
        if audiences:
            echoed["audiences"] = audiences
        self.reply(201, bodies.token_review(echoed, review))
