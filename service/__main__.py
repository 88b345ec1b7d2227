"""Command line: ``python -m service serve`` or ``python -m service demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="compass-auth: verify Kubernetes service-account tokens.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the example service (settings from AUTH_*)")
    # In a pod the service must listen on the pod IP; locally, pass --host 127.0.0.1.
    serve.add_argument(
        "--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)"  # noqa: S104
    )
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--drain-seconds", type=float, default=10.0,
                       help="on SIGTERM, how long requests in flight may take (default 10)")
    serve.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                       help="event loop (uvloop needs: pip install 'compass-auth[speed]')")
    demo = commands.add_parser(
        "demo", help="run the emulator and the service, print the case table")
    demo.add_argument("--telemetry", choices=("none", "console"), default="none",
                      help="console: also print every span of the demo's requests")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from .app import main as serve_main

        return serve_main(args.host, args.port, args.drain_seconds, args.loop)
    from .demo import main as demo_main

    return int(demo_main(args.telemetry))


if __name__ == "__main__":
    sys.exit(main())
