"""Run a user's Tornado application on loopback, verifying tokens against the emulator (the
``devcluster_serve`` fixture in fixtures.py).

The one module of the test kit that uses the library: it builds the ``Authenticator`` the way a
service does (``AuthSettings.from_env``, ``Authenticator.connect``, ``start()``), from a
kubeconfig of the emulator. No emulator module imports it (tests/test_layering.py), so the
emulator still shares no code with the verifier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from compass_auth import Authenticator, AuthSettings
from compass_auth.testing.core import DEFAULT_AUDIENCE

#: What ``devcluster_serve`` runs: an ``Application`` (the authenticator goes into its settings),
#: the handler rules of one, or a factory that takes the authenticator (``make_app(auth)``).
AppSpec = (
    tornado.web.Application
    | Callable[[Authenticator], tornado.web.Application]
    | Sequence[Any]
)


class KeysNotLoaded(RuntimeError):
    """Start-up discovery ended without keys, so requests would be verified by TokenReview."""


@dataclass
class ServedApp:
    """An application listening on a loopback port, with its started authenticator."""

    url: str
    authenticator: Authenticator
    server: tornado.httpserver.HTTPServer

    async def close(self) -> None:
        self.server.stop()
        await self.server.close_all_connections()
        await self.authenticator.close()


async def serve_app(
    app: AppSpec,
    kubeconfig: Path,
    environ: Mapping[str, str] | None = None,
    *,
    require_local_keys: bool = True,
) -> ServedApp:
    """Start ``app`` on ``127.0.0.1`` with an authenticator configured from ``environ`` (the
    ``AUTH_*`` variables; the process environment is not read) and ``kubeconfig``.

    Returns once start-up discovery has finished (``Authenticator.wait_started()``). With
    ``require_local_keys`` (and a mode other than ``AUTH_MODE=review``) the keys must be loaded
    by then, so the first request is verified locally, as in a healthy cluster: otherwise
    ``KeysNotLoaded``. Pass ``False`` to test the TokenReview fallback (a discovery fault set
    before serving).
    """
    # The audience devcluster.mint() puts in tokens, unless the test names its own.
    variables = {"AUTH_AUDIENCE": DEFAULT_AUDIENCE, **(environ or {}),
                 "KUBECONFIG": str(kubeconfig)}
    settings = AuthSettings.from_env(variables)
    authenticator = await Authenticator.connect(settings, variables)
    try:
        authenticator.start()
        await authenticator.wait_started()
        if (require_local_keys and settings.mode != "review"
                and authenticator.active_path() != "jwks"):
            raise KeysNotLoaded(
                "start-up discovery against the emulator loaded no keys (a fault set before "
                "serving?); pass require_local_keys=False to test the TokenReview fallback")
        application = _application(app, authenticator)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(application)
        server.add_sockets(sockets)
    except BaseException:
        await authenticator.close()
        raise
    port = sockets[0].getsockname()[1]
    return ServedApp(f"http://127.0.0.1:{port}", authenticator, server)


def _application(app: AppSpec, authenticator: Authenticator) -> tornado.web.Application:
    # An Application is callable too: test for it first.
    if isinstance(app, tornado.web.Application):
        if app.settings.get("authenticator") not in (None, authenticator):
            raise ValueError("the application already has an authenticator: pass its handler "
                             "rules, or a factory taking the authenticator")
        app.settings["authenticator"] = authenticator
        return app
    if callable(app):
        built = app(authenticator)
        if not isinstance(built, tornado.web.Application):
            raise TypeError(f"the factory returned {type(built).__name__}, not an Application")
        return built
    return tornado.web.Application(list(app), authenticator=authenticator)
