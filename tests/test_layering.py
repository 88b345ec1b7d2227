"""Imports flow one way (issue 13): leaves, then the pure verification core or the I/O edges,
then the composition that joins them. Every library module must be placed in a layer here, so a
new module is placed on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "compass_auth"

#: Modules that import nothing else of the library but other leaves.
LEAVES = {"version", "errors", "identity", "segments", "bearer", "settings", "backoff",
          "projected_token", "keyset", "cache", "cli", "access", "logtext", "logbudget",
          "budget", "readiness", "caller_slots", "fetch_schedule"}
#: The pure verification core: no I/O, no asyncio.
CORE = {"claims", "verifier", "stale"}
#: The edges that talk to the API server, the file system and OpenTelemetry.
EDGES = {"resolver", "tokenfile", "troubleshoot", "middlewares", "kube", "discovery", "keys",
         "unknown_keys", "reviews", "tokenreview", "subjectaccess", "telemetry"}
#: Where core and edges meet: the verification paths, the authenticator, the wiring, Tornado.
COMPOSITION = {"local_path", "review_path", "key_lifecycle", "issuer_check", "authenticator",
               "authorizer", "factory", "handler", "websocket", "server_spans", "routes",
               "__init__"}

ALLOWED = {
    "leaf": LEAVES,
    "core": LEAVES | CORE,
    "edge": LEAVES | EDGES,
    "composition": LEAVES | CORE | EDGES | COMPOSITION,
}


def layer_of(module: str) -> str:
    for name, members in (("leaf", LEAVES), ("core", CORE), ("edge", EDGES),
                          ("composition", COMPOSITION)):
        if module in members:
            return name
    raise AssertionError(f"compass_auth/{module}.py is in no layer: place it in {__file__}")


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of what ``path`` (a module of ``package``) imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                stem = f"{base}.{node.module}" if node.module else base
            else:
                stem = node.module or ""
            names.add(stem)
            # `from . import x` and `from .pkg import mod` may name modules too.
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


def violations(module: str, names: set[str]) -> list[str]:
    """What is wrong with ``compass_auth.<module>`` importing ``names``."""
    layer = layer_of(module)
    found = []
    for name in sorted(names):
        parts = name.split(".")
        if parts[0] == "service":
            found.append(f"{module} imports the example service ({name})")
        elif parts[:2] == ["compass_auth", "testing"]:
            found.append(f"{module} imports the test kit ({name})")
        elif (parts[0] == "compass_auth" and len(parts) > 1
              and (PACKAGE / f"{parts[1]}.py").exists()  # else an attribute, checked as its module
              and parts[1] not in ALLOWED[layer]):
            found.append(f"{module} ({layer}) imports {parts[1]} ({layer_of(parts[1])})")
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.stem)
def test_library_imports_flow_one_way(path: Path) -> None:
    assert violations(path.stem, imported_modules(path, "compass_auth")) == []


#: The plugin's glue that runs a user's application with an Authenticator (the
#: ``devcluster_serve`` fixture): it uses the library's public API, and no emulator module
#: imports it.
SERVES_THE_LIBRARY = "appserver"


def test_the_test_kit_shares_no_code_with_the_verifier() -> None:
    """The emulator must not mirror a bug of the verifier: of the library it may use the
    command-line helpers alone."""
    for path in sorted((PACKAGE / "testing").glob("*.py")):
        for name in imported_modules(path, "compass_auth.testing"):
            parts = name.split(".")
            assert parts[:3] != ["compass_auth", "testing", SERVES_THE_LIBRARY] or (
                path.stem == "fixtures"), f"testing/{path.name} imports {name}"
            if path.stem == SERVES_THE_LIBRARY and name in {"compass_auth.Authenticator",
                                                            "compass_auth.AuthSettings"}:
                continue
            if parts[0] == "compass_auth" and len(parts) > 1 and parts[1] != "testing":
                assert parts[1] in {"cli", "version"}, f"testing/{path.name} imports {name}"


def test_the_checker_reports_forbidden_imports(tmp_path: Path) -> None:
    module = tmp_path / "kube.py"
    module.write_text("from .verifier import verify_local\nfrom . import claims\n"
                      "from .testing import DevCluster\nimport service.app\nfrom .keys import x\n")
    found = violations("kube", imported_modules(module, "compass_auth"))
    assert found == [
        "kube (edge) imports claims (core)",
        "kube imports the test kit (compass_auth.testing)",
        "kube imports the test kit (compass_auth.testing.DevCluster)",
        "kube (edge) imports verifier (core)",
        "kube (edge) imports verifier (core)",
        "kube imports the example service (service.app)",
    ]
