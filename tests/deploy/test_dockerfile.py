"""The Dockerfile: hadolint, the entrypoint, the stages and the build context."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

from .dockerfile import entrypoint, final_stage, parse
from .tools import ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_passes() -> None:
    run(tool("hadolint"), "--no-color", str(DOCKERFILE))


def test_hadolint_fails_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install tornado\nCMD python -m service serve\n")
    result = subprocess.run([tool("hadolint"), "--no-color", str(careless)],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3042", "DL3025"):
        assert rule in result.stdout


def test_the_entrypoint_is_the_service_in_exec_form() -> None:
    assert entrypoint(DOCKERFILE) == ["python", "-m", "service", "serve"]


def test_the_entrypoint_module_and_subcommand_exist() -> None:
    command = entrypoint(DOCKERFILE)
    result = subprocess.run([sys.executable, *command[1:], "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "--drain-seconds" in result.stdout


def test_multi_stage_with_a_non_root_numeric_user() -> None:
    instructions = parse(DOCKERFILE)
    bases = [i.arguments.split()[0] for i in instructions if i.keyword == "FROM"]
    assert len(bases) >= 2
    # One base for both stages: the virtualenv links to the base's interpreter.
    assert len(set(bases)) == 1
    final = final_stage(instructions)
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users
    assert users[-1].split(":")[0].isdigit()
    assert users[-1].split(":")[0] != "0"
    # Nothing is installed in the final stage: it only copies the virtualenv and the example
    # service (which runs from its folder: the wheel holds the library alone).
    assert not [i for i in final if i.keyword == "RUN"]
    assert [i.arguments for i in final if i.keyword == "COPY"] == [
        "--from=build /opt/venv /opt/venv", "--from=build /src/service /app/service"]


def test_the_default_base_is_a_pinned_slim_python() -> None:
    args = [i.arguments for i in parse(DOCKERFILE) if i.keyword == "ARG"]
    base = next(a.split("=", 1)[1] for a in args if a.startswith("PYTHON_IMAGE="))
    assert base.startswith("python:3.11-slim")


def included(path: str) -> bool:
    """Whether .dockerignore lets ``path`` into the build context (last matching rule wins)."""
    keep = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(parts[-1], pattern)
               for p in prefixes):
            keep = negate
    return keep


def test_the_build_context_has_what_copy_needs_and_nothing_else() -> None:
    sources = []
    for instruction in parse(DOCKERFILE):
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            sources += instruction.arguments.split()[:-1]
    assert sources == ["setup.py", "pyproject.toml", "README.md", "LICENSE", "compass_auth",
                       "service"]
    for source in ("setup.py", "pyproject.toml", "README.md", "LICENSE",
                   "compass_auth/__init__.py", "compass_auth/testing/cluster.py",
                   "service/__main__.py", "service/app.py"):
        assert included(source), source
    for private in (".venv/bin/python", ".git/config", "tests/conftest.py",
                    "k8s/components/demo/clients.yaml",
                    "examples/k8s-overlay-team-a/kustomization.yaml",
                    "service/__pycache__/app.cpython-311.pyc", "kubeconfig"):
        assert not included(private), private
