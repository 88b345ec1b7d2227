"""Every pod meets the "restricted" Pod Security Standard, and a few rules on top of it."""

from __future__ import annotations

import re

import pytest

from .manifests import Manifests, Object, containers, pod_spec

#: Volume types the restricted profile allows (Pod Security Standards, "Volume Types").
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
#: Third-party images are pinned to a release, never a moving tag.
PINNED = re.compile(r"^[\w./-]+:v?\d+(\.\d+)+$")
OWN_IMAGE = "compass-auth:dev"


def workloads(manifests: Manifests) -> list[Object]:
    return list(manifests.workloads())


def names(manifests: Manifests) -> list[str]:
    return [w["metadata"]["name"] for w in manifests.workloads()]


def effective(spec: Object, container: Object, key: str) -> object:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    return container.get("securityContext", {}).get(key, spec.get("securityContext", {}).get(key))


def test_the_namespace_enforces_restricted(manifests: Manifests) -> None:
    labels = manifests.get("Namespace", "compass")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_workload_is_checked(manifests: Manifests) -> None:
    assert sorted(names(manifests)) == ["collector", "compass-auth", "jaeger", "no-grant",
                                        "otel-collector", "wrong-audience"]


@pytest.mark.parametrize("index", range(5))
def test_restricted_profile(manifests: Manifests, index: int) -> None:
    workload = workloads(manifests)[index]
    spec = pod_spec(workload)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= RESTRICTED_VOLUMES, volume
    for container in containers(workload):
        context = container.get("securityContext", {})
        assert effective(spec, container, "runAsNonRoot") is True
        assert effective(spec, container, "runAsUser") not in (0, None)
        profile = effective(spec, container, "seccompProfile")
        assert isinstance(profile, dict)
        assert profile["type"] in ("RuntimeDefault", "Localhost")
        assert context.get("allowPrivilegeEscalation") is False
        assert not context.get("privileged")
        assert context["capabilities"]["drop"] == ["ALL"]
        assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        for port in container.get("ports", []):
            assert "hostPort" not in port


@pytest.mark.parametrize("index", range(5))
def test_hardening_beyond_restricted(manifests: Manifests, index: int) -> None:
    workload = workloads(manifests)[index]
    spec = pod_spec(workload)
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccountName"] == workload["metadata"]["name"]
    for container in containers(workload):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert "memory" in resources["limits"]
        image = container["image"]
        if image == OWN_IMAGE:
            # Built locally and loaded into the nodes (kind load): never pulled.
            assert container["imagePullPolicy"] == "IfNotPresent"
        else:
            assert PINNED.match(image), image


def test_only_the_service_gets_an_api_token(manifests: Manifests) -> None:
    for workload in manifests.workloads():
        expected = workload["metadata"]["name"] == "compass-auth"
        assert pod_spec(workload)["automountServiceAccountToken"] is expected
