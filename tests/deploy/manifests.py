"""Looking things up in rendered manifests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Object = dict[str, Any]

#: Kinds that carry a pod template, and where it is.
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
#: The cluster-scoped kinds the manifests use (everything else lives in a namespace).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
#: What a Service's DNS name may end with after ``NAME.NAMESPACE`` (cluster domain cluster.local).
SERVICE_DNS_SUFFIXES = ("", "svc", "svc.cluster.local")


class Manifests:
    """The objects ``kubectl kustomize`` rendered, indexed by kind and name."""

    def __init__(self, objects: list[Object]) -> None:
        self.objects = objects

    def get(self, kind: str, name: str) -> Object:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
        return matches[0]

    def of_kind(self, kind: str) -> list[Object]:
        return [o for o in self.objects if o["kind"] == kind]

    def configmap(self, prefix: str) -> Object:
        """A generated ConfigMap by its name without the content hash suffix."""
        matches = [o for o in self.of_kind("ConfigMap")
                   if o["metadata"]["name"].rsplit("-", 1)[0] == prefix]
        assert len(matches) == 1, f"expected one ConfigMap {prefix}-<hash>, found {len(matches)}"
        return matches[0]

    def workloads(self) -> Iterator[Object]:
        return (o for o in self.objects if o["kind"] in WORKLOADS)

    def resolve(self, host: str, port: int, namespace: str) -> tuple[Object, int]:
        """The workload and container port that ``host:port`` reaches from a pod in ``namespace``.

        As the cluster's DNS answers: a short name is a Service in the caller's own namespace,
        ``NAME.NAMESPACE[.svc[.cluster.local]]`` one in that namespace.
        """
        name, _, rest = host.partition(".")
        if rest:
            namespace, _, suffix = rest.partition(".")
            assert suffix in SERVICE_DNS_SUFFIXES, host
        services = [s for s in self.of_kind("Service")
                    if (s["metadata"]["name"], s["metadata"].get("namespace")) == (name, namespace)]
        assert len(services) == 1, f"{host} names no Service in the namespace {namespace}"
        service = services[0]
        service_port = next((p for p in service["spec"]["ports"] if p["port"] == port), None)
        assert service_port is not None, f"Service {name} has no port {port}"
        workload = next(w for w in self.workloads()
                        if w["metadata"].get("namespace") == namespace
                        and selects(service["spec"]["selector"],
                                    w["spec"]["template"]["metadata"]["labels"]))
        return workload, container_port(only_container(workload), service_port["targetPort"])

    def env_from_configmaps(self, container: Object) -> dict[str, str]:
        """The variables a container gets through ``envFrom`` ConfigMaps (later ones win)."""
        environment: dict[str, str] = {}
        for source in container.get("envFrom", []):
            name = source["configMapRef"]["name"]
            environment.update(self.get("ConfigMap", name).get("data", {}))
        return environment


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Object) -> list[Object]:
    spec = pod_spec(workload)
    result: list[Object] = spec.get("initContainers", []) + spec["containers"]
    return result


def only_container(workload: Object) -> Object:
    found = pod_spec(workload)["containers"]
    assert len(found) == 1, f"{workload['metadata']['name']}: expected one container"
    result: Object = found[0]
    return result


def container_port(container: Object, port: int | str) -> int:
    """Resolve a port name (or number) against the container's declared ports."""
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            result: int = declared["containerPort"]
            return result
    raise AssertionError(f"container {container['name']} declares no port {port!r}")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())
