"""Files a workload sees: a kubeconfig, or a pod's service-account folder.

The service-account folder mimics the kubelet's projected volume, written by
its AtomicWriter (``pkg/volume/util/atomic_writer.go``): the data lives in a
timestamped directory, ``..data`` is a symlink to it, and each visible file is
a symlink through ``..data``.  Rotation writes a new directory and renames a
fresh symlink over ``..data``, so readers see the old or the new token, never
half of one.  A reader that caches the open file or the resolved path misses
rotations, which is exactly what tests should catch.
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Literal

# PyYAML ships no stubs (types-PyYAML is not a dependency); it comes with kubernetes-asyncio.
import yaml  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

Layout = Literal["kubelet", "flat"]
DATA_LINK = "..data"
SA_FILES = ("ca.crt", "namespace", "token")


def kubeconfig_document(
    *,
    server: str,
    ca_pem: bytes,
    user_name: str,
    user: dict[str, str],
    namespace: str,
    cluster_name: str = "devcluster",
) -> dict[str, Any]:
    """A complete kubeconfig (``clientcmd/api/v1`` Config) with inline CA data."""
    context_name = f"{user_name}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(
                        "ascii"
                    ),
                    "server": server,
                },
            }
        ],
        "contexts": [
            {
                "name": context_name,
                "context": {
                    "cluster": cluster_name,
                    "namespace": namespace,
                    "user": user_name,
                },
            }
        ],
        "current-context": context_name,
        "preferences": {},
        "users": [{"name": user_name, "user": user}],
    }


def write_kubeconfig(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write ``document`` as YAML, readable by the owner only (it holds credentials)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(mode=0o600)
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def _timestamped_name() -> str:
    # AtomicWriter's format: "..2006_01_02_15_04_05." + random digits.
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y_%m_%d_%H_%M_%S")
    return f"..{stamp}.{secrets.randbelow(10**10):010d}"


def _write_data_dir(directory: Path, contents: dict[str, bytes]) -> Path:
    data_dir = directory / _timestamped_name()
    data_dir.mkdir(mode=0o755)
    for name, content in contents.items():
        (data_dir / name).write_bytes(content)
        # Projected volumes default to mode 0644 (defaultMode 420).
        (data_dir / name).chmod(0o644)
    return data_dir


def write_serviceaccount_dir(
    directory: str | os.PathLike[str],
    *,
    token: str,
    ca_pem: bytes,
    namespace: str,
    layout: Layout = "kubelet",
) -> Path:
    """Write ``token``, ``ca.crt`` and ``namespace`` like a pod's
    ``/var/run/secrets/kubernetes.io/serviceaccount``.

    ``layout="kubelet"`` uses the real symlink structure; ``"flat"`` writes
    plain files (as a Secret mounted by hand or a test double might).
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    contents = {
        "ca.crt": ca_pem,
        "namespace": namespace.encode(),
        "token": token.encode(),
    }
    if layout == "flat":
        for name, content in contents.items():
            (target / name).write_bytes(content)
        return target
    data_dir = _write_data_dir(target, contents)
    (target / DATA_LINK).symlink_to(data_dir.name)
    for name in SA_FILES:
        (target / name).symlink_to(f"{DATA_LINK}/{name}")
    return target


def rotate_serviceaccount_token(directory: str | os.PathLike[str], token: str) -> None:
    """Replace the token the way the kubelet does (atomic ``..data`` swap).

    For a flat folder the token file is replaced with ``os.replace`` instead.
    """
    target = Path(directory)
    link = target / DATA_LINK
    if not link.is_symlink():
        temporary = target / ".token.tmp"
        temporary.write_bytes(token.encode())
        os.replace(temporary, target / "token")
        return
    old_dir = target / os.readlink(link)
    contents = {name: (old_dir / name).read_bytes() for name in SA_FILES}
    contents["token"] = token.encode()
    new_dir = _write_data_dir(target, contents)
    temporary_link = target / "..data_tmp"
    temporary_link.symlink_to(new_dir.name)
    # rename(2) over the old symlink is the atomic step readers rely on.
    os.replace(temporary_link, link)
    shutil.rmtree(old_dir)
    logger.debug("devcluster rotated the service-account credential in %s", target)
