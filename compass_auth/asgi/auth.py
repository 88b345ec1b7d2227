"""``Auth``: the ``Authenticator`` of an ASGI application, and its lifespan.

An ASGI application is built before its event loop runs, and an ``Authenticator`` must be
connected inside the loop (kubernetes-asyncio's client session belongs to it). ``Auth`` is the
handle routes and middleware hold from the start; its ``lifespan`` connects the authenticator,
starts discovery and waits for the start-up attempt (so the first request takes the path a
healthy cluster gives: local verification when the key set loaded), and closes it at shutdown::

    auth = Auth(os.environ)
    app = Starlette(routes=..., lifespan=auth.lifespan)

Given the application, it also refuses to start when a route cannot fill a template of its
checks (``routes.check_routes``), with a sentence naming the setting and the route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from ..core.caller_slots import CallerSlots
from ..settings import AuthSettings
from ..telemetry import Telemetry
from ..verification.authenticator import Authenticator
from .routes import check_routes


class NotStarted(RuntimeError):
    """A request arrived before the lifespan connected the authenticator."""


class Auth:
    """The authenticator of one ASGI application (one audience).

    Give it the ``AUTH_*`` variables (``environ``: read once, by the lifespan) or ``settings``;
    or an ``authenticator`` already connected and started, which its owner closes (tests,
    applications that share one). ``telemetry`` is the library's ``Telemetry`` over the
    application's OpenTelemetry providers (the global ones when omitted).
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 settings: AuthSettings | None = None,
                 authenticator: Authenticator | None = None,
                 telemetry: Telemetry | None = None) -> None:
        self._environ = dict(environ) if environ is not None else None
        self._settings = settings
        self._telemetry = telemetry
        self._owned = authenticator is None
        self._authenticator = authenticator
        #: WebSocket connections per caller, for ``AUTH_WEBSOCKET_MAX_PER_CALLER``: every route
        #: of the application counts together, as the handlers of a Tornado application do.
        self.websocket_slots = CallerSlots()

    @property
    def authenticator(self) -> Authenticator:
        """The connected authenticator; ``NotStarted`` before the lifespan ran."""
        authenticator = self._authenticator
        if authenticator is None:
            raise NotStarted("compass_auth.asgi.Auth has no authenticator yet: pass "
                             "lifespan=auth.lifespan to the application (or enter "
                             "auth.running() in your own lifespan)")
        return authenticator

    @asynccontextmanager
    async def running(self, app: Any = None) -> AsyncIterator[Authenticator]:
        """Connect, check ``app``'s routes (``routes.check_routes``: ``RouteAccessError``),
        start and wait for start-up discovery; close on exit. With an authenticator given to
        the constructor, only check the routes and yield it (its owner closes it)."""
        if not self._owned:
            if app is not None:
                check_routes(app, self, self.authenticator)
            yield self.authenticator
            return
        environ = self._environ if self._environ is not None else {}
        settings = self._settings or AuthSettings.from_env(environ)
        authenticator = await Authenticator.connect(settings, environ, self._telemetry)
        try:
            if app is not None:
                # Before anything starts: a route that cannot fill its checks refuses the
                # start, as compass_auth.check_routes does for a Tornado application.
                check_routes(app, self, authenticator)
            authenticator.start()
            # Until the first discovery attempt ends TokenReview verifies: the first requests
            # then cost a review each. A failed attempt ends the wait too (fallback).
            await authenticator.wait_started()
            self._authenticator = authenticator
            yield authenticator
        finally:
            self._authenticator = None
            await authenticator.close()

    def lifespan(self, app: Any) -> AbstractAsyncContextManager[None]:
        """A Starlette/FastAPI ``lifespan``: ``running(app)`` around the application's life."""
        return _without_state(self.running(app))


@asynccontextmanager
async def _without_state(running: AbstractAsyncContextManager[Authenticator]
                         ) -> AsyncIterator[None]:
    # A lifespan that yields a value hands it to every request as state; the authenticator is
    # reached through Auth instead.
    async with running:
        yield
