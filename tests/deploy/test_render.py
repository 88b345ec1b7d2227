"""``kubectl kustomize k8s/`` renders, and every object is valid for current Kubernetes releases."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from .manifests import Manifests, only_container
from .tools import ROOT, kustomize

#: The oldest release the manifests use features of (the preStop `sleep` action is on by
#: default from 1.30), and the newest release kubernetes-validate knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NAMESPACE = "compass"
EXPECTED = {
    ("Namespace", "compass"),
    ("ServiceAccount", "compass-auth"),
    ("ClusterRoleBinding", "compass-auth:tokenreview"),
    ("ClusterRole", "compass-auth:issuer-discovery"),
    ("ClusterRoleBinding", "compass-auth:issuer-discovery"),
    ("Deployment", "compass-auth"),
    ("Service", "compass-auth"),
    ("PodDisruptionBudget", "compass-auth"),
    ("HorizontalPodAutoscaler", "compass-auth"),
    ("ServiceAccount", "collector"),
    ("Deployment", "collector"),
    ("ServiceAccount", "wrong-audience"),
    ("Deployment", "wrong-audience"),
    ("ServiceAccount", "otel-collector"),
    ("Deployment", "otel-collector"),
    ("Service", "otel-collector"),
    ("ServiceAccount", "jaeger"),
    ("Deployment", "jaeger"),
    ("Service", "jaeger"),
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def test_renders_the_expected_objects(manifests: Manifests) -> None:
    rendered = {(o["kind"], o["metadata"]["name"]) for o in manifests.objects
                if o["kind"] != "ConfigMap"}
    assert rendered == EXPECTED
    generated = sorted(o["metadata"]["name"].rsplit("-", 1)[0]
                       for o in manifests.of_kind("ConfigMap"))
    assert generated == ["compass-auth-otel", "compass-auth-settings", "otel-collector-config"]


def test_every_namespaced_object_is_in_the_namespace(manifests: Manifests) -> None:
    for o in manifests.objects:
        expected = None if o["kind"] in CLUSTER_SCOPED else NAMESPACE
        assert o["metadata"].get("namespace") == expected, (o["kind"], o["metadata"]["name"])


def test_every_object_carries_the_part_of_label(manifests: Manifests) -> None:
    for o in manifests.objects:
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
    """config/ is a kustomization of its own (k8s/ includes it): it must build alone too."""
    names = {o["metadata"]["name"].rsplit("-", 1)[0] for o in kustomize(ROOT / "config")}
    assert names == {"compass-auth-settings", "compass-auth-otel", "otel-collector-config"}
