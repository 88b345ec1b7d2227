"""Telemetry wiring: service → collector (OTLP/HTTP) → Jaeger (OTLP/gRPC), and Prometheus."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]

from .manifests import Manifests, Object, container_port, only_container, pod_spec
from .tools import ROOT

#: The collector's pipeline, beside the demo component that generates its ConfigMap.
COLLECTOR_PIPELINE = ROOT / "k8s" / "components" / "demo" / "otel-collector-config.yaml"
#: Jaeger v2 all-in-one's built-in configuration (cmd/jaeger/internal/all-in-one.yaml):
#: OTLP gRPC on 4317, the UI on 16686, the health check (GET /status) on 13133.
JAEGER_OTLP_GRPC, JAEGER_UI, JAEGER_HEALTH = 4317, 16686, 13133


def service_env(manifests: Manifests) -> dict[str, str]:
    container = only_container(manifests.get("Deployment", "compass-auth"))
    return manifests.env_from_configmaps(container)


def collector_config(manifests: Manifests) -> dict[str, Any]:
    """The pipeline the collector loads: the ConfigMap key its --config flag points at."""
    deployment = manifests.get("Deployment", "otel-collector")
    container = only_container(deployment)
    flags = dict(arg.split("=", 1) for arg in container["args"] if "=" in arg)
    path = flags["--config"]
    directory, _, key = path.rpartition("/")
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
    configmap = manifests.get("ConfigMap", volume["configMap"]["name"])
    assert configmap["metadata"]["name"].startswith("otel-collector-config-")
    text = configmap["data"][key]
    assert text == COLLECTOR_PIPELINE.read_text(encoding="utf-8")
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def resolve(manifests: Manifests, host: str, port: int, caller: str) -> tuple[Object, int]:
    """The workload and container port that ``host:port`` reaches from the pods of ``caller``."""
    namespace = manifests.get("Deployment", caller)["metadata"]["namespace"]
    return manifests.resolve(host, port, namespace)


def test_the_service_exports_over_otlp_http(manifests: Manifests) -> None:
    env = service_env(manifests)
    assert env["OTEL_SERVICE_NAME"] == "compass-auth"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


def test_the_otlp_endpoint_is_the_collectors_http_receiver(manifests: Manifests) -> None:
    endpoint = urlsplit(service_env(manifests)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.scheme == "http"
    assert endpoint.path in ("", "/")  # the SDK appends /v1/traces and /v1/metrics
    assert endpoint.hostname is not None
    assert endpoint.port is not None
    workload, port = resolve(manifests, endpoint.hostname, endpoint.port, "compass-auth")
    assert workload["metadata"]["name"] == "otel-collector"
    receiver = collector_config(manifests)["receivers"]["otlp"]["protocols"]["http"]
    assert port_of(receiver["endpoint"]) == port


def test_every_pipeline_component_is_defined_and_used(manifests: Manifests) -> None:
    config = collector_config(manifests)
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for pipeline in pipelines.values():
        for section, names in pipeline.items():
            for name in names:
                assert name in config[section], f"{section}.{name} is not defined"
                used[section].add(name)
        # memory_limiter must see data before anything buffers it.
        assert pipeline["processors"][0] == "memory_limiter"
        assert "otlp" in pipeline["receivers"]
    for section, names in used.items():
        assert set(config[section]) == names, f"unused {section}"
    assert set(config["service"]["extensions"]) == set(config["extensions"])


def test_traces_go_to_jaegers_otlp_grpc_port(manifests: Manifests) -> None:
    config = collector_config(manifests)
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    assert len(exporters) == 1
    # `otlp_grpc` is the exporter's type since v0.14x (`otlp` is a deprecated alias).
    assert exporters[0].split("/")[0] == "otlp_grpc"
    host, _, port = config["exporters"][exporters[0]]["endpoint"].rpartition(":")
    workload, container = resolve(manifests, host, int(port), "otel-collector")
    assert workload["metadata"]["name"] == "jaeger"
    assert container == JAEGER_OTLP_GRPC


def test_metrics_are_served_for_prometheus_on_a_service_port(manifests: Manifests) -> None:
    config = collector_config(manifests)
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    port = port_of(config["exporters"]["prometheus"]["endpoint"])
    workload, container = resolve(manifests, "otel-collector", port, "otel-collector")
    assert (workload["metadata"]["name"], container) == ("otel-collector", port)


def test_collector_probes_hit_its_health_check(manifests: Manifests) -> None:
    config = collector_config(manifests)
    container = only_container(manifests.get("Deployment", "otel-collector"))
    health = port_of(config["extensions"]["health_check"]["endpoint"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container_port(container, container[probe]["httpGet"]["port"]) == health


def test_collector_memory_limiter_fits_the_container(manifests: Manifests) -> None:
    config = collector_config(manifests)
    limit = only_container(manifests.get("Deployment", "otel-collector"))["resources"]["limits"]
    assert limit["memory"].endswith("Mi")
    assert config["processors"]["memory_limiter"]["limit_mib"] < int(limit["memory"][:-2])


def test_jaeger_ports_are_the_all_in_one_defaults(manifests: Manifests) -> None:
    container = only_container(manifests.get("Deployment", "jaeger"))
    assert container_port(container, "ui") == JAEGER_UI
    assert container_port(container, "otlp-grpc") == JAEGER_OTLP_GRPC
    assert container_port(container, "health") == JAEGER_HEALTH
    assert container["readinessProbe"]["httpGet"]["path"] == "/status"
    _, ui = resolve(manifests, "jaeger", JAEGER_UI, "jaeger")
    assert ui == JAEGER_UI


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("K8S_POD_NAME", "metadata.name"),
        ("K8S_POD_UID", "metadata.uid"),
        ("K8S_NAMESPACE_NAME", "metadata.namespace"),
        ("K8S_NODE_NAME", "spec.nodeName"),
    ],
)
def test_downward_api_variables(manifests: Manifests, variable: str, field: str) -> None:
    container = only_container(manifests.get("Deployment", "compass-auth"))
    env = {e["name"]: e for e in container["env"]}
    assert env[variable]["valueFrom"]["fieldRef"]["fieldPath"] == field
