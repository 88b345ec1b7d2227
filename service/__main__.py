"""Command line: ``python -m service serve``, ``python -m service demo`` or ``... call``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from compass_auth.cli import prog_name, version_text

# Constants only: the app module (tornado, the SDK) is imported for `serve` alone.
from .limits import IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_WEBSOCKETS

T = TypeVar("T", int, float)


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type: a number of ``kind`` above zero."""

    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above zero: {text!r}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    program = prog_name("service")
    parser = argparse.ArgumentParser(
        prog=program,
        description="compass-auth's example service: verify Kubernetes service-account tokens.",
    )
    parser.add_argument("--version", action="version", version=version_text(program))
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the example service (settings from AUTH_*)")
    # In a pod the service must listen on the pod IP; locally, pass --host 127.0.0.1.
    serve.add_argument(
        "--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)"  # noqa: S104
    )
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--drain-seconds", type=float, default=10.0,
                       help="on SIGTERM, how long requests in flight may take (default 10)")
    serve.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                       help="event loop: auto (the default) is uvloop when installed (pip "
                       "install 'compass-auth[service]' installs it), else asyncio")
    serve.add_argument("--max-connections", type=_positive(int), default=MAX_CONNECTIONS,
                       help="open connections held at most, WebSockets included; more are "
                       f"closed at once (default {MAX_CONNECTIONS}); with the process's own "
                       "descriptors it must fit under the file descriptor limit, or the service "
                       "refuses to start")
    serve.add_argument("--max-connections-per-address", type=_positive(int), default=None,
                       metavar="N",
                       help="open connections from one client address at most (default: half "
                       "of --max-connections); behind a proxy or sidecar every caller shares "
                       "its address: raise it to --max-connections there")
    serve.add_argument("--max-websockets", type=_positive(int), default=MAX_WEBSOCKETS,
                       help="WebSockets open at most, within --max-connections; more get 503 "
                       f"(default {MAX_WEBSOCKETS})")
    serve.add_argument("--idle-timeout", type=_positive(float), default=IDLE_TIMEOUT,
                       help="seconds a connection may take to send a request's headers or body, "
                       f"or stay idle (default {IDLE_TIMEOUT:g})")
    demo = commands.add_parser(
        "demo", help="run the emulator and the service, print the case table")
    demo.add_argument("--telemetry", choices=("none", "console"), default="none",
                      help="console: also print every span of the demo's requests")
    call = commands.add_parser(
        "call", help="call a URL periodically with the bearer token in a (rotating) file"
    )
    call.add_argument("--url", required=True, help="e.g. http://compass-auth:8080/whoami")
    call.add_argument("--token-file", required=True,
                      help="token file, re-read whenever it changes (projected volume)")
    call.add_argument("--interval", type=float, default=5.0,
                      help="seconds between calls (default 5)")
    call.add_argument("--count", type=int, default=None,
                      help="stop after N calls, exit 0 only if all were allowed (default: run "
                      "until SIGTERM)")
    call.add_argument("--timeout", type=float, default=5.0,
                      help="seconds per call (default 5)")
    args = parser.parse_args(argv)
    if args.command == "call":
        from .caller import main as call_main

        return call_main(args.url, args.token_file, args.interval, args.count, args.timeout)
    if args.command == "serve":
        from .app import main as serve_main

        return serve_main(args.host, args.port, args.drain_seconds, args.loop,
                          max_connections=args.max_connections,
                          idle_timeout=args.idle_timeout,
                          max_websockets=args.max_websockets,
                          max_connections_per_address=args.max_connections_per_address)
    from .demo import main as demo_main

    return int(demo_main(args.telemetry))


if __name__ == "__main__":
    sys.exit(main())
