"""A Tornado service that lets in only callers with a valid Kubernetes service-account token."""

import asyncio
import logging
import os
import signal

import tornado.web

from compass_auth import AuthenticatedHandler, AuthSettings, connect


class Hello(AuthenticatedHandler):
    # Optional: who may call this handler (a valid token of another account gets 403).
    allowed_subjects = frozenset({"system:serviceaccount:default:collector"})

    async def get(self) -> None:
        caller = self.identity  # the verified caller: an Identity, never raw claims
        self.write({"hello": caller.subject, "pod": caller.pod_name})


async def main() -> None:
    # AUTH_AUDIENCE and the other AUTH_* variables; a bad value stops here, naming it.
    settings = AuthSettings.from_env(os.environ)
    # In a pod: the mounted service account; elsewhere: KUBECONFIG or ~/.kube/config.
    authenticator = await connect(settings, os.environ)
    authenticator.start()  # discovery in the background; TokenReview verifies meanwhile
    app = tornado.web.Application([(r"/hello", Hello)], authenticator=authenticator)
    server = app.listen(int(os.environ.get("PORT", "8080")),
                        address=os.environ.get("HOST", "127.0.0.1"))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()  # no new connections
    await server.close_all_connections()
    await authenticator.close()  # background tasks and the API-server connection


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
