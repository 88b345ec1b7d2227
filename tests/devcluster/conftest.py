"""Emulator fixtures, imported rather than listed in ``pytest_plugins``.

pytest refuses ``pytest_plugins`` in a conftest below the rootdir, and this
suite must also run as part of ``pytest tests``.
"""

from __future__ import annotations

from service.devcluster.fixtures import (
    devcluster,
    devcluster_kubeconfig,
    devcluster_sa_dir,
    devcluster_session,
)

__all__ = [
    "devcluster",
    "devcluster_kubeconfig",
    "devcluster_sa_dir",
    "devcluster_session",
]
