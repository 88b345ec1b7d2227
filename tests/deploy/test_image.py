"""Build the image from the Dockerfile with buildah and run it: help, user, contents, serving.

Slow for a unit test (about a minute: mmdebstrap, then pip in the build stage) but run by
default, because an image that does not build or start is the failure that matters most.
See image.py for how it works without a Docker engine or a registry. On a machine without root
or the tools the tests skip, saying why and how to enable them; under CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from compass_auth.testing import DevCluster

from .dockerfile import entrypoint
from .image import (
    ENABLE_IMAGE_TESTS,
    Buildah,
    command_line,
    descendants,
    image_tests_required,
    image_tools_problem,
)
from .tools import ROOT

pytestmark = pytest.mark.timeout(900)

TAG = "localhost/compass-auth:image-test"
SA_MOUNT = "/var/lib/compass-auth/serviceaccount"


def require_image_tools(problem: str | None, environ: Mapping[str, str]) -> None:
    """Skip when the image cannot be built here; fail instead when CI requires the image."""
    if problem is None:
        return
    if image_tests_required(environ):
        pytest.fail(f"the image cannot be built: {problem}; CI=true requires the image tests: "
                    f"{ENABLE_IMAGE_TESTS}", pytrace=False)
    pytest.skip(f"image tests skipped: {problem}; to include them, {ENABLE_IMAGE_TESTS}")


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    require_image_tools(image_tools_problem(), os.environ)
    builder = Buildah(tmp_path_factory.mktemp("buildah"))
    try:
        builder.build(TAG, builder.build_debian_base())
        yield builder
    finally:
        builder.clean()


@pytest.fixture
def container(buildah: Buildah) -> Iterator[str]:
    name = buildah("from", "--pull=never", "--quiet", TAG)
    yield name
    buildah("rm", name)


def run_in(buildah: Buildah, container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        buildah.command("run", "--isolation", "chroot", container, "--", *command),
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_image_configuration(buildah: Buildah) -> None:
    config = buildah.inspect(TAG)["OCIv1"]["config"]
    assert config["Entrypoint"] == entrypoint(ROOT / "Dockerfile")
    assert config["User"] == "10001:10001"
    assert "8080/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_help_runs_inside_the_image(buildah: Buildah, container: str) -> None:
    result = run_in(buildah, container, "python", "-m", "service", "--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    # The entrypoint with --help: what `docker run IMAGE --help` prints.
    result = run_in(buildah, container, *entrypoint(ROOT / "Dockerfile"), "--help")
    assert result.returncode == 0, result.stderr
    assert "--drain-seconds" in result.stdout


def test_runs_as_the_numeric_non_root_user(buildah: Buildah, container: str) -> None:
    result = run_in(buildah, container, "python", "-c",
                    "import os; print(os.getuid(), os.getgid())")
    assert result.stdout.split() == ["10001", "10001"]


def test_no_compilers_caches_or_pip_in_the_image(buildah: Buildah, container: str) -> None:
    root = Path(buildah("mount", container))
    try:
        for path in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/make", "root/.cache",
                     "opt/venv/bin/pip", "src"):
            assert not (root / path).exists(), path
        assert (root / "opt/venv/bin/python").exists()
        site = next((root / "opt/venv/lib").glob("python3*/site-packages"))
        # The library is installed from its distribution; the example service runs from /app
        # (the working directory), as it runs from a checkout: it is not in the distribution.
        assert (site / "compass_auth" / "__init__.py").is_file()
        assert (root / "app/service/__main__.py").is_file()
        assert not (site / "service").exists()
        assert not list(site.glob("pip-*")), "pip was installed into the virtualenv"
    finally:
        buildah("umount", container)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serves_in_cluster_and_drains_on_sigterm(
    buildah: Buildah, container: str, devcluster: DevCluster, tmp_path: Path
) -> None:
    """The image as a pod runs it: in-cluster settings from a mounted service-account folder
    (kubelet layout), SIGTERM to the Python process; the emulator plays the API server."""
    sa_dir = devcluster.write_serviceaccount_dir(tmp_path / "serviceaccount")
    environment = [f"--env={key}={value}" for key, value in devcluster.incluster_environ().items()]
    # Not the standard /var/run/secrets/...: buildah's chroot isolation mounts its own tmpfs on
    # /run (= /var/run), which would hide the folder.
    environment.append(f"--env=AUTH_SERVICEACCOUNT_DIR={SA_MOUNT}")
    environment.append("--env=AUTH_AUDIENCE=compass-internal")  # no default: k8s/ sets it
    port = free_port()
    process = subprocess.Popen(
        buildah.command(
            "run", "--isolation", "chroot", *environment,
            "--volume", f"{sa_dir}:{SA_MOUNT}:ro",
            container, "--", *entrypoint(ROOT / "Dockerfile"),
            "--host", "127.0.0.1", "--port", str(port), "--drain-seconds", "2",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if get(base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service in the image never became ready"
            time.sleep(0.2)
        token = devcluster.mint(namespace="compass", service_account="collector")
        status, body = get(base + "/whoami", token)
        assert (status, body["subject"]) == (200, "system:serviceaccount:compass:collector")
        assert get(base + "/whoami", devcluster.mint(audiences=("other-service",)))[0] == 401
        # buildah's chroot runtime does not forward signals: signal the service itself, as
        # the kubelet's runtime does.
        service = [pid for pid in descendants(process.pid)
                   if command_line(pid)[1:4] == ["-m", "service", "serve"]]
        assert len(service) == 1
        os.kill(service[0], signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output
        assert "msg=stopped" in output
        assert token not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize(("euid", "installed", "problem"), [
    (0, {"buildah", "mmdebstrap"}, None),
    (0, {"mmdebstrap"}, "buildah not installed"),
    (1000, {"buildah", "mmdebstrap"},
     "not root (buildah's chroot isolation and mmdebstrap need it)"),
    (1000, set(), "not root (buildah's chroot isolation and mmdebstrap need it); "
                  "buildah and mmdebstrap not installed"),
])
def test_image_tools_problem(euid: int, installed: set[str], problem: str | None) -> None:
    def which(name: str) -> str | None:
        return f"/usr/bin/{name}" if name in installed else None

    assert image_tools_problem(euid, which) == problem


def test_missing_image_tools_skip_locally_and_fail_under_ci() -> None:
    problem = "buildah not installed"
    with pytest.raises(pytest.skip.Exception, match="buildah not installed; to include them"):
        require_image_tools(problem, {})
    with pytest.raises(pytest.skip.Exception):
        require_image_tools(problem, {"CI": "false"})
    with pytest.raises(pytest.fail.Exception, match="CI=true requires the image tests"):
        require_image_tools(problem, {"CI": "true"})
    require_image_tools(None, {"CI": "true"})  # tools present: neither
