"""Imports flow one way (issue 13): leaves, then the pure verification core or the I/O edges,
then the composition that joins them. Every library module must be placed in a layer here, so a
new module is placed on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "compass_auth"

#: Modules that import nothing else of the library but other leaves.
LEAVES = {"version", "errors", "identity", "segments", "bearer", "settings", "backoff", "answers",
          "projected_token", "keyset", "cache", "cli", "access", "logtext", "logbudget",
          "budget", "readiness", "caller_slots"}
#: The pure verification core: no I/O, no asyncio.
CORE = {"claims", "verifier", "stale"}
#: The edges that talk to the API server, the file system and OpenTelemetry.
EDGES = {"resolver", "tokenfile", "troubleshoot", "middlewares", "kube", "discovery", "keys",
         "unknown_keys", "tokenreview", "subjectaccess", "telemetry"}
#: Where core and edges meet: the verification paths, the authenticator, the wiring, Tornado.
COMPOSITION = {"local_path", "review_path", "key_lifecycle", "issuer_check", "authenticator",
               "authorizer", "factory", "admission", "handler", "websocket", "server_spans",
               "routes", "__init__"}

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
    command-line helpers alone, in every sub-package of the kit."""
    kit = PACKAGE / "testing"
    paths = sorted(kit.rglob("*.py"))
    assert {path.parent.name for path in paths} >= {"server", "wire", "rbac", "credentials"}
    for path in paths:
        where = path.relative_to(PACKAGE.parent)
        package = ".".join(where.parent.parts)
        for name in imported_modules(path, package):
            parts = name.split(".")
            assert parts[:3] != ["compass_auth", "testing", SERVES_THE_LIBRARY] or (
                where.as_posix() == "compass_auth/testing/fixtures.py"), f"{where} imports {name}"
            if where.as_posix() == f"compass_auth/testing/{SERVES_THE_LIBRARY}.py" and name in {
                    "compass_auth.Authenticator", "compass_auth.AuthSettings"}:
                continue
            if parts[0] == "compass_auth" and len(parts) > 1 and parts[1] != "testing":
                assert parts[1] in {"cli", "version"}, f"{where} imports {name}"


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


#: Sub-packages that are pure layers of their own: no I/O but reading their input, no asyncio;
#: of the library they import only the leaves and themselves (issue 22: authn_config).
PURE_SUBPACKAGES = {"authn_config"}


@pytest.mark.parametrize("path", sorted(
    path for name in PURE_SUBPACKAGES for path in (PACKAGE / name).glob("*.py")),
    ids=lambda path: f"{path.parent.name}.{path.stem}")
def test_pure_subpackages_import_only_leaves(path: Path) -> None:
    package = f"compass_auth.{path.parent.name}"
    found = []
    for name in sorted(imported_modules(path, package)):
        parts = name.split(".")
        io_or_app = parts[0] in {"asyncio", "aiohttp", "tornado", "kubernetes_asyncio", "service"}
        library = parts[0] == "compass_auth" and len(parts) > 1
        not_a_leaf = library and parts[1] != path.parent.name \
            and (PACKAGE / f"{parts[1]}.py").exists() and parts[1] not in LEAVES
        if io_or_app or not_a_leaf or parts[:2] == ["compass_auth", "testing"]:
            found.append(name)
    assert found == [], f"{path.parent.name}/{path.name} imports {found}"


#: The ASGI adapter (compass_auth/asgi/, the asgi and fastapi extras): an adapter like handler.py,
#: so it may import the library's leaves, core, edges and composition modules; nothing in the
#: library imports it (``import compass_auth`` must not load Starlette).
ASGI = PACKAGE / "asgi"


@pytest.mark.parametrize("path", sorted(ASGI.glob("*.py")), ids=lambda path: path.stem)
def test_the_asgi_adapter_is_an_adapter(path: Path) -> None:
    for name in sorted(imported_modules(path, "compass_auth.asgi")):
        parts = name.split(".")
        assert parts[0] != "service", f"asgi/{path.name} imports the example service"
        assert parts[:2] != ["compass_auth", "testing"], f"asgi/{path.name} imports {name}"
        if parts[0] == "compass_auth" and len(parts) > 1 and parts[1] != "asgi" \
                and (PACKAGE / f"{parts[1]}.py").exists():
            assert parts[1] in ALLOWED["composition"], f"asgi/{path.name} imports {name}"


def test_nothing_in_the_library_imports_the_asgi_adapter() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(ASGI):
            continue
        package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
        names = imported_modules(path, package)
        assert not any(name.split(".")[:2] == ["compass_auth", "asgi"] for name in names), path
