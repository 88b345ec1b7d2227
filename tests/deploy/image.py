"""Build the Dockerfile with buildah, without a Docker engine or a registry.

Container registries are out of reach here (only PyPI and the Debian archive are), so the
``python:3.11-slim-bookworm`` base cannot be pulled. Instead a base of the same distribution is
made with mmdebstrap (Debian's python3 3.11 and pip, documentation left out as the slim images
do) and passed as the ``PYTHON_IMAGE`` build argument; the Dockerfile itself is built unchanged.
Everything lives in a private storage folder, removed afterwards, so a run leaves nothing in the
machine's image store.

Needs root (buildah's chroot isolation and mmdebstrap's root mode), buildah and mmdebstrap
(scripts/install-image-tools.sh), and network access to PyPI (pip in the build stage) and the
Debian archive (mmdebstrap uses the host's apt sources). ``image_tools_problem`` says when the
first two are not there: the tests then skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .tools import ROOT, run, tool

SUITE = "bookworm"  # the distribution of python:3.11-slim-bookworm
BASE_PACKAGES = "python3,python3-pip,ca-certificates"
BASE_TAG = f"localhost/compass-image-test-python:{SUITE}"
#: The host's trust store, mounted over the base's while RUN steps execute (not kept in the
#: image): pip in the build then trusts whatever the host trusts, a TLS-inspecting proxy too.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class Buildah:
    """buildah with its own storage under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.executable = tool("buildah")
        self.global_flags = ["--root", str(workdir / "storage"),
                             "--runroot", str(workdir / "run")]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return run(self.executable, *self.global_flags, *args, timeout=timeout).stdout.strip()

    def command(self, *args: str) -> list[str]:
        return [self.executable, *self.global_flags, *args]

    def build_debian_base(self) -> str:
        """A Debian image with python3 and pip, tagged BASE_TAG (about 35 s)."""
        container = self("from", "scratch")
        mountpoint = self("mount", container)
        # Straight into the empty container: no copy. "essential" (no apt in the image) is the
        # smallest variant; no mirror argument: the host's apt sources are used.
        run(tool("mmdebstrap"), "--quiet", "--variant=essential", f"--include={BASE_PACKAGES}",
            *(f"--dpkgopt=path-exclude=/usr/share/{folder}/*" for folder in ("doc", "man",
                                                                             "locale")),
            SUITE, mountpoint, timeout=600)
        self("umount", container)
        self("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--env", "LANG=C.UTF-8", container)
        self("commit", "--quiet", container, BASE_TAG)
        self("rm", container)
        return BASE_TAG

    def build(self, tag: str, base: str) -> None:
        volumes = []
        if HOST_CA_BUNDLE.is_file():
            volumes = ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        self("bud", "--isolation", "chroot", "--pull=never", "--quiet",
             "--build-arg", f"PYTHON_IMAGE={base}", *volumes, "--tag", tag, str(ROOT),
             timeout=600)

    def inspect(self, tag: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self("inspect", "--type", "image", tag))
        return result

    def clean(self) -> None:
        subprocess.run(self.command("rm", "--all"), capture_output=True, check=False)
        subprocess.run(self.command("rmi", "--all", "--force"), capture_output=True, check=False)
        # Overlay layers may stay mounted if a test died half-way.
        for mount in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            target = mount.split()[1]
            if target.startswith(str(self.workdir)):
                subprocess.run(["umount", "-l", target], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def command_line(pid: int) -> list[str]:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


#: How to get the image tests to run, for the skip and failure messages.
ENABLE_IMAGE_TESTS = "run scripts/install-image-tools.sh and the tests as root (Debian 12+)"


def image_tools_problem(
    euid: int | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """Why the image cannot be built on this machine (no root, missing tools), or None."""
    problems = []
    if (os.geteuid() if euid is None else euid) != 0:
        problems.append("not root (buildah's chroot isolation and mmdebstrap need it)")
    missing = [name for name in ("buildah", "mmdebstrap") if which(name) is None]
    if missing:
        problems.append(f"{' and '.join(missing)} not installed")
    return "; ".join(problems) or None


def image_tests_required(environ: Mapping[str, str] = os.environ) -> bool:
    """Under CI=true the image tests must run: missing tools fail them instead of skipping."""
    return environ.get("CI", "").lower() == "true"
