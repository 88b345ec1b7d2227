"""The manifests rendered once per session (kubectl kustomize takes ~0.3 s)."""

from __future__ import annotations

import pytest

from .manifests import Manifests
from .tools import ROOT, kustomize


@pytest.fixture(scope="session")
def manifests() -> Manifests:
    return Manifests(kustomize(ROOT / "k8s"))
