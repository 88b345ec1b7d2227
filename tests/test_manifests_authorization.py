"""The manifests' authorization policy, tested offline: ``kubectl kustomize k8s/`` loaded into the
emulator, the example service run as the manifests' account with the manifests'
``AUTH_REQUIRED_ACCESS``, and the demo's clients calling it through real HTTP on every
verification path. The collector (bound to the Role) is let in, the no-grant client (a valid
token, no binding) gets 403, the wrong-audience client 401.

The service's own credential is minted here, not by the emulator's ``write_*`` helpers (which
also grant the account TokenReview and SubjectAccessReview): its reviews are allowed by the
manifests' ClusterRoleBinding alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from compass_auth.core.bearer import fingerprint
from compass_auth.testing import DevCluster, Fault
from compass_auth.testing.credentials import files

from .conftest import RunningService, StartService
from .deploy.tools import ROOT, run, tool


@pytest.fixture(scope="module")
def rendered() -> str:
    """``kubectl kustomize k8s/`` with the pinned kubectl (the deploy extra), as text."""
    return run(tool("kubectl"), "kustomize", str(ROOT / "k8s")).stdout


@pytest.fixture(scope="module")
def deployment(rendered: str) -> dict[str, Any]:
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    [found] = [o for o in objects
               if o["kind"] == "Deployment" and o["metadata"]["name"] == "compass-auth"]
    return found


def projected_audience(rendered: str, client: str) -> str:
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    [workload] = [o for o in objects if o["kind"] == "Deployment"
                  and o["metadata"]["name"] == client]
    for volume in workload["spec"]["template"]["spec"]["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            if "serviceAccountToken" in source:
                return str(source["serviceAccountToken"]["audience"])
    raise AssertionError(f"{client} has no projected token")


def own_credentials(cluster: DevCluster, directory: Path, namespace: str, account: str,
                    in_cluster: bool) -> tuple[str, dict[str, str]]:
    """The service's token (as its kubelet would project it) and the variables that point at
    it: a service-account folder in a pod, else a kubeconfig."""
    token = cluster.mint(namespace, account, cluster.api_audiences, 3607, pod=None, node=None)
    if in_cluster:
        folder = files.write_serviceaccount_dir(directory / "own-sa", token=token,
                                                ca_pem=cluster.ca_pem, namespace=namespace)
        return token, {"AUTH_SERVICEACCOUNT_DIR": str(folder)}
    document = files.kubeconfig_document(server=cluster.url, ca_pem=cluster.ca_pem,
                                         user_name=account, user={"token": token},
                                         namespace=namespace)
    return token, {"KUBECONFIG": str(files.write_kubeconfig(directory / "own-kubeconfig",
                                                           document))}


@pytest.mark.parametrize(("mode", "in_cluster"), [
    ("local", False), ("local", True), ("review", False), ("fallback", True),
])
async def test_the_manifests_let_the_collector_in_and_refuse_the_others(
    devcluster: DevCluster, start_service: StartService, rendered: str,
    deployment: dict[str, Any], mode: str, in_cluster: bool, tmp_path: Path,
) -> None:
    namespace = deployment["metadata"]["namespace"]
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    required = {e["name"]: e["value"] for e in container["env"] if "value" in e}[
        "AUTH_REQUIRED_ACCESS"]
    assert devcluster.load_rbac(rendered) >= 5
    if mode == "fallback":
        devcluster.set_fault("discovery", Fault(status=403))
    own_token, credentials = own_credentials(devcluster, tmp_path, namespace,
                                             spec["serviceAccountName"], in_cluster)
    env = {"AUTH_REQUIRED_ACCESS": required, "AUTH_REDISCOVERY_INTERVAL": "60", **credentials}
    if mode == "review":
        env["AUTH_MODE"] = "review"
    running: RunningService = await start_service(in_cluster=in_cluster, **env)
    assert running.authenticator.authorizer.service_namespace == namespace

    def token(client: str) -> str:
        return running.token(namespace=namespace, service_account=client,
                             audiences=(projected_audience(rendered, client),),
                             pod=f"{client}-0")

    answers = {}
    for client in ("collector", "no-grant", "wrong-audience"):
        response = await running.get(token=token(client))
        answers[client] = (response.code, json.loads(response.body).get("reason"))
    assert answers == {
        "collector": (200, None),
        "no-grant": (403, "access_denied"),
        "wrong-audience": (401, "audience_mismatch"),
    }
    # Two reviews, one per caller that got as far, sent with the service's own token; the
    # wrong-audience token was refused before.
    sent = [(r.status, r.headers_subset.get("Authorization-Fingerprint"))
            for r in devcluster.request_log if r.endpoint == "subjectaccessreview"]
    assert sent == [(201, fingerprint(own_token))] * 2
