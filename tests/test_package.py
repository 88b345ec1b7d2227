"""The layering a user's install depends on: what `import compass_auth` loads, and what each
part imports. The library (compass_auth/) needs only its own dependencies; its test kit
(compass_auth/testing/, the `testing` extra) shares no code with it; neither imports the example
service (service/, run from a checkout).

`scripts/check-package.sh` proves the same from the built wheel in clean virtualenvs; these
checks run with the main suite and name the offending module.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import metadata, util
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "compass_auth"
TEST_KIT = LIBRARY / "testing"
ASGI = LIBRARY / "asgi"

#: Never loaded by `import compass_auth`: the example service, the test kit and its runner, and
#: the OpenTelemetry SDK side (the library calls only the API, a no-op until an app sets an SDK).
DENIED = ("service", "compass_auth.testing", "pytest", "_pytest", "opentelemetry.sdk",
          "opentelemetry.exporter", "opentelemetry.instrumentation", "prometheus_client",
          "uvloop", "compass_auth.asgi", "starlette", "fastapi", "uvicorn")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def denied(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in DENIED)


# --- what `import compass_auth` loads ------------------------------------------------------


def import_tree() -> list[tuple[int, str]]:
    """(depth, module) for every module `import compass_auth` loads in a fresh interpreter, in
    ``-X importtime`` order: a module's own imports are listed before it, one level deeper."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         "import compass_auth\n"
         "from compass_auth import AuthenticatedHandler, Authenticator, AuthSettings, Identity"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    tree = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or line.endswith("| imported package"):
            continue
        name = line.rsplit("|", 1)[1]
        tree.append(((len(name) - len(name.lstrip(" "))) // 2, name.strip()))
    return tree


def importers(tree: list[tuple[int, str]], index: int) -> list[str]:
    """The chain of modules whose import loaded ``tree[index]``, innermost first."""
    depth, chain = tree[index][0], []
    for level, module in tree[index + 1:]:
        if level < depth:
            chain.append(module)
            depth = level
    return chain


def test_import_loads_no_service_test_kit_or_sdk() -> None:
    loaded = [module for _, module in import_tree()]
    assert "compass_auth.tornado.handler" in loaded  # the tree is read right
    assert [module for module in loaded if denied(module)] == []


def test_yaml_is_loaded_only_by_kubernetes_asyncio() -> None:
    """PyYAML comes with kubernetes-asyncio (a requirement of its), whose kubeconfig loader
    imports it; the library imports it only when it reads an AuthenticationConfiguration
    (compass_auth/authn_config/loading.py), never at import."""
    tree = import_tree()
    yaml_entries = [index for index, (_, module) in enumerate(tree)
                    if module == "yaml" or module.startswith("yaml.")]
    assert yaml_entries, "yaml was not loaded: drop this test and allow-list entry"
    for index in yaml_entries:
        chain = importers(tree, index)
        outside_yaml = next(module for module in chain if not module.startswith("yaml"))
        assert outside_yaml.startswith("kubernetes_asyncio."), (tree[index][1], chain)


# --- what each part's source imports -------------------------------------------------------


def modules_of(folder: Path, skip: Path | None = None) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py")
                  if skip is None or not path.is_relative_to(skip))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imports_of(path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, imported name or None) for each import statement, relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                yield base, alias.name


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports: for ``from a import b``, both ``a`` and ``a.b`` (``b`` may
    be a submodule or a name; the caller looks both up)."""
    found = set()
    for module, name in imports_of(path):
        found.add(module)
        if name is not None and name != "*":
            found.add(f"{module}.{name}")
    return found


@cache
def file_owners() -> dict[Path, str]:
    """Installed file -> the distribution that installed it."""
    owners = {}
    for dist in metadata.distributions():
        for file in dist.files or []:
            owners[Path(str(dist.locate_file(file))).resolve()] = canonical(dist.metadata["Name"])
    return owners


def owner(module: str) -> str | None:
    """The distribution a third-party module comes from (None: not a module, e.g. a name)."""
    origin = origin_of(module)
    if origin is None:
        return None  # a name, or a namespace package: its submodules are looked up instead
    return file_owners().get(Path(origin).resolve(), f"no distribution ({origin})")


def origin_of(module: str) -> str | None:
    loaded = sys.modules.get(module)
    if loaded is not None:  # some packages replace their modules' specs once loaded
        origin: str | None = getattr(loaded, "__file__", None)
        return origin
    try:
        spec = util.find_spec(module)
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin in ("built-in", "frozen"):
        return None
    return spec.origin


def declared(*extras: str) -> set[str]:
    """Distributions pyproject.toml declares for the library (plus ``extra``), with the
    requirements that their own requested extras add (``pyjwt[crypto]`` -> cryptography)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    names = set()
    for requirement in map(Requirement, texts):
        names.add(canonical(requirement.name))
        for wanted in requirement.extras:
            for text in metadata.requires(requirement.name) or []:
                dependency = Requirement(text)
                marker = dependency.marker
                if marker is not None and marker.evaluate({"extra": wanted}) \
                        and not marker.evaluate({"extra": ""}):
                    names.add(canonical(dependency.name))
    return names


def third_party(paths: list[Path]) -> dict[str, set[str]]:
    """distribution -> the files importing from it, for imports outside stdlib and the project."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in ("compass_auth", "service", "examples"):
                continue
            distribution = owner(module)
            if distribution is not None:
                found.setdefault(distribution, set()).add(relative(path))
    return found


# Which library module may import which (and that neither the library imports the example
# service or the test kit, nor the test kit the verifier): tests/test_layering.py.


#: Distributions of an optional extra, each imported by one module only (which says what to
#: install when it is missing): distribution -> (extra, the module).
OPTIONAL_IMPORTS = {"cel-expr-python": ("cel", "compass_auth/authn_config/expressions.py")}


def test_library_imports_only_its_declared_dependencies() -> None:
    used = third_party([path for path in modules_of(LIBRARY, skip=TEST_KIT)
                        if not path.is_relative_to(ASGI)])
    assert "pyjwt" in used  # the lookup works: the verifier imports jwt
    for name, (extra, module) in OPTIONAL_IMPORTS.items():
        assert name in declared(extra)
        assert name not in declared()
        assert used.pop(name, {module}) == {module}
    undeclared = {name: files for name, files in used.items() if name not in declared()}
    assert undeclared == {}


def test_test_kit_imports_only_the_library_and_testing_dependencies() -> None:
    used = third_party(modules_of(TEST_KIT))
    assert "pytest" in used
    undeclared = {name: files for name, files in used.items()
                  if name not in declared("testing")}
    assert undeclared == {}


def test_the_asgi_adapter_imports_only_the_library_and_its_extras() -> None:
    """compass_auth.asgi needs Starlette (the asgi extra); its FastAPI module FastAPI (the
    fastapi extra, which brings the asgi one)."""
    fastapi_module = ASGI / "fastapi.py"
    used = third_party([path for path in modules_of(ASGI) if path != fastapi_module])
    assert "starlette" in used
    assert {name: files for name, files in used.items()
            if name not in declared("asgi")} == {}
    used = third_party([fastapi_module])
    assert "fastapi" in used
    assert {name: files for name, files in used.items()
            if name not in declared("fastapi", "asgi")} == {}


def test_the_demo_imports_only_what_make_demo_installs() -> None:
    """`make demo` installs the demo extra only: the example service (service/) and the example
    ASGI service the demo runs (examples/asgi_service) must import nothing else."""
    used = third_party([*modules_of(ROOT / "service"), *modules_of(ROOT / "examples" /
                                                                    "asgi_service")])
    assert {"tornado", "uvicorn", "starlette"} <= set(used)  # the lookup works
    assert {name: files for name, files in used.items()
            if name not in declared("demo") | demo_extras()} == {}


def demo_extras() -> set[str]:
    """What the demo extra's own ``compass-auth[...]`` brings: those extras' distributions."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [itself] = [Requirement(text) for text in project["optional-dependencies"]["demo"]
                if Requirement(text).name == project["name"]]
    return declared(*itself.extras)
