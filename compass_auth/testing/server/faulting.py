"""How a handler of either emulator (the API server's ``KubeHandler``, the OIDC issuer's
``IssuerHandler``) carries out a ``Fault``: written once, each handler supplying its own error
body."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import tornado.web

from compass_auth.testing.server.faults import Fault

_JSON = "application/json"


class FaultingHandler(tornado.web.RequestHandler):
    """Base of the emulators' handlers: :meth:`_apply_fault`, given their ``reply``, ``_record``
    and ``_fault_error_body``.

    ``content_type``: of a normal answer; a ``Fault(body=...)`` keeps it.
    """

    content_type: ClassVar[str] = _JSON

    def reply(self, status: int, body: bytes, content_type: str = _JSON) -> None:
        raise NotImplementedError

    def _record(self, status: int) -> None:
        raise NotImplementedError

    def _fault_error_body(self, fault: Fault) -> bytes:
        """The body of a ``Fault(status=...)`` given none, worded as the emulated server would."""
        raise NotImplementedError

    async def _apply_fault(self, fault: Fault) -> None:
        if fault.delay:
            # An async sleep, never time.sleep: other requests go on meanwhile.
            await asyncio.sleep(fault.delay)
        if fault.drop:
            # Record first: once the socket closes the client may look at the log.
            self._record(0)
            # Close the socket without a byte of HTTP, like a crashed peer or an LB reset.
            # HTTP1Connection.close() (not in the HTTPConnection interface) also
            # resolves the connection's pending futures, so nothing hangs.
            self.request.connection.close()  # type: ignore[union-attr]
            self._finished = True
            return
        if fault.retry_after is not None:
            self.set_header("Retry-After", str(fault.retry_after))
        if fault.location is not None:
            self.set_header("Location", fault.location)
        if fault.status is not None:
            body = fault.body
            if body is None:
                body = b"" if 300 <= fault.status < 400 else self._fault_error_body(fault)
            self.reply(fault.status, body)
        elif fault.body is not None:
            self.reply(200, fault.body, self.content_type)
