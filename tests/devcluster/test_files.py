"""Kubeconfig and service-account folder, checked with kubernetes_asyncio itself."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no stubs shipped
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

from compass_auth.testing import DevCluster

from .kubehttp import call, review


async def _version_and_review(cfg: Any, token: str) -> tuple[str, Any]:
    async with client.ApiClient(configuration=cfg) as api:
        version = await client.VersionApi(api).get_code(_request_timeout=5)
        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=["compass-internal"])
        )
        result = await client.AuthenticationV1Api(api).create_token_review(
            body, _request_timeout=5
        )
        return version.git_version, result.status


def test_kubeconfig_structure(
    devcluster: DevCluster, devcluster_kubeconfig: Path
) -> None:
    document = yaml.safe_load(devcluster_kubeconfig.read_text())
    assert document["kind"] == "Config"
    assert document["apiVersion"] == "v1"
    [cluster] = document["clusters"]
    assert cluster["cluster"]["server"] == devcluster.url
    assert (
        base64.b64decode(cluster["cluster"]["certificate-authority-data"])
        == devcluster.ca_pem
    )
    [context] = document["contexts"]
    assert document["current-context"] == context["name"]
    assert context["context"]["namespace"] == "compass-system"
    [user] = document["users"]
    assert set(user["user"]) == {"token"}
    assert os.stat(devcluster_kubeconfig).st_mode & 0o077 == 0


def test_kubeconfig_with_token_works_with_kubernetes_asyncio(
    devcluster: DevCluster, devcluster_kubeconfig: Path
) -> None:
    cfg = client.Configuration()
    asyncio.run(
        config.load_kube_config(
            config_file=str(devcluster_kubeconfig),
            client_configuration=cfg,
            persist_config=False,
        )
    )
    version, status = asyncio.run(_version_and_review(cfg, devcluster.mint()))
    assert version.startswith("v1.")
    assert status.authenticated is True
    assert status.user.username == "system:serviceaccount:default:collector"


def test_kubeconfig_with_client_certificate(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    path = devcluster.write_kubeconfig(tmp_path / "admin.conf", auth="client-cert")
    [user] = yaml.safe_load(path.read_text())["users"]
    assert set(user["user"]) == {"client-certificate-data", "client-key-data"}
    cfg = client.Configuration()
    asyncio.run(
        config.load_kube_config(
            config_file=str(path),
            client_configuration=cfg,
            persist_config=False,
            temp_file_path=str(tmp_path),
        )
    )
    # Even with TokenReview switched off for service accounts, the admin may call it.
    devcluster.set_tokenreview_allowed(False)
    version, status = asyncio.run(_version_and_review(cfg, devcluster.mint()))
    assert version.startswith("v1.")
    assert status.authenticated is True


def test_serviceaccount_folder_kubelet_layout(
    devcluster: DevCluster, devcluster_sa_dir: Path
) -> None:
    folder = devcluster_sa_dir
    data = folder / "..data"
    assert data.is_symlink()
    assert os.readlink(data).startswith("..20")
    for name in ("token", "ca.crt", "namespace"):
        assert (folder / name).is_symlink()
        assert os.readlink(folder / name) == f"..data/{name}"
    assert (folder / "namespace").read_text() == "compass-system"
    assert (folder / "ca.crt").read_bytes() == devcluster.ca_pem
    token = (folder / "token").read_text()
    assert (
        review(devcluster, token, caller=devcluster.admin_token).json()["status"][
            "authenticated"
        ]
        is True
    )


def test_rotation_swaps_the_data_symlink(
    devcluster: DevCluster, devcluster_sa_dir: Path
) -> None:
    folder = devcluster_sa_dir
    before_target = os.readlink(folder / "..data")
    before = (folder / "token").read_text()
    with open(folder / "token") as held:  # a reader that keeps the old file open
        rotated = devcluster.rotate_serviceaccount_token(folder)
        assert held.read() == before
    assert (folder / "token").read_text() == rotated != before
    assert os.readlink(folder / "..data") != before_target
    assert not (folder / before_target).exists()
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith(".."))
    assert hidden == sorted(["..data", os.readlink(folder / "..data")])  # no leftovers


def test_flat_layout_rotation(devcluster: DevCluster, tmp_path: Path) -> None:
    folder = devcluster.write_serviceaccount_dir(tmp_path / "flat", layout="flat")
    assert not (folder / "token").is_symlink()
    before = (folder / "token").read_text()
    assert (
        devcluster.rotate_serviceaccount_token(folder)
        == (folder / "token").read_text()
        != before
    )


def test_rotation_can_revoke_the_old_token(
    devcluster: DevCluster, devcluster_sa_dir: Path
) -> None:
    old = (devcluster_sa_dir / "token").read_text()
    assert call(devcluster, "/openid/v1/jwks", token=old).status == 200
    new = devcluster.rotate_serviceaccount_token(devcluster_sa_dir, revoke_old=True)
    assert call(devcluster, "/openid/v1/jwks", token=old).status == 401
    assert call(devcluster, "/openid/v1/jwks", token=new).status == 200
    answer = review(devcluster, old, caller=devcluster.admin_token).json()["status"]
    assert "authenticated" not in answer
    assert "has been invalidated" in answer["error"]
    devcluster.reset()
    assert call(devcluster, "/openid/v1/jwks", token=old).status == 200


def test_incluster_loader_with_the_folder(
    devcluster: DevCluster, devcluster_sa_dir: Path
) -> None:
    environ = devcluster.incluster_environ()
    assert environ == {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(devcluster.port),
    }
    cfg = client.Configuration()
    InClusterConfigLoader(
        token_filename=str(devcluster_sa_dir / "token"),
        cert_filename=str(devcluster_sa_dir / "ca.crt"),
        environ=environ,
    ).load_and_set(cfg)
    _, status = asyncio.run(_version_and_review(cfg, devcluster.mint()))
    assert status.authenticated is True


def test_discovery_through_kubernetes_asyncio_raw_response(
    devcluster: DevCluster, devcluster_kubeconfig: Path
) -> None:
    """WellKnownApi/OpenidApi return str(dict) unless read raw (_preload_content=False)."""

    async def fetch(cfg: Any) -> tuple[Any, Any]:
        async with client.ApiClient(configuration=cfg) as api:
            # Typed as str, but _preload_content=False returns the aiohttp response.
            raw: Any = await client.WellKnownApi(
                api
            ).get_service_account_issuer_open_id_configuration(
                _preload_content=False, _request_timeout=5
            )
            discovery = json.loads(await raw.read())
            raw.release()
            raw = await client.OpenidApi(api).get_service_account_issuer_open_id_keyset(
                _preload_content=False, _request_timeout=5
            )
            keys = json.loads(await raw.read())
            raw.release()
            return discovery, keys

    cfg = client.Configuration()
    asyncio.run(
        config.load_kube_config(
            config_file=str(devcluster_kubeconfig),
            client_configuration=cfg,
            persist_config=False,
        )
    )
    discovery, keys = asyncio.run(fetch(cfg))
    assert discovery["issuer"] == devcluster.issuer
    assert keys == devcluster.jwks()
