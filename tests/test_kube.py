"""Where the API server is: in-cluster folder or kubeconfig, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from compass_auth.apiserver.connection import KubeConfigError, connect
from compass_auth.apiserver.discovery import DiscoveryClient
from compass_auth.testing import DevCluster

from .helpers import settings_from


async def connect_and_fetch(environ: dict[str, str]) -> str:
    api = await connect(settings_from(environ), environ)
    try:
        return (await DiscoveryClient(api).fetch()).issuer
    finally:
        await api.close()


async def test_in_cluster_folder_and_environment(devcluster: DevCluster, tmp_path: Path) -> None:
    sa_dir = devcluster.write_serviceaccount_dir(tmp_path / "sa")
    environ = {**devcluster.incluster_environ(), "AUTH_SERVICEACCOUNT_DIR": str(sa_dir),
               # A kubeconfig that exists must not win inside a pod.
               "KUBECONFIG": str(tmp_path / "ignored")}
    api = await connect(settings_from(environ), environ)
    try:
        assert api.source == "in-cluster"
        assert api.namespace == "compass-system"
        assert api.host == devcluster.url
        assert (await DiscoveryClient(api).fetch()).issuer == devcluster.issuer
    finally:
        await api.close()


async def test_kubeconfig_with_a_client_certificate(devcluster: DevCluster, tmp_path: Path) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc", auth="client-cert")
    assert await connect_and_fetch({"KUBECONFIG": str(kubeconfig)}) == devcluster.issuer


async def test_kubeconfig_with_a_token(devcluster: DevCluster, tmp_path: Path) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc")
    assert await connect_and_fetch({"KUBECONFIG": str(kubeconfig)}) == devcluster.issuer
    assert devcluster.request_log[0].headers_subset.get("Authorization-Fingerprint")


async def test_the_kubeconfig_is_never_written_back(devcluster: DevCluster, tmp_path: Path) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc")
    before = kubeconfig.read_bytes()
    await connect_and_fetch({"KUBECONFIG": str(kubeconfig)})
    assert kubeconfig.read_bytes() == before


async def test_kubeconfig_context_selection(devcluster: DevCluster, tmp_path: Path) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc")
    environ = {"KUBECONFIG": str(kubeconfig), "AUTH_KUBE_CONTEXT": "no-such-context"}
    with pytest.raises(KubeConfigError, match="could not be loaded"):
        await connect(settings_from(environ), environ)


async def test_missing_kubeconfig_says_what_to_do(tmp_path: Path) -> None:
    environ = {"KUBECONFIG": str(tmp_path / "absent")}
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_HOST is not set") as caught:
        await connect(settings_from(environ), environ)
    assert "demo" in str(caught.value)


async def test_insecure_kubeconfig_is_refused(devcluster: DevCluster, tmp_path: Path) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc")
    document = yaml.safe_load(kubeconfig.read_text())
    cluster = document["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["insecure-skip-tls-verify"] = True
    kubeconfig.write_text(yaml.safe_dump(document))
    environ = {"KUBECONFIG": str(kubeconfig)}
    with pytest.raises(KubeConfigError, match="insecure-skip-tls-verify"):
        await connect(settings_from(environ), environ)


@pytest.mark.parametrize("missing", ["token", "ca.crt"])
async def test_missing_in_cluster_files_name_the_folder(
    devcluster: DevCluster, tmp_path: Path, missing: str
) -> None:
    sa_dir = devcluster.write_serviceaccount_dir(tmp_path / "sa", layout="flat")
    (sa_dir / missing).unlink()
    environ = {**devcluster.incluster_environ(), "AUTH_SERVICEACCOUNT_DIR": str(sa_dir)}
    with pytest.raises(KubeConfigError, match="AUTH_SERVICEACCOUNT_DIR") as caught:
        await connect(settings_from(environ), environ)
    assert str(sa_dir) in str(caught.value)


async def test_a_certificate_from_another_ca_is_refused(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    kubeconfig = devcluster.write_kubeconfig(tmp_path / "kc")
    devcluster.set_server_certificate(self_signed=True)
    from compass_auth.apiserver.discovery import FetchError

    with pytest.raises(FetchError, match=r"[Cc]ertificate|SSL"):
        await connect_and_fetch({"KUBECONFIG": str(kubeconfig)})
