"""An overlay that moves the example to another namespace moves everything that names it.

examples/k8s-overlay-team-a sets ``namespace: team-a`` over k8s/ and renames the cluster-scoped
objects. Rendered with the real ``kubectl kustomize``, every namespaced object, every namespace
field (RBAC subjects included), every service account and every in-cluster address must follow,
and the result must be installable beside the example in ``compass``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from compass_auth.settings import AuthSettings

from .manifests import CLUSTER_SCOPED, Manifests, Object, only_container, pod_spec
from .rbac import DISCOVERY_URLS, allows, cluster_rules, service_account_subjects
from .tools import ROOT, kustomize

OVERLAY = ROOT / "examples" / "k8s-overlay-team-a"
ORIGINAL, MOVED = "compass", "team-a"


@pytest.fixture(scope="module")
def overlay() -> Manifests:
    return Manifests(kustomize(OVERLAY))


def strings(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in an object, with where it is (``spec.template...``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def namespace_references(text: str, namespace: str) -> list[str]:
    """Where ``text`` names ``namespace``: a service-account user or subject
    (``system:serviceaccount:NS:NAME``), a Service's DNS name (``NAME.NS``, ``NAME.NS.svc...``)
    or a ``namespace: NS`` / ``namespace=NS`` setting inside a configuration text.

    ``service.namespace=NS`` (OpenTelemetry's group of services) and paths such as
    ``/var/run/secrets/NS/token`` are not namespace references.
    """
    ns = re.escape(namespace)
    patterns = (
        rf"system:serviceaccounts?:{ns}(?![\w-])",
        rf"[a-z0-9-]+\.{ns}(?![\w-])",
        rf"(?<![\w.])namespace['\"]?\s*[:=]\s*['\"]?{ns}(?![\w-])",
    )
    return [match.group(0) for pattern in patterns for match in re.finditer(pattern, text)]


def service_accounts(manifests: Manifests) -> set[tuple[str, str]]:
    return {(a["metadata"]["namespace"], a["metadata"]["name"])
            for a in manifests.of_kind("ServiceAccount")}


def cluster_scoped(manifests: Manifests) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in manifests.objects
            if o["kind"] in CLUSTER_SCOPED}


def namespaced(manifests: Manifests) -> set[tuple[str, str]]:
    """Kinds and names; a generated ConfigMap's without the hash of its content (the overlay
    changes the settings: its own audience)."""
    return {(o["kind"], _GENERATED_HASH.sub("", o["metadata"]["name"])
             if o["kind"] == "ConfigMap" else o["metadata"]["name"])
            for o in manifests.objects if o["kind"] not in CLUSTER_SCOPED}


#: The suffix kustomize's generators add: a hash of the content.
_GENERATED_HASH = re.compile(r"-[a-z0-9]{10}$")


# --- the overlay renders the whole example, elsewhere ----------------------------------------

def test_the_overlay_has_every_object_of_the_example(
    overlay: Manifests, manifests: Manifests
) -> None:
    assert namespaced(overlay) == namespaced(manifests)
    assert sorted(kind for kind, _ in cluster_scoped(overlay)) == sorted(
        kind for kind, _ in cluster_scoped(manifests))


def test_it_can_be_installed_beside_the_example(overlay: Manifests, manifests: Manifests) -> None:
    """Cluster-scoped objects are shared by every install: none may have the example's name,
    or applying the overlay would rebind the example's roles to team-a's account."""
    assert cluster_scoped(overlay).isdisjoint(cluster_scoped(manifests))


def test_the_namespace_is_created_restricted(overlay: Manifests) -> None:
    assert [n["metadata"]["name"] for n in overlay.of_kind("Namespace")] == [MOVED]
    labels = overlay.get("Namespace", MOVED)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_namespaced_object_is_in_the_new_namespace(overlay: Manifests) -> None:
    for o in overlay.objects:
        expected = None if o["kind"] in CLUSTER_SCOPED else MOVED
        assert o["metadata"].get("namespace") == expected, (o["kind"], o["metadata"]["name"])


def test_every_namespace_field_names_the_new_namespace(overlay: Manifests) -> None:
    """metadata.namespace, RBAC subjects and any other field called ``namespace``."""
    fields = [(o["kind"], o["metadata"]["name"], path, value) for o in overlay.objects
              for path, value in strings(o) if path.rsplit(".", 1)[-1] == "namespace"]
    assert fields
    assert [f for f in fields if f[3] != MOVED] == []


def test_no_text_names_the_old_namespace(overlay: Manifests) -> None:
    """Settings, arguments, URLs and configuration files carried in ConfigMaps included."""
    found = [(o["kind"], o["metadata"]["name"], path, reference) for o in overlay.objects
             for path, value in strings(o) for reference in namespace_references(value, ORIGINAL)]
    assert found == []


@pytest.mark.parametrize(
    ("text", "references"),
    [
        ("http://otel-collector.compass.svc:4318", ["otel-collector.compass"]),
        ("jaeger.compass:4317", ["jaeger.compass"]),
        ("http://compass-auth.compass.svc.cluster.local:8080/whoami", ["compass-auth.compass"]),
        ("system:serviceaccount:compass:collector", ["system:serviceaccount:compass"]),
        ("ALLOWED=system:serviceaccount:compass:a", ["system:serviceaccount:compass"]),
        ("k8sattributes:\n  filter:\n    namespace: compass\n", ["namespace: compass"]),
        ("http://otel-collector:4318", []),
        ("/var/run/secrets/compass/token", []),
        ("service.namespace=compass,deployment.environment.name=dev", []),
        ("compass-auth.team-a.svc", []),
        ("system:serviceaccount:compass-2:collector", []),
    ],
)
def test_the_reference_finder(text: str, references: list[str]) -> None:
    assert namespace_references(text, ORIGINAL) == references


def test_every_object_validates_strictly(overlay: Manifests) -> None:
    for o in overlay.objects:
        kubernetes_validate.validate(o, kubernetes_validate.latest_version(), strict=True)


def _audience(overlay: Manifests) -> str:
    return overlay.env_from_configmaps(only_container(overlay.get("Deployment", "compass-auth")))[
        "AUTH_AUDIENCE"]


def _projected_audience(workload: Object) -> str:
    [audience] = [source["serviceAccountToken"]["audience"]
                  for volume in pod_spec(workload)["volumes"]
                  for source in volume.get("projected", {}).get("sources", [])
                  if "serviceAccountToken" in source]
    return str(audience)


def test_the_second_install_has_an_audience_of_its_own(
    overlay: Manifests, manifests: Manifests
) -> None:
    """Issue 18, finding 10: two installs with one audience accept each other's callers'
    tokens. The overlay's service names another, and its clients request it."""
    ours, example = _audience(overlay), _audience(manifests)
    assert ours != example
    assert AuthSettings.from_env({"AUTH_AUDIENCE": ours}).audience == ours
    requested = {name: _projected_audience(overlay.get("Deployment", name))
                 for name in ("collector", "no-grant", "wrong-audience")}
    assert requested["collector"] == requested["no-grant"] == ours
    assert requested["wrong-audience"] not in (ours, example)


# --- identities and permissions follow ------------------------------------------------------

def test_every_pod_runs_as_a_service_account_of_its_namespace(overlay: Manifests) -> None:
    accounts = service_accounts(overlay)
    for workload in overlay.workloads():
        account = (workload["metadata"]["namespace"], pod_spec(workload)["serviceAccountName"])
        assert account in accounts, workload["metadata"]["name"]


def test_every_binding_subject_is_a_rendered_service_account(overlay: Manifests) -> None:
    subjects = service_account_subjects(overlay)
    assert len(subjects) == 3  # the service's two ClusterRoleBindings, the collector's grant
    for binding, namespace, name in subjects:
        assert (namespace, name) in service_accounts(overlay), (binding, namespace, name)


def test_the_service_keeps_its_permissions(overlay: Manifests) -> None:
    deployment = overlay.get("Deployment", "compass-auth")
    account = pod_spec(deployment)["serviceAccountName"]
    rules = cluster_rules(overlay, MOVED, account)
    assert allows(rules, "create", group="authentication.k8s.io", resource="tokenreviews")
    for url in DISCOVERY_URLS:
        assert allows(rules, "get", url=url)
    # And nothing stays granted to the account of the same name in the old namespace.
    assert cluster_rules(overlay, ORIGINAL, account) == []


# --- in-cluster addresses reach the overlay's own Services -----------------------------------

def addresses(overlay: Manifests) -> list[tuple[Object, str, int]]:
    """(calling workload, host, port) of every in-cluster address the pods are given."""
    found: list[tuple[Object, str, int]] = []
    service = overlay.get("Deployment", "compass-auth")
    endpoint = urlsplit(overlay.env_from_configmaps(only_container(service))[
        "OTEL_EXPORTER_OTLP_ENDPOINT"])
    found.append((service, endpoint.hostname or "", endpoint.port or 0))
    for client in ("collector", "wrong-audience", "no-grant"):
        workload = overlay.get("Deployment", client)
        args = only_container(workload)["args"]
        url = urlsplit(args[args.index("--url") + 1])
        found.append((workload, url.hostname or "", url.port or 0))
    return found


def test_every_address_reaches_a_service_of_the_overlay(overlay: Manifests) -> None:
    targets = []
    for caller, host, port in addresses(overlay):
        workload, _ = overlay.resolve(host, port, caller["metadata"]["namespace"])
        assert workload["metadata"]["namespace"] == MOVED
        targets.append(workload["metadata"]["name"])
    assert targets == ["otel-collector", "compass-auth", "compass-auth", "compass-auth"]


# --- why base/rbac.yaml writes the account's namespace ---------------------------------------

def test_without_the_accounts_own_namespace_the_subjects_stay_behind(tmp_path: Path) -> None:
    """Kustomize (kubectl's, as pinned) matches a binding subject to a ServiceAccount by the
    namespace in the account's own file. Left to the kustomization's ``namespace:``, the
    account would be moved by an overlay while its subjects keep naming ``compass``: the
    failure base/rbac.yaml avoids, reproduced on a copy."""
    for folder in ("k8s", "config"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    rbac = tmp_path / "k8s" / "base" / "rbac.yaml"
    text = rbac.read_text(encoding="utf-8")
    account = "kind: ServiceAccount\nmetadata:\n  name: compass-auth\n  namespace: compass\n"
    assert account in text
    rbac.write_text(text.replace(account, account.replace("  namespace: compass\n", "")),
                    encoding="utf-8")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"namespace: {MOVED}\nresources:\n  - ../k8s\n", encoding="utf-8")
    subjects = service_account_subjects(Manifests(kustomize(overlay)))
    assert {namespace for _, namespace, name in subjects if name == "compass-auth"} == {ORIGINAL}
