"""The test suite's own layout: no module imports a test module (issue 13 §5).

Shared helpers live in helper modules (tests/helpers.py, tests/otlp_receiver.py,
tests/reliability/recovery.py, tests/devcluster/kubehttp.py, ...) and fixtures in the nearest
conftest.py. Importing from a ``test_*`` module instead ties two suites together and, for a
fixture, needs a ``noqa`` that hides a shadowed name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def imported_test_modules(source: str) -> list[str]:
    """Every module named ``test_*`` that ``source`` imports, in any spelling:
    ``import tests.test_x``, ``from .test_x import y``, ``from ..d.test_x import y``,
    ``from . import test_x``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names
                         if any(part.startswith("test_") for part in alias.name.split(".")))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            base = "." * node.level + module
            if any(part.startswith("test_") for part in module.split(".")):
                found.add(base)
            # ``from . import test_x`` names the module among the imported names.
            separator = "." if module else ""
            found.update(base + separator + alias.name for alias in node.names
                         if alias.name.startswith("test_"))
    return sorted(found)


SPELLINGS = [
    ("sibling", "from .test_app import ROOT", [".test_app"]),
    ("other directory", "from ..hostile.test_headers import Answer, assert_431",
     ["..hostile.test_headers"]),
    ("absolute", "import tests.test_verifier", ["tests.test_verifier"]),
    ("module as a name", "from . import test_tokenfile", [".test_tokenfile"]),
    ("absolute module as a name", "from tests.reliability import test_faults as faults",
     ["tests.reliability.test_faults"]),
    ("inside a function", "def f():\n    from .test_otlp_export import receiver",
     [".test_otlp_export"]),
    ("helpers and conftest", "from .helpers import body\nfrom .conftest import AUDIENCE", []),
    ("packages", "import pytest\nfrom compass_auth.testing import DevCluster", []),
]


@pytest.mark.parametrize(("name", "source", "expected"), SPELLINGS,
                         ids=[case[0] for case in SPELLINGS])
def test_the_check_sees_every_spelling(name: str, source: str, expected: list[str]) -> None:
    assert imported_test_modules(source) == expected, name


def test_no_module_imports_a_test_module() -> None:
    files = sorted(TESTS.rglob("*.py"))
    scanned = {path.relative_to(TESTS).as_posix() for path in files}
    # The scan reaches every suite (an empty glob would pass silently).
    assert {"conftest.py", "helpers.py", "test_app.py", "hostile/test_headers.py",
            "reliability/test_changes.py", "devcluster/test_rbac_manifests.py",
            "deploy/test_rbac.py"} <= scanned
    offenders = {
        path.relative_to(TESTS).as_posix(): modules
        for path in files
        if (modules := imported_test_modules(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, (
        "test modules are imported (move shared helpers to a helpers module such as "
        "tests/helpers.py or one of the module's own directory, fixtures to conftest.py)"
    )
