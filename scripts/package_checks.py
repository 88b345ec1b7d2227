"""Checks of the built distributions and of what installing them brings, for check-package.sh.

    package_checks.py artifacts DIST_DIR            the wheel's and the sdist's contents
    package_checks.py dists VENV                    distributions installed in VENV, one a line
    package_checks.py installed VENV BASELINE [EXTRA]
                                                    what installing compass-auth[EXTRA] added to
                                                    VENV equals the closure of its requirements
    package_checks.py imports                       run by a bare install's own interpreter: what
                                                    `import compass_auth` loads

Run with the project's development interpreter (it has ``packaging``), except ``imports``, which
needs nothing but the standard library and compass-auth. The virtualenvs are made from the same
``python3`` as that interpreter, so requirement markers evaluate alike in both.
"""

from __future__ import annotations

import email.parser
import json
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "compass-auth"

#: Distributions the bare library must never bring: the example service's SDK, exporters,
#: instrumentation, metrics server and event loop, and the test kit's runner.
DENIED_DISTRIBUTIONS = re.compile(
    r"^(opentelemetry-sdk|opentelemetry-exporter-.*|opentelemetry-instrumentation.*"
    r"|opentelemetry-proto|prometheus-client|uvloop|pytest.*|starlette|fastapi|uvicorn)$"
)
#: Modules `import compass_auth` must not load (PyYAML is allowed: kubernetes-asyncio's
#: kubeconfig loader imports it, see tests/test_package.py).
DENIED_MODULES = ("service", "compass_auth.testing", "opentelemetry.sdk",
                  "opentelemetry.exporter", "opentelemetry.instrumentation", "prometheus_client",
                  "uvloop", "pytest", "_pytest", "compass_auth.asgi", "starlette", "fastapi")
PUBLIC_API = ("AuthenticatedHandler", "Authenticator", "AuthSettings", "Identity")
#: Top-level modules that only the testing extra brings (pytest, pytest-asyncio, protobuf).
TESTING_ONLY_MODULES = ("pytest", "_pytest", "pytest_asyncio", "google")


class CheckFailed(Exception):
    """A check did not hold; the message says which and what was found."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- artifacts ---------------------------------------------------------------------------------


def source_files() -> set[str]:
    """The package's files in the source tree (what the wheel must carry, no more, no less)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "compass_auth").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def check_artifacts(dist: Path) -> None:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    check(len(wheels) == 1 and len(sdists) == 1,
          f"expected one wheel and one sdist: {wheels} {sdists}")
    wheel, sdist = wheels[0], sdists[0]

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(name.split("/")[0] for name in names if ".dist-info/" in name)
        top_level = {name.split("/")[0] for name in names}
        check(top_level == {"compass_auth", dist_info},
              f"the wheel holds more than compass_auth: {sorted(top_level)}")
        package = {name for name in names if name.startswith("compass_auth/")}
        missing, extra = source_files() - package, package - source_files()
        check(not missing, f"files of compass_auth/ missing from the wheel: {sorted(missing)}")
        check(not extra, f"files in the wheel that compass_auth/ does not have: {sorted(extra)}")
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        check("[pytest11]\ncompass_auth = compass_auth.testing.fixtures" in entry_points,
              f"the pytest11 entry point is missing:\n{entry_points}")
        wheel_metadata = email.parser.Parser().parsestr(
            archive.read(f"{dist_info}/METADATA").decode())
    check_requirements(wheel_metadata.get_all("Requires-Dist") or [])
    print(f"wheel: {wheel.name}: {len(package)} files, all of compass_auth/ and nothing else "
          "(no service/, tests/); pytest11 entry point compass_auth.testing.fixtures")

    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    base = sdist.name.removesuffix(".tar.gz")
    needed = {f"{base}/{name}" for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE",
                                             "PKG-INFO")}
    needed |= {f"{base}/{name}" for name in source_files()}
    check(needed <= names, f"the sdist lacks {sorted(needed - names)}")
    for folder in ("service", "tests", "examples", "benchmarks"):
        check(not any(name.startswith(f"{base}/{folder}/") for name in names),
              f"the sdist carries {folder}/ (MANIFEST.in prunes it)")
    print(f"sdist: {sdist.name}: pyproject.toml, setup.py, README.md, LICENSE and all of "
          "compass_auth/; the wheel above was built from it (python -m build builds the sdist "
          "first, then the wheel from the unpacked sdist)")


def check_requirements(requires_dist: list[str]) -> None:
    """The wheel's unconditional requirements are pyproject.toml's [project] dependencies."""
    from packaging.requirements import Requirement

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = {canonical(Requirement(text).name): Requirement(text) for text in declared}
    found = {
        canonical(requirement.name): requirement
        for requirement in map(Requirement, requires_dist)
        if requirement.marker is None
    }
    check(set(found) == set(expected),
          f"the wheel requires {sorted(found)}, pyproject.toml declares {sorted(expected)}")
    for name, requirement in expected.items():
        check(found[name].specifier == requirement.specifier
              and found[name].extras == requirement.extras,
              f"{name}: the wheel says {found[name]}, pyproject.toml {requirement}")


# --- installed distributions -------------------------------------------------------------------


def site_dirs(venv: Path) -> list[str]:
    output = subprocess.run(  # noqa: S603 - the interpreter of a virtualenv this run made
        [str(venv / "bin" / "python"), "-c",
         "import json, sysconfig; print(json.dumps(sorted({sysconfig.get_path('purelib'), "
         "sysconfig.get_path('platlib')})))"],
        capture_output=True, text=True, check=True,
    ).stdout
    paths: list[str] = json.loads(output)
    return paths


def installed_distributions(venv: Path) -> dict[str, metadata.Distribution]:
    return {canonical(dist.metadata["Name"]): dist
            for dist in metadata.distributions(path=site_dirs(venv))}


def closure(
    distributions: dict[str, metadata.Distribution], root: str, extras: set[str]
) -> dict[str, str]:
    """Every distribution ``root[extras]`` requires, directly or not: name -> who required it."""
    from packaging.requirements import Requirement

    required_by: dict[str, str] = {root: ""}
    pending = [(root, extras)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, wanted = pending.pop()
        if (name, frozenset(wanted)) in seen:
            continue
        seen.add((name, frozenset(wanted)))
        check(name in distributions, f"{name} is required (by {required_by[name]}) "
              "but not installed")
        for text in distributions[name].requires or []:
            requirement = Requirement(text)
            applies = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in wanted | {""}
            )
            if not applies:
                continue
            child = canonical(requirement.name)
            required_by.setdefault(child, name)
            pending.append((child, set(requirement.extras)))
    return required_by


def check_installed(venv: Path, baseline_file: Path, extra: str) -> None:
    baseline = set(baseline_file.read_text().split())
    distributions = installed_distributions(venv)
    added = set(distributions) - baseline
    required_by = closure(distributions, PROJECT, {extra} if extra else set())
    expected = set(required_by) - baseline
    check(added == expected,
          f"installed but not required: {sorted(added - expected)}; "
          f"required but not installed: {sorted(expected - added)}")
    label = f"{PROJECT}[{extra}]" if extra else f"{PROJECT} (no extras)"
    if not extra:
        denied = sorted(name for name in added if DENIED_DISTRIBUTIONS.match(name))
        check(not denied, f"the bare library brought {denied}")
        chains = ", ".join(f"{name} <- {required_by[name]}"
                           for name in sorted(added) if name != PROJECT)
        print(f"{label}: what came with it, and which requirement brought it: {chains}")
    print(f"{label}: {len(added)} distributions installed (pip list minus the fresh "
          f"virtualenv's {', '.join(sorted(baseline))}), exactly the closure of its "
          "requirements")


# --- imports (run by the bare install's interpreter) -------------------------------------------


def check_imports() -> None:
    import compass_auth

    for name in PUBLIC_API:
        check(hasattr(compass_auth, name), f"compass_auth.{name} is missing")
    loaded = sorted(module for module in sys.modules
                    if any(module == denied or module.startswith(denied + ".")
                           for denied in DENIED_MODULES))
    check(not loaded, f"import compass_auth loaded {loaded}")
    check(Path(compass_auth.__file__).is_relative_to(sys.prefix),
          f"compass_auth came from {compass_auth.__file__}, not from this virtualenv")
    print(f"import compass_auth {compass_auth.__version__} and its public API: none of "
          f"{', '.join(DENIED_MODULES)} loaded")
    # The test kit's code is in the wheel, its dependencies come with [testing]: without them
    # the plugin fails on one of those, naming it.
    try:
        import compass_auth.testing.fixtures
    except ModuleNotFoundError as error:
        top = (error.name or "").split(".")[0]
        check(top in TESTING_ONLY_MODULES,
              f"compass_auth.testing.fixtures failed on {error.name}, not on a dependency of "
              f"the testing extra ({', '.join(TESTING_ONLY_MODULES)})")
        print("without [testing]: compass_auth.testing.fixtures fails with "
              f"ModuleNotFoundError: {error}")
    else:
        raise CheckFailed("compass_auth.testing.fixtures imported without the testing extra")


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["artifacts", dist]:
                check_artifacts(Path(dist))
            case ["dists", venv]:
                print("\n".join(sorted(installed_distributions(Path(venv)))))
            case ["installed", venv, baseline, *extra] if len(extra) <= 1:
                check_installed(Path(venv), Path(baseline), extra[0] if extra else "")
            case ["imports"]:
                check_imports()
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except CheckFailed as failure:
        print(f"check-package: FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
