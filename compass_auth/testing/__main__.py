"""``python -m compass_auth.testing``: run the emulator until Ctrl-C (or SIGTERM).

Prints the URL, CA file, two kubeconfigs (the service's account, and an admin
with a client certificate), a service-account folder and a sample token, so a
service, or kubectl, can be pointed at it by hand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from compass_auth.cli import prog_name, version_text
from compass_auth.testing.cluster import DevCluster
from compass_auth.testing.rbac.store import ManifestError

logger = logging.getLogger(__name__)

# Long enough for an afternoon of manual testing; tests use short lifetimes.
_DEMO_TOKEN_LIFETIME = 8 * 3600
#: ``--help``'s text: plain words (argparse prints it as it is, so no reST markup).
DESCRIPTION = (
    "Run a Kubernetes API server emulator (OIDC discovery, JWKS, TokenReview, "
    "SubjectAccessReview and RBAC) on loopback until Ctrl-C. It prints its URL, CA file, "
    "kubeconfigs, a service-account folder, a sample token and the variables to start your "
    "service with; the files are removed when it stops."
)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the emulator, print how to use it, wait for Ctrl-C."""
    program = prog_name("compass_auth.testing")
    parser = argparse.ArgumentParser(
        prog=program, description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text(program))
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (a loopback address: tests and local runs)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument(
        "--issuer", default="https://kubernetes.default.svc.cluster.local",
        help="the issuer that discovery declares and tokens carry in iss",
    )
    parser.add_argument("--key-type", choices=("RSA", "EC"), default="RSA",
                        help="type of the signing key (RS256 or ES256 tokens)")
    parser.add_argument(
        "--audience",
        default="compass-internal",
        help="audience of the printed sample token, and AUTH_AUDIENCE of the printed commands",
    )
    parser.add_argument(
        "--rbac",
        action="append",
        default=[],
        metavar="FILE",
        help="load Roles, ClusterRoles, RoleBindings and ClusterRoleBindings (and create the "
        "ServiceAccounts) from a multi-document YAML file, e.g. the output of "
        "kubectl kustomize k8s/; '-' reads standard input; may be repeated. "
        "SubjectAccessReview answers from them and the built-in roles",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    cluster = DevCluster(
        issuer=args.issuer, key_type=args.key_type, host=args.host, port=args.port
    )
    for source in args.rbac:
        # Loaded before serving, and kept: reset() only drops what tests add later.
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
            count = cluster.load_rbac(text, persistent=True)
        except (OSError, ManifestError) as exc:
            # A missing or refused file: one sentence, no traceback, exit status 2.
            parser.error(f"--rbac {source}: {exc}")
        print(f"rbac:           {count} objects from {source}")
    # SIGTERM (a process manager, `kill`, a test) stops it like Ctrl-C: the files, which hold
    # key material, are removed. SIGINT keeps Python's handling: a shell that started us in
    # the background with SIGINT ignored meant Ctrl-C for something else.
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C may arrive at any point, even while printing: the context
    # manager still stops the server and removes the files.
    try:
        with cluster:
            workdir = cluster.ca_path.parent
            kubeconfig = cluster.write_kubeconfig(
                workdir / "kubeconfig", lifetime=_DEMO_TOKEN_LIFETIME
            )
            # kubectl --kubeconfig this create token collector: TokenRequest needs an admin.
            admin_kubeconfig = cluster.write_kubeconfig(
                workdir / "admin.kubeconfig", auth="client-cert", namespace="default"
            )
            sa_dir = cluster.write_serviceaccount_dir(workdir / "serviceaccount")
            sample = cluster.mint(
                audiences=(args.audience,), lifetime=_DEMO_TOKEN_LIFETIME
            )
            environ = " ".join(
                f"{k}={v}" for k, v in cluster.incluster_environ().items()
            )
            print(f"url:            {cluster.url}")
            print(f"issuer:         {cluster.issuer}")
            print(f"ca:             {cluster.ca_path}")
            print(f"kubeconfig:     {kubeconfig}")
            print(f"admin kubeconfig: {admin_kubeconfig}")
            print(f"serviceaccount: {sa_dir}  ({environ})")
            print(f"admin token:    {cluster.admin_token}")
            print(f"sample token (aud {args.audience}, pod-bound):\n{sample}")
            token_file = workdir / "sample-token"
            token_file.write_text(sample)
            # Ready to paste in another terminal. Any service that builds its Authenticator with
            # Authenticator.connect(settings, os.environ) reads KUBECONFIG, as the README's
            # quick start does; the example service (`python -m service`) is not in the wheel.
            variables = f"KUBECONFIG={kubeconfig} AUTH_AUDIENCE={args.audience}"
            print(f"your service:   {variables} python YOUR_SERVICE.py")
            print(f"in a compass-auth checkout: {variables} {sys.executable} -m service serve "
                  "--host 127.0.0.1 --port 8080")
            print("call it:        curl -H \"Authorization: Bearer $(cat "
                  f"{token_file})\" http://127.0.0.1:8080/whoami  (your service's port and path)")
            print("files are removed on exit; press Ctrl-C to stop", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped")
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
