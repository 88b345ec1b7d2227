"""Everything the emulator knows, shared by the test thread and the server thread."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence

from compass_auth.testing.clock import EmulatorClock
from compass_auth.testing.credentials.keys import KeyRing
from compass_auth.testing.credentials.validation import TokenValidator, UserInfo
from compass_auth.testing.objects import ObjectStore
from compass_auth.testing.rbac.authorizer import Attributes
from compass_auth.testing.rbac.store import RbacStore
from compass_auth.testing.server.faults import FaultBoard
from compass_auth.testing.server.requestlog import RequestLog

logger = logging.getLogger(__name__)

ADMIN_USER = UserInfo(
    "kubernetes-admin", "", ("system:masters", "system:authenticated")
)
ANONYMOUS_USER = UserInfo("system:anonymous", "", ("system:unauthenticated",))
DEFAULT_SERVICE_NAMESPACE = "compass-system"
DEFAULT_SERVICE_ACCOUNT = "compass-auth"


class ClusterState:
    """Configuration, objects, keys, switches and logs of one emulated cluster.

    Plain attributes are only assigned whole (one reference store each), which
    is atomic in CPython; compound state (keys, objects, faults, log) has its
    own lock. That is all the thread-safety the fault switches need.
    """

    def __init__(
        self,
        *,
        issuer: str,
        extra_issuers: Sequence[str],
        key_type: str,
        api_audiences: Sequence[str] | None,
        external_address: str,
        fault_endpoints: Collection[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if key_type not in ("RSA", "EC"):
            raise ValueError(f"unsupported key type {key_type!r} (want 'RSA' or 'EC')")
        self.original_issuer = issuer
        self.issuer = issuer
        self.extra_issuers = tuple(extra_issuers)
        # A real API server's --api-audiences default to the first issuer.
        self.api_audiences: tuple[str, ...] = (
            tuple(api_audiences) if api_audiences else (issuer,)
        )
        self.external_address = external_address.rstrip("/")
        # One clock for everything that reads the time, so advancing it (DevCluster.advance_clock)
        # moves the deletion leeway, the token time checks and minting together.
        self.clock = EmulatorClock(clock)
        self.keys = KeyRing("RSA" if key_type == "RSA" else "EC")
        self.objects = ObjectStore(self.clock)
        self.faults = FaultBoard(fault_endpoints)
        self.rbac = RbacStore(self.clock)
        self.requests = RequestLog()
        self.admin_token = secrets.token_urlsafe(32)
        self.tokenreview_allowed = True
        self.subjectaccessreview_allowed = True
        self.discovery_allowed = True
        self._revoked_lock = threading.Lock()
        # sha256 of tokens the API server no longer accepts (see revoke_token).
        self._revoked: set[str] = set()
        self._delegators_lock = threading.Lock()
        # ServiceAccounts bound to system:auth-delegator (may create TokenReviews).
        self._delegators: set[tuple[str, str]] = {
            (DEFAULT_SERVICE_NAMESPACE, DEFAULT_SERVICE_ACCOUNT)
        }
        self.validator = TokenValidator(
            self.keys,
            self.objects,
            self.accepted_issuers,
            self.api_audiences,
            self.clock,
            self.is_revoked,
        )

    def accepted_issuers(self) -> tuple[str, ...]:
        """Issuers TokenReview accepts: the current one first, then the others.

        After ``set_issuer`` the original issuer stays accepted, as the
        Kubernetes docs advise when migrating --service-account-issuer (list
        the new one first, keep the old one until its tokens expire).
        """
        issuers = [self.issuer, *self.extra_issuers, self.original_issuer]
        return tuple(dict.fromkeys(issuers))

    def revoke(self, token: str) -> None:
        """Stop accepting ``token`` (as when its bound object is deleted)."""
        with self._revoked_lock:
            self._revoked.add(hashlib.sha256(token.encode()).hexdigest())

    def is_revoked(self, token: str) -> bool:
        """Whether :meth:`revoke` was called for ``token`` since the last reset."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._revoked_lock:
            return digest in self._revoked

    def grant_tokenreview(self, namespace: str, name: str) -> None:
        """Bind ``system:auth-delegator`` to a service account."""
        with self._delegators_lock:
            self._delegators.add((namespace, name))

    def may_create_tokenreviews(self, user: UserInfo) -> bool:
        """RBAC for ``create tokenreviews``: admins, and delegators unless switched off."""
        return self._may_delegate(
            user, self.tokenreview_allowed, "authentication.k8s.io", "tokenreviews"
        )

    def may_create_subjectaccessreviews(self, user: UserInfo) -> bool:
        """RBAC for ``create subjectaccessreviews``: same grant (system:auth-delegator)."""
        return self._may_delegate(
            user, self.subjectaccessreview_allowed, "authorization.k8s.io", "subjectaccessreviews"
        )

    def _may_delegate(self, user: UserInfo, switch: bool, group: str, resource: str) -> bool:
        """Admins always; others unless switched off: the accounts given system:auth-delegator
        by ``service_token``, or whoever the RBAC objects (loaded or created) allow."""
        if "system:masters" in user.groups:
            return True
        if not switch:
            return False
        parts = user.username.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            with self._delegators_lock:
                if (parts[2], parts[3]) in self._delegators:
                    return True
        asked = Attributes(user.username, user.groups, "create", True, "", group, resource)
        return self.rbac.authorize(asked).allowed

    def may_get_discovery(self, user: UserInfo, path: str) -> bool:
        """RBAC for the OIDC paths: admins always; others unless switched off.

        ``system:service-account-issuer-discovery`` is bound to the group
        ``system:serviceaccounts`` only, as in kube-apiserver's bootstrap policy; an
        administrator may bind it to ``system:authenticated`` or ``system:unauthenticated``
        (the Kubernetes docs, "Service account issuer discovery"), which the RBAC objects a
        test loads do here. Another cluster's JWT authenticator fetches these paths without
        credentials, so a cluster trusted through ``discoveryURL`` needs the anonymous binding
        (``compass_auth.testing.authnconfig.ANONYMOUS_DISCOVERY_RBAC``)."""
        if "system:masters" in user.groups:
            return True
        if not self.discovery_allowed:
            return False
        if "system:serviceaccounts" in user.groups:
            return True
        asked = Attributes(user.username, user.groups, "get", False, path=path)
        return self.rbac.authorize(asked).allowed

    def reset(self) -> None:
        """Forget faults, counters, switches, the clock's offset and test-scoped RBAC; finish
        graceful deletions; keep keys and the other objects."""
        self.faults.clear()
        self.clock.reset()
        self.objects.remove_terminating()
        self.requests.clear()
        with self._revoked_lock:
            self._revoked.clear()
        self.tokenreview_allowed = True
        self.subjectaccessreview_allowed = True
        self.discovery_allowed = True
        self.issuer = self.original_issuer
        self.rbac.reset()
