"""The manifests, config/ and the service agree: audiences, ports, probes, flags, selectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from compass_auth.settings import DEFAULT_SERVICEACCOUNT_DIR, VARIABLES, AuthSettings
from service.settings import AUDIENCE, ServiceSettings, library_environ
from service.settings import VARIABLES as SERVICE_VARIABLES

from ..conftest import RunningService, StartService
from .argv import container_argv, parse
from .manifests import (
    Manifests,
    Object,
    container_port,
    only_container,
    pod_spec,
    selects,
)
from .tools import ROOT

CONFIG = ROOT / "config"
IN_CLUSTER = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize's ``envs:`` reads them (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, separator, value = line.partition("=")
            assert separator, f"{path.name}: {line!r} is not KEY=VALUE"
            values[key] = value
    return values


def service_settings(manifests: Manifests) -> dict[str, str]:
    return manifests.env_from_configmaps(only_container(manifests.get("Deployment",
                                                                      "compass-auth")))


def projected_token(workload: Object) -> tuple[str, str, int]:
    """(audience, path inside the container, expirationSeconds) of the projected token."""
    container = only_container(workload)
    for volume in pod_spec(workload)["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            token = source.get("serviceAccountToken")
            if token is None:
                continue
            mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
            return token["audience"], f"{mount['mountPath']}/{token['path']}", \
                token["expirationSeconds"]
    raise AssertionError(f"{workload['metadata']['name']} has no projected token")


# --- settings -------------------------------------------------------------------------------

def test_the_settings_configmap_is_config_auth_env(manifests: Manifests) -> None:
    assert manifests.configmap("compass-auth-settings")["data"] == env_file(CONFIG / "auth.env")
    assert manifests.configmap("compass-auth-otel")["data"] == env_file(CONFIG / "otel.env")


def test_the_service_gets_valid_settings(manifests: Manifests) -> None:
    environment = service_settings(manifests)
    auth = {key for key in environment if key.startswith("AUTH_")}
    assert auth == {variable.name for variable in VARIABLES + SERVICE_VARIABLES}
    settings = AuthSettings.from_env(library_environ({**environment, **IN_CLUSTER}))
    ServiceSettings.from_env(environment)
    assert settings.in_cluster
    # The in-cluster credentials are read from the automounted folder.
    assert str(settings.serviceaccount_dir) == DEFAULT_SERVICEACCOUNT_DIR
    assert pod_spec(manifests.get("Deployment", "compass-auth"))[
        "automountServiceAccountToken"] is True


# --- clients and audiences ------------------------------------------------------------------

def test_the_collectors_token_is_for_the_services_audience(manifests: Manifests) -> None:
    audience = AuthSettings.from_env(
        library_environ({**service_settings(manifests), **IN_CLUSTER})).audience
    # The library has no default audience: the deployment sets the example's.
    assert audience == env_file(CONFIG / "auth.env")["AUTH_AUDIENCE"] == AUDIENCE
    assert projected_token(manifests.get("Deployment", "collector"))[0] == audience


def test_the_wrong_audience_client_has_another_audience(manifests: Manifests) -> None:
    audience = service_settings(manifests)["AUTH_AUDIENCE"]
    wrong, _, _ = projected_token(manifests.get("Deployment", "wrong-audience"))
    assert wrong != audience


@pytest.mark.parametrize("client", ["collector", "wrong-audience"])
def test_the_client_calls_the_service_with_its_projected_token(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    workload = manifests.get("Deployment", client)
    command, arguments = parse(container_argv(only_container(workload)), monkeypatch)
    assert command == "call"
    _, token_path, lifetime = projected_token(workload)
    assert arguments["token_file"] == token_path
    # TokenRequest refuses less than 10 minutes; the kubelet rotates at 80 %.
    assert 600 <= lifetime <= 86400
    url = urlsplit(arguments["url"])
    service = manifests.get("Service", url.hostname or "")
    assert url.port in [port["port"] for port in service["spec"]["ports"]]
    assert url.path == "/whoami"
    # The client needs no API access: no automounted token beside the projected one.
    assert pod_spec(workload)["automountServiceAccountToken"] is False
    assert pod_spec(workload)["serviceAccountName"] == client


async def test_the_client_url_is_a_protected_route(
    running: RunningService, manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, arguments = parse(container_argv(only_container(manifests.get("Deployment",
                                                                     "collector"))), monkeypatch)
    response = await running.get(urlsplit(arguments["url"]).path)
    assert response.code == 401  # exists (not 404) and wants a token


# --- the service's process, ports and probes ------------------------------------------------

def test_the_service_listens_on_the_declared_port(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = only_container(manifests.get("Deployment", "compass-auth"))
    command, arguments = parse(container_argv(container), monkeypatch)
    assert command == "serve"
    assert arguments["host"] == "0.0.0.0"  # noqa: S104 - the pod IP, not loopback
    assert container_port(container, "http") == arguments["port"]


def test_termination_grace_covers_the_prestop_sleep_and_the_drain(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload = manifests.get("Deployment", "compass-auth")
    container = only_container(workload)
    _, arguments = parse(container_argv(container), monkeypatch)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # Endpoints must be gone before the drain starts: a few seconds at least.
    assert pre_stop >= 3
    grace = pod_spec(workload)["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + arguments["drain_seconds"] + 5


def probe_paths(manifests: Manifests) -> dict[str, tuple[str, int]]:
    container = only_container(manifests.get("Deployment", "compass-auth"))
    return {
        kind: (container[kind]["httpGet"]["path"],
               container_port(container, container[kind]["httpGet"]["port"]))
        for kind in ("readinessProbe", "livenessProbe")
    }


def test_probes_use_the_services_port_and_health_paths(manifests: Manifests) -> None:
    paths = probe_paths(manifests)
    assert paths == {"readinessProbe": ("/readyz", 8080), "livenessProbe": ("/healthz", 8080)}


async def test_probe_paths_answer_on_the_real_service(
    running: RunningService, manifests: Manifests
) -> None:
    for path, _ in probe_paths(manifests).values():
        response = await running.get(path)
        assert response.code == 200, path
    # The same request on a path the service does not have: the check can fail.
    assert (await running.get("/ready")).code == 404


# --- Services, PDB, HPA ---------------------------------------------------------------------

def test_every_service_selects_one_workload_and_its_ports(manifests: Manifests) -> None:
    for service in manifests.of_kind("Service"):
        selector = service["spec"]["selector"]
        targets = [w for w in manifests.workloads()
                   if selects(selector, w["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, service["metadata"]["name"]
        container = only_container(targets[0])
        for port in service["spec"]["ports"]:
            container_port(container, port["targetPort"])


def test_every_deployment_selector_matches_its_template(manifests: Manifests) -> None:
    for workload in manifests.of_kind("Deployment"):
        assert selects(workload["spec"]["selector"]["matchLabels"],
                       workload["spec"]["template"]["metadata"]["labels"])


def test_disruption_budget_and_autoscaler_fit_the_deployment(manifests: Manifests) -> None:
    deployment = manifests.get("Deployment", "compass-auth")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    pdb = manifests.get("PodDisruptionBudget", "compass-auth")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    # Fewer than the replicas, or no node could ever be drained.
    assert 1 <= pdb["spec"]["minAvailable"] < replicas
    hpa = manifests.get("HorizontalPodAutoscaler", "compass-auth")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "compass-auth")
    assert hpa["spec"]["minReplicas"] == replicas
    assert hpa["spec"]["maxReplicas"] > replicas
    # CPU utilisation is relative to the request: without one the HPA cannot compute it.
    resources = [m["resource"]["name"] for m in hpa["spec"]["metrics"]]
    for name in resources:
        assert name in only_container(deployment)["resources"]["requests"]


def test_replicas_spread_over_nodes(manifests: Manifests) -> None:
    spec = pod_spec(manifests.get("Deployment", "compass-auth"))
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in keys
    labels = manifests.get("Deployment", "compass-auth")["spec"]["template"]["metadata"]["labels"]
    for constraint in spec["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"]["matchLabels"], labels)


async def test_the_scrape_annotations_point_at_the_metrics(
    start_service: StartService, telemetry_setup: Any, manifests: Manifests
) -> None:
    (deployment,) = [w for w in manifests.workloads()
                     if w["metadata"]["name"] == "compass-auth"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    container = only_container(deployment)
    assert container_port(container, int(annotations["prometheus.io/port"]))
    running = await start_service(telemetry=telemetry_setup[0])
    await running.get(token=running.token())
    response = await running.get(annotations["prometheus.io/path"])
    assert response.code == 200
    assert b"auth_verifications_total" in response.body
