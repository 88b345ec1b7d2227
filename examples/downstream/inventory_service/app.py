"""The service: four handlers on compass-auth's public API and nothing else.

* ``GET /stock/<sku>``: the ``allowed_subjects`` class attribute limits it to the checkout
  workload; any other valid caller gets 403.
* ``POST /reservations/<sku>``: the same, plus a check of our own in ``prepare()``: the token
  must be bound to a pod (a token bound only to the service account could have been requested
  by anyone with ``create serviceaccounts/token``, e.g. a CI job).
* ``GET /audits/<namespace>``: Kubernetes RBAC decides (``required_access``): the caller needs
  ``get`` on ``audits.inventory.example.com`` in that namespace, granted by a RoleBinding.
* ``/ws/stock``: a WebSocket for the checkout workload that answers stock levels; it is closed
  (1008, ``token expired``) when the caller's token expires.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

import tornado.web

from compass_auth import (
    AuthenticatedHandler,
    Authenticator,
    AuthSettings,
    ResourceCheck,
    SubjectNotAllowed,
)
from compass_auth.tornado.websocket import AuthenticatedWebSocketHandler

#: The only workload that may read stock levels or reserve items.
CHECKOUT = "system:serviceaccount:shop:checkout"
#: Tokens must name this audience (``AUTH_AUDIENCE``); callers request it in their projected
#: token's ``audience``.
AUDIENCE = "inventory"

STOCK = {"widget": 12, "gadget": 0}


class StockHandler(AuthenticatedHandler):
    """How many of an item are left."""

    allowed_subjects = frozenset({CHECKOUT})

    async def get(self, sku: str) -> None:
        if sku not in STOCK:
            raise tornado.web.HTTPError(404)
        self.write({"sku": sku, "available": STOCK[sku], "caller": caller(self)})


class ReservationHandler(AuthenticatedHandler):
    """Reserve one item; only from a pod of the checkout workload."""

    allowed_subjects = frozenset({CHECKOUT})

    async def prepare(self) -> None:
        # Authentication first, always: it sets self.identity (or answers 401/403 itself).
        await super().prepare()
        if self.identity.pod_name is None:
            # The library's own 403: same JSON body and WWW-Authenticate challenge as its checks.
            self.send_auth_error(SubjectNotAllowed(
                f"{self.identity.subject} sent a token not bound to a pod",
                "reservations need a pod-bound token",
            ))

    async def post(self, sku: str) -> None:
        if STOCK.get(sku, 0) < 1:
            raise tornado.web.HTTPError(409)
        self.set_status(201)
        self.write({"sku": sku, "reserved": 1, "caller": caller(self)})


class AuditHandler(AuthenticatedHandler):
    """The audit trail of a namespace, for whoever RBAC lets read it."""

    # {namespace} is the route's named argument; the API server answers a SubjectAccessReview.
    required_access = (
        ResourceCheck("get", "audits", group="inventory.example.com", namespace="{namespace}"),
    )

    async def get(self, namespace: str) -> None:
        self.write({"namespace": namespace, "entries": [], "caller": caller(self)})


class StockFeed(AuthenticatedWebSocketHandler):
    """Send a SKU, get its stock level; for the checkout workload, until its token expires."""

    allowed_subjects = frozenset({CHECKOUT})

    def open(self) -> None:
        self.write_message({"hello": self.identity.subject})

    def on_message(self, message: str | bytes) -> None:
        sku = message.decode() if isinstance(message, bytes) else message
        self.write_message({"sku": sku, "available": STOCK.get(sku, 0)})


def caller(handler: AuthenticatedHandler) -> dict[str, str | None]:
    identity = handler.identity
    return {
        "subject": identity.subject,
        "namespace": identity.namespace,
        "service_account": identity.service_account,
        "pod": identity.pod_name,
    }


def make_app(authenticator: Authenticator) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/stock/([a-z0-9-]+)", StockHandler),
            (r"/reservations/([a-z0-9-]+)", ReservationHandler),
            (r"/audits/(?P<namespace>[a-z0-9-]+)", AuditHandler),
            (r"/ws/stock", StockFeed),
        ],
        authenticator=authenticator,
    )


async def connect(environ: Mapping[str, str]) -> Authenticator:
    """The authenticator for our audience, started (discovery runs in the background)."""
    settings = AuthSettings.from_env({"AUTH_AUDIENCE": AUDIENCE, **environ})
    authenticator = await Authenticator.connect(settings, environ)
    authenticator.start()
    return authenticator


async def serve(port: int) -> None:
    authenticator = await connect(os.environ)
    make_app(authenticator).listen(port)
    await asyncio.Event().wait()


def main() -> None:
    asyncio.run(serve(int(os.environ.get("PORT", "8080"))))
