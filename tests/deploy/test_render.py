"""``kubectl kustomize k8s/`` renders, and every object is valid for current Kubernetes releases.

k8s/ is k8s/base (the service alone) plus the component k8s/components/demo (clients,
collector, Jaeger); the base must also render on its own, as the same objects.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from .manifests import CLUSTER_SCOPED, Manifests, only_container
from .tools import ROOT, kustomize

#: The oldest release the manifests use features of (the preStop `sleep` action is on by
#: default from 1.30), and the newest release kubernetes-validate knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NAMESPACE = "compass"
#: k8s/base: the service alone.
BASE = {
    ("Namespace", "compass"),
    ("ServiceAccount", "compass-auth"),
    ("ClusterRoleBinding", "compass-auth:tokenreview"),
    ("ClusterRole", "compass-auth:issuer-discovery"),
    ("ClusterRoleBinding", "compass-auth:issuer-discovery"),
    ("Role", "compass-auth:caller"),
    ("Deployment", "compass-auth"),
    ("Service", "compass-auth"),
    ("PodDisruptionBudget", "compass-auth"),
    ("HorizontalPodAutoscaler", "compass-auth"),
}
#: k8s/components/demo: what k8s/ adds to the base.
DEMO = {
    ("ServiceAccount", "collector"),
    ("Deployment", "collector"),
    ("ServiceAccount", "wrong-audience"),
    ("Deployment", "wrong-audience"),
    ("ServiceAccount", "no-grant"),
    ("Deployment", "no-grant"),
    ("RoleBinding", "compass-auth:caller:collector"),
    ("ServiceAccount", "otel-collector"),
    ("Deployment", "otel-collector"),
    ("Service", "otel-collector"),
    ("ServiceAccount", "jaeger"),
    ("Deployment", "jaeger"),
    ("Service", "jaeger"),
}
EXPECTED = BASE | DEMO
#: The ConfigMaps (names without the hash suffix): the service's settings from config/, and
#: the collector's pipeline from the demo component.
SETTINGS = ["compass-auth-otel", "compass-auth-settings"]
DEMO_CONFIGMAPS = ["otel-collector-config"]


def kinds_and_names(manifests: Manifests) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in manifests.objects
            if o["kind"] != "ConfigMap"}


def generated(manifests: Manifests) -> list[str]:
    return sorted(o["metadata"]["name"].rsplit("-", 1)[0] for o in manifests.of_kind("ConfigMap"))


@pytest.fixture(scope="module")
def base() -> Manifests:
    return Manifests(kustomize(ROOT / "k8s" / "base"))


def test_renders_the_expected_objects(manifests: Manifests) -> None:
    assert kinds_and_names(manifests) == EXPECTED
    assert generated(manifests) == sorted(SETTINGS + DEMO_CONFIGMAPS)


def test_the_base_renders_the_service_alone(base: Manifests) -> None:
    assert kinds_and_names(base) == BASE
    assert generated(base) == SETTINGS
    assert [w["metadata"]["name"] for w in base.workloads()] == ["compass-auth"]


def test_the_example_deploys_the_base_unchanged(base: Manifests, manifests: Manifests) -> None:
    """The demo component only adds objects: the service is the same with or without it."""
    for o in base.objects:
        assert o in manifests.objects, (o["kind"], o["metadata"]["name"])


@pytest.mark.parametrize("render", ["manifests", "base"])
def test_every_namespaced_object_is_in_the_namespace(
    request: pytest.FixtureRequest, render: str
) -> None:
    rendered: Manifests = request.getfixturevalue(render)
    for o in rendered.objects:
        expected = None if o["kind"] in CLUSTER_SCOPED else NAMESPACE
        assert o["metadata"].get("namespace") == expected, (o["kind"], o["metadata"]["name"])


@pytest.mark.parametrize("render", ["manifests", "base"])
def test_every_object_carries_the_part_of_label(
    request: pytest.FixtureRequest, render: str
) -> None:
    rendered: Manifests = request.getfixturevalue(render)
    for o in rendered.objects:
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "compass-auth"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(manifests: Manifests, version: str) -> None:
    """Against the release's OpenAPI schemas; strict: an unknown (e.g. misspelt) field fails."""
    for o in manifests.objects:
        kubernetes_validate.validate(o, version, strict=True)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.__setitem__("readinessprobe", c.pop("readinessProbe")),
        lambda c: c["ports"][0].__setitem__("containerPort", "8080"),
        lambda c: c["lifecycle"]["preStop"]["sleep"].__setitem__("second", 5),
    ],
    ids=["misspelt-field", "port-as-string", "unknown-nested-field"],
)
def test_the_validation_catches_mistakes(
    manifests: Manifests, mutate: Any
) -> None:
    broken = copy.deepcopy(manifests.get("Deployment", "compass-auth"))
    mutate(only_container(broken))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_config_folder_renders_on_its_own() -> None:
    """config/ is a kustomization of its own (k8s/base includes it): it must build alone too."""
    assert generated(Manifests(kustomize(ROOT / "config"))) == SETTINGS
