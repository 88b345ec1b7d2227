"""``DevCluster``'s RBAC methods: load Roles and bindings from YAML, switch SAR access off."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from compass_auth.testing.rbac.store import (
    DEFAULT_NAMESPACE,
    ManifestError,
    StoreFull,
    parse_manifests,
)
from compass_auth.testing.state import ClusterState

logger = logging.getLogger(__name__)


class RbacControls:
    """Mixed into ``DevCluster``: the emulator's RBAC from Python (see README.md)."""

    _state: ClusterState

    def load_rbac(
        self,
        manifests: str,
        *,
        persistent: bool = False,
        default_namespace: str = DEFAULT_NAMESPACE,
    ) -> int:
        """Apply the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings in ``manifests``.

        ``manifests`` is multi-document YAML text, e.g. the output of ``kubectl kustomize k8s/``.
        Other kinds are skipped, except ServiceAccounts, which are created (TokenRequest needs
        them). Objects replace any of the same name, all or none: an object a real API server
        would refuse raises :class:`~compass_auth.testing.rbac.store.ManifestError` and nothing
        is applied. Namespaced objects without a namespace go to ``default_namespace``.

        The objects last until :meth:`reset` (the ``devcluster`` fixture resets around every
        test) unless ``persistent``. Returns how many RBAC objects were applied.
        """
        loaded = parse_manifests(manifests, default_namespace)
        try:
            self._state.rbac.apply(loaded.objects, persistent=persistent)
        except StoreFull as exc:
            raise ManifestError(str(exc)) from exc
        for namespace, name in loaded.service_accounts:
            self._state.objects.ensure("serviceaccount", namespace, name)
        logger.info(
            "devcluster rbac loaded objects=%d service_accounts=%d persistent=%s",
            len(loaded.objects),
            len(loaded.service_accounts),
            persistent,
        )
        return len(loaded.objects)

    def load_rbac_file(
        self,
        path: str | os.PathLike[str],
        *,
        persistent: bool = False,
        default_namespace: str = DEFAULT_NAMESPACE,
    ) -> int:
        """:meth:`load_rbac` on the contents of a YAML file."""
        text = Path(path).read_text(encoding="utf-8")
        return self.load_rbac(
            text, persistent=persistent, default_namespace=default_namespace
        )

    def set_subjectaccessreview_allowed(self, allowed: bool) -> None:
        """Grant or revoke ``create subjectaccessreviews`` for everyone but admins (403)."""
        self._state.subjectaccessreview_allowed = allowed
