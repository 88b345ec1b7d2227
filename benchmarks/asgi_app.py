"""The example ASGI service (examples/asgi_service) as the benchmarks run it: one uvicorn process
(httptools, uvloop), the OpenTelemetry SDK configured from ``OTEL_*`` as the Tornado service
configures it (service/otel.py), and ``COMPASS_NO_AUTH=1`` for the same app without
authentication.

    python -m benchmarks.asgi_app --port P   (settings from AUTH_*/OTEL_*)
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Any

import uvicorn
from opentelemetry import metrics, trace

from compass_auth.asgi import Auth
from compass_auth.telemetry import Telemetry
from examples.asgi_service.app import make_app
from service import otel


class FreezeAfterStartup:
    """``gc.freeze()`` once the lifespan has started, as the Tornado service does once
    listening: start-up objects then cost no collection while requests are served."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
            await send(message)

        await self.app(scope, receive, sending)


def build() -> Any:
    environ = dict(os.environ)
    setup = None if otel.sdk_disabled(environ) else otel.configure(environ)
    telemetry = (Telemetry(setup.tracer_provider, setup.meter_provider) if setup is not None
                 else Telemetry(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider()))
    auth = Auth(environ, telemetry=telemetry)
    return FreezeAfterStartup(make_app(auth, authenticate=environ.get("COMPASS_NO_AUTH") != "1"))


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build(), host=args.host, port=args.port, loop="uvloop", http="httptools",
                log_level="error", access_log=False, lifespan="on")
    return 0


if __name__ == "__main__":
    sys.exit(run())
