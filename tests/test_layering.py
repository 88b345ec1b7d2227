"""The package shows its layers (issue 20): each sub-package of ``compass_auth`` is a layer, the
layers have a declared order, and imports only flow down it. No import cycle, not even through
an import inside a function. A new sub-package or top-level module must be placed in ``LAYERS``
on purpose, and named in docs/layout.md."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "compass_auth"
LAYOUT = PACKAGE.parent / "docs" / "layout.md"

#: The layers, lowest first: a module may import from its own layer and the layers before it.
#: Each entry is a sub-package of ``compass_auth`` or a module directly in it. The test kit
#: (``testing``) is apart: the library never imports it (below).
LAYERS = (
    "version",        # the version string
    "core",           # pure: tokens, claims, identities, errors, access checks, verifier
    "logs",           # log text and budgets
    "settings",       # AUTH_* settings
    "authn_config",   # pure: Kubernetes' AuthenticationConfiguration, CEL, claims to a user
    "telemetry",      # OpenTelemetry API: names, spans, instruments
    "apiserver",      # the API-server edge: connection, discovery, review clients
    "keys",           # key management: cache, fetch schedule, unknown kids, lifecycle
    "authorization",  # the Authorizer (SubjectAccessReview decisions)
    "verification",   # the paths, the Authenticator, the wiring (connect)
    "tornado",        # the Tornado adapter: handlers, WebSocket, server spans, routes
    "asgi",           # the ASGI adapter (Starlette, FastAPI): nothing else imports it
    "websocket",      # kept importable: compass_auth.websocket (docs before issue 20)
    "server_spans",   # kept importable: compass_auth.server_spans (docs before issue 20)
    "cli",            # `compass-auth` command line
    "__init__",       # the public API
)


def library_modules() -> dict[str, Path]:
    """Every module of the library (the test kit left out), by absolute dotted name."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[1:2] == ["testing"]:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(source: str, module: str, is_package: bool,
                   modules: Iterable[str] = ()) -> set[str]:
    """Absolute names of what ``source`` (module ``module``) imports, at any depth (inside
    functions and ``if TYPE_CHECKING:`` too). ``from pkg import x`` names ``pkg.x`` when that
    is one of ``modules``, else ``pkg`` (``x`` is an attribute of its ``__init__``)."""
    known = set(modules)
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                stem = f"{base}.{node.module}" if node.module else base
            else:
                stem = node.module or ""
            for alias in node.names:
                names.add(f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem)
    return names


def resolve(name: str, modules: Iterable[str]) -> str | None:
    """The library module ``name`` is or lives in (an attribute's module), if any."""
    known = set(modules)
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the library modules it imports."""
    modules = library_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        names = imported_names(path.read_text(), module, path.name == "__init__.py", modules)
        graph[module] = {target for name in names
                         if (target := resolve(name, modules)) not in (None, module)}
    return graph


def layer_of(module: str) -> str:
    """The entry of ``LAYERS`` that holds ``module`` (``compass_auth.core.claims``: core)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Imports that go up the layers."""
    found = []
    for module, targets in sorted(graph.items()):
        own = LAYERS.index(layer_of(module))
        for target in sorted(targets):
            if LAYERS.index(layer_of(target)) > own:
                found.append(f"{module} ({layer_of(module)}) imports {target} "
                             f"({layer_of(target)}, a later layer)")
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and modules that
    import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def entries() -> set[str]:
    """The sub-packages and top-level modules of the library (``testing`` aside)."""
    found = {path.stem for path in PACKAGE.glob("*.py")}
    found.update(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
    return found - {"testing"}


def test_every_sub_package_and_top_level_module_is_a_placed_layer() -> None:
    unplaced = sorted(entries() - set(LAYERS))
    assert unplaced == [], f"place {unplaced} in LAYERS ({__file__})"
    assert sorted(set(LAYERS) - entries()) == [], "LAYERS names what does not exist"


def test_the_package_has_the_layers_as_folders() -> None:
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")} - {"testing"}
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert len(packages) >= 4
    assert len(modules) <= 10, sorted(modules)


def test_library_imports_flow_down_the_layers() -> None:
    assert violations(import_graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_library_imports_neither_the_example_service_nor_the_test_kit() -> None:
    for module, path in library_modules().items():
        for name in imported_names(path.read_text(), module, path.name == "__init__.py"):
            assert name.split(".")[0] != "service", f"{module} imports {name}"
            assert name.split(".")[:2] != ["compass_auth", "testing"], f"{module} imports {name}"


def test_the_graph_sees_imports_inside_functions_and_relative_spellings() -> None:
    source = ("from ..core import claims\nfrom . import authenticator as a\n"
              "def f():\n    from ..keys.cache import KeyCache\n"
              "if True:\n    import compass_auth.settings\n")
    modules = library_modules()
    names = imported_names(source, "compass_auth.verification.factory", False, modules)
    resolved = {resolve(name, modules) for name in names} - {None}
    assert {"compass_auth.core.claims", "compass_auth.verification.authenticator",
            "compass_auth.keys.cache", "compass_auth.settings"} <= resolved


def test_the_checks_can_fail() -> None:
    graph = {
        "compass_auth.core.claims": {"compass_auth.keys.cache"},  # up the layers
        "compass_auth.keys.cache": {"compass_auth.keys.unknown"},
        "compass_auth.keys.unknown": {"compass_auth.keys.cache"},  # a cycle within a layer
    }
    assert violations(graph) == [
        "compass_auth.core.claims (core) imports compass_auth.keys.cache (keys, a later layer)"]
    assert cycles(graph) == [["compass_auth.keys.cache", "compass_auth.keys.unknown"]]


def test_docs_layout_names_every_sub_package_and_top_level_module() -> None:
    """docs/layout.md shows the tree: each sub-package on a line of its own (``core/``), each
    top-level module by its file name."""
    text = LAYOUT.read_text(encoding="utf-8")
    tree = text.split("```", 2)[1]
    lines = [line.strip() for line in tree.splitlines()]
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    missing = [f"{name}/" for name in sorted(packages)
               if not any(line.startswith(f"{name}/ ") for line in lines)]
    missing += [f"{path.name}" for path in sorted(PACKAGE.glob("*.py"))
                if not any(line.startswith(f"{path.name} ") for line in lines)]
    assert missing == [], f"docs/layout.md lacks {missing}"


#: The plugin's glue that runs a user's application with an Authenticator (the
#: ``devcluster_serve`` fixture): it uses the library's public API, and no emulator module
#: imports it.
SERVES_THE_LIBRARY = "appserver"


def test_the_test_kit_shares_no_code_with_the_verifier() -> None:
    """The emulator must not mirror a bug of the verifier: of the library it may use the
    command-line helpers alone."""
    for path in sorted((PACKAGE / "testing").rglob("*.py")):
        package = ".".join(path.parent.relative_to(PACKAGE.parent).parts)
        module = f"{package}.{path.stem}"
        for name in imported_names(path.read_text(), module, path.name == "__init__.py"):
            parts = name.split(".")
            assert SERVES_THE_LIBRARY not in parts[2:3] or path.stem == "fixtures", (
                f"testing/{path.name} imports {name}")
            if path.stem == SERVES_THE_LIBRARY and name in {"compass_auth.Authenticator",
                                                            "compass_auth.AuthSettings"}:
                continue
            if parts[0] == "compass_auth" and len(parts) > 1 and parts[1] != "testing":
                assert parts[1] in {"cli", "version"}, f"testing/{path.name} imports {name}"


@pytest.mark.parametrize("entry", LAYERS)
def test_each_layer_exists(entry: str) -> None:
    assert (PACKAGE / f"{entry}.py").exists() or (PACKAGE / entry / "__init__.py").exists()


def test_paths_documented_before_the_folders_still_import() -> None:
    """README, docs and the downstream example named these before issue 20; code written from
    them keeps working."""
    import compass_auth
    from compass_auth.server_spans import add_server_spans, excluded_urls
    from compass_auth.telemetry import Telemetry, http_attributes
    from compass_auth.tornado import server_spans, websocket
    from compass_auth.websocket import AuthenticatedWebSocketHandler

    assert AuthenticatedWebSocketHandler is websocket.AuthenticatedWebSocketHandler
    assert (add_server_spans, excluded_urls) == (server_spans.add_server_spans,
                                                 server_spans.excluded_urls)
    assert callable(Telemetry)
    assert callable(http_attributes)
    assert callable(compass_auth.Authenticator.connect)
    assert compass_auth.connect is not None


#: Sub-packages that are pure layers of their own: no I/O but reading their input, no asyncio,
#: no framework (issue 22: authn_config).
PURE_SUBPACKAGES = ("authn_config",)
IO_OR_FRAMEWORK = {"asyncio", "aiohttp", "tornado", "kubernetes_asyncio", "starlette", "service"}


@pytest.mark.parametrize("package", PURE_SUBPACKAGES)
def test_pure_subpackages_do_no_io(package: str) -> None:
    modules = library_modules()
    for path in sorted((PACKAGE / package).glob("*.py")):
        module = f"compass_auth.{package}.{path.stem}"
        for name in imported_names(path.read_text(), module, path.name == "__init__.py", modules):
            assert name.split(".")[0] not in IO_OR_FRAMEWORK, (
                f"{package}/{path.name} imports {name}")


def test_nothing_in_the_library_imports_the_asgi_adapter() -> None:
    """``import compass_auth`` must not load Starlette: only compass_auth/asgi/ imports itself."""
    modules = library_modules()
    for module, path in sorted(modules.items()):
        if module.split(".")[1:2] == ["asgi"]:
            continue
        names = imported_names(path.read_text(), module, path.name == "__init__.py", modules)
        assert not any(name.split(".")[:2] == ["compass_auth", "asgi"] for name in names), module
