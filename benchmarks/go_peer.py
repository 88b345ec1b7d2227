"""The Go peer of the benchmark suite: build it from Debian's packages, and its command line.

``benchmarks/gopeer/main.go`` is Gin plus go-oidc's ``IDTokenVerifier`` verifying the bearer
token of every request (no cache of verified tokens). It builds offline, in GOPATH mode, against
the library sources Debian installs under ``/usr/share/gocode/src``: no Go module is downloaded.
``make bench`` installs the packages when missing (``benchmarks/gopeer/install.sh``); without
them :func:`build` says why, and the suite prints no ratio against Go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "gopeer"
BUILD_DIR = SOURCE / "build"  # git-ignored
BINARY = BUILD_DIR / "gopeer"
#: Where Debian's golang-*-dev packages put their sources (the Debian Go packaging policy).
GOPATH = Path("/usr/share/gocode")
PACKAGES = ("golang-go", "golang-github-coreos-go-oidc-dev", "golang-github-gin-gonic-gin-dev")
LIBRARIES = ("github.com/coreos/go-oidc", "github.com/gin-gonic/gin")
#: One OS thread runs Go code, as one Python process runs one thread of Python.
ENVIRONMENT = {"GOMAXPROCS": "1"}
#: A first build compiles Gin and its dependencies: ~10 s on two cores, then cached.
BUILD_TIMEOUT = 600
INSTALL_HINT = ("`make bench` installs " + ", ".join(PACKAGES) + " from Debian when missing")


@dataclass(frozen=True)
class Build:
    """The binary, or why there is none; ``versions`` names what it was built from."""

    binary: Path | None
    reason: str = ""
    versions: dict[str, str] = field(default_factory=dict)


def build() -> Build:
    go = shutil.which("go")
    if go is None:
        return Build(None, f"the Go toolchain is not installed ({INSTALL_HINT})")
    missing = [library for library in LIBRARIES if not (GOPATH / "src" / library).is_dir()]
    if missing:
        return Build(None, f"no source of {', '.join(missing)} under {GOPATH}/src "
                           f"({INSTALL_HINT})")
    environ = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH),
               "GOCACHE": str(BUILD_DIR / "cache"), "GOFLAGS": "", "GOPROXY": "off",
               "GOTOOLCHAIN": "local"}
    BUILD_DIR.mkdir(exist_ok=True)
    try:
        result = subprocess.run([go, "build", "-o", str(BINARY), "."], cwd=SOURCE, env=environ,
                                capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                                check=False)
    except subprocess.TimeoutExpired:
        return Build(None, f"go build did not finish in {BUILD_TIMEOUT} s")
    if result.returncode != 0:
        return Build(None, "go build failed: " + result.stderr.strip()[-800:])
    return Build(BINARY, versions=_versions(go))


def command(binary: Path, port: int, *, issuer: str, audience: str, jwks_url: str,
            serviceaccount_dir: Path) -> list[str]:
    return [str(binary), "-listen", f"127.0.0.1:{port}", "-issuer", issuer,
            "-audience", audience, "-jwks-url", jwks_url,
            "-serviceaccount-dir", str(serviceaccount_dir)]


def _versions(go: str) -> dict[str, str]:
    found = {"go": subprocess.run([go, "version"], capture_output=True, text=True,
                                  check=False).stdout.strip()}
    if shutil.which("dpkg-query"):
        listing = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n",
                                  *PACKAGES], capture_output=True, text=True, check=False)
        for line in listing.stdout.splitlines():
            package, _, version = line.partition(" ")
            found[package] = version
    return found
