"""``DevCluster``: the public face of the emulator (see README.md in this folder)."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Literal

from compass_auth.testing.core import ClusterCore
from compass_auth.testing.credentials import files, jws
from compass_auth.testing.credentials.ca import Issued
from compass_auth.testing.rbac.controls import RbacControls
from compass_auth.testing.server.faults import Fault
from compass_auth.testing.state import DEFAULT_SERVICE_ACCOUNT, DEFAULT_SERVICE_NAMESPACE

logger = logging.getLogger(__name__)

# Identity of kubeadm's admin.conf client certificate.
ADMIN_CN, ADMIN_ORG = "kubernetes-admin", "system:masters"


class DevCluster(RbacControls, ClusterCore):
    """An HTTPS kube-apiserver look-alike on loopback for tests and demos.

    Serves OIDC discovery, JWKS, TokenReview and TokenRequest with the wire
    formats of a real cluster, mints tokens like one, writes kubeconfigs and
    service-account folders, and has switches to break each endpoint.  It
    answers SubjectAccessReview from RBAC objects (``load_rbac``).  It is
    NOT a security boundary: the admin token and keys are for tests only.
    """

    # ---- credentials for the service under test ----------------------------
    def service_token(
        self,
        namespace: str = DEFAULT_SERVICE_NAMESPACE,
        service_account: str = DEFAULT_SERVICE_ACCOUNT,
        lifetime: int = 3607,
    ) -> str:
        """The token a kubelet projects for the service: aud = the API audiences.

        The account is granted TokenReview (system:auth-delegator); discovery is
        open to every service account (system:service-account-issuer-discovery).
        """
        self._state.grant_tokenreview(namespace, service_account)
        return self.mint(
            namespace,
            service_account,
            self._state.api_audiences,
            lifetime,
            pod=None,
            node=None,
        )

    def write_serviceaccount_dir(
        self,
        directory: str | os.PathLike[str],
        namespace: str = DEFAULT_SERVICE_NAMESPACE,
        service_account: str = DEFAULT_SERVICE_ACCOUNT,
        layout: files.Layout = "kubelet",
    ) -> Path:
        """Write ``token``, ``ca.crt``, ``namespace`` as in a pod (kubelet symlink layout)."""
        token = self.service_token(namespace, service_account)
        return files.write_serviceaccount_dir(
            directory,
            token=token,
            ca_pem=self.ca_pem,
            namespace=namespace,
            layout=layout,
        )

    def rotate_serviceaccount_token(
        self, directory: str | os.PathLike[str], revoke_old: bool = False
    ) -> str:
        """Mint a fresh token for the folder's account and swap it in atomically.

        ``revoke_old`` makes the API server refuse the previous token from now on
        (a real one keeps accepting it until its ``exp``): a client that did not
        follow the rotation gets 401.
        """
        folder = Path(directory)
        namespace = (folder / "namespace").read_text(encoding="utf-8")
        old_token = (folder / "token").read_text(encoding="utf-8")
        claims = jws.b64url_decode(old_token.split(".")[1])
        service_account = str(json.loads(claims)["sub"]).rsplit(":", 1)[-1]
        token = self.service_token(namespace, service_account)
        files.rotate_serviceaccount_token(folder, token)
        if revoke_old:
            self.revoke_token(old_token)
        return token

    def revoke_token(self, token: str) -> None:
        """Refuse ``token`` from now on (401 / TokenReview "has been invalidated").

        Cleared by :meth:`reset`.
        """
        self._state.revoke(token)

    def incluster_environ(self) -> dict[str, str]:
        """The two variables a pod gets for the ``kubernetes`` Service."""
        return {
            "KUBERNETES_SERVICE_HOST": self._host,
            "KUBERNETES_SERVICE_PORT": str(self.port),
        }

    def admin_client_certificate(self) -> Issued:
        """Client certificate CN=kubernetes-admin, O=system:masters (created once)."""
        if self._admin_cert is None:
            self._admin_cert = self._ca.issue_client(ADMIN_CN, (ADMIN_ORG,))
        return self._admin_cert

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        auth: Literal["token", "client-cert"] = "token",
        namespace: str = DEFAULT_SERVICE_NAMESPACE,
        service_account: str = DEFAULT_SERVICE_ACCOUNT,
        lifetime: int = 3607,
    ) -> Path:
        """A real kubeconfig for this cluster with inline CA and credentials."""
        if auth == "token":
            user_name = service_account
            user = {"token": self.service_token(namespace, service_account, lifetime)}
        elif auth == "client-cert":
            issued = self.admin_client_certificate()
            user_name = ADMIN_CN
            user = {
                "client-certificate-data": base64.b64encode(issued.cert_pem).decode(
                    "ascii"
                ),
                "client-key-data": base64.b64encode(issued.key_pem).decode("ascii"),
            }
        else:
            raise ValueError(f"auth must be 'token' or 'client-cert', not {auth!r}")
        document = files.kubeconfig_document(
            server=self.url,
            ca_pem=self.ca_pem,
            user_name=user_name,
            user=user,
            namespace=namespace,
        )
        return files.write_kubeconfig(path, document)

    # ---- faults and switches ---------------------------------------------
    def set_fault(self, endpoint: str, fault: Fault) -> None:
        """Break ``endpoint``: a name README.md's endpoint table lets ``set_fault`` take, or
        ``"all"`` (``server.endpoints.FAULT_ENDPOINTS``)."""
        self._state.faults.set(endpoint, fault)

    def set_tokenreview_allowed(self, allowed: bool) -> None:
        """Grant or revoke ``create tokenreviews`` for service accounts (admins keep it)."""
        self._state.tokenreview_allowed = allowed

    def set_discovery_allowed(self, allowed: bool) -> None:
        """Bind or unbind system:service-account-issuer-discovery for service accounts."""
        self._state.discovery_allowed = allowed

    def set_issuer(self, issuer: str) -> None:
        """Declare another issuer in discovery and mint with it; the old one stays accepted."""
        self._state.issuer = issuer
