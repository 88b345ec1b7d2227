"""The manifests rendered once per session, and the slow image build moved to the end."""

from __future__ import annotations

import pytest

from .manifests import Manifests
from .tools import ROOT, kustomize

SLOW_MODULE = "tests/deploy/test_image.py"


@pytest.fixture(scope="session")
def manifests() -> Manifests:
    return Manifests(kustomize(ROOT / "k8s"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the image build (about a minute) after everything else: quick failures show first,
    and tests that took their clock at import are not delayed by it."""
    items.sort(key=lambda item: item.nodeid.startswith(SLOW_MODULE))
