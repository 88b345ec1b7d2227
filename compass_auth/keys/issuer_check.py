"""The issuer cross-check: discovery's issuer against ``AUTH_ISSUER`` and the service's own
token, at start-up and whenever discovery declares another issuer (a ``KeyCache`` listener that
``verification/factory.py`` installs). The messages are operator-facing lines of
``apiserver/troubleshoot.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..apiserver.troubleshoot import (
    MSG_ISSUER_OWN_TOKEN,
    MSG_ISSUER_PINNED,
    Diagnosis,
    log,
    token_claim,
)
from ..core.claims import one_of
from ..core.keyset import KeySet


def cross_check_issuers(
    discovered: str, pinned: tuple[str, ...], own_issuer: str | None
) -> list[Diagnosis]:
    """Compare the discovered issuer with ``AUTH_ISSUER`` and the service's own token's ``iss``.

    Both are WARNs (issue 5): the service works for tokens that carry an accepted issuer, but
    workloads whose tokens carry the other one (an alias, or the old issuer during a
    ``--service-account-issuer`` migration, when discovery names only the first) get 401.
    """
    accepted = pinned or (discovered,)
    findings: list[Diagnosis] = []
    if pinned and discovered not in pinned:
        findings.append(Diagnosis(
            MSG_ISSUER_PINNED,
            "tokens this cluster issues now carry the discovered issuer: add it to AUTH_ISSUER",
            {"error": f"expected {one_of(pinned)}, got {discovered!r}"},
            level=logging.WARNING,
        ))
    if own_issuer is not None and own_issuer not in accepted:
        findings.append(Diagnosis(
            MSG_ISSUER_OWN_TOKEN,
            "if both are this cluster's issuers (an alias, or old and new during an issuer "
            "migration), list both in AUTH_ISSUER, comma-separated",
            {"error": f"expected {one_of(accepted)}, got {own_issuer!r}"},
            level=logging.WARNING,
        ))
    return findings


class IssuerCrossCheck:
    """A ``KeyCache`` listener: cross-checks issuers whenever the discovered issuer changes.

    ``own_token`` returns the service's own token (in-cluster), or ``None`` when the credentials
    are not a service-account token (a kubeconfig user) and only ``AUTH_ISSUER`` is compared.
    """

    def __init__(
        self,
        pinned: tuple[str, ...],
        own_token: Callable[[], str | None],
        *,
        skip: bool = False,
    ) -> None:
        self._pinned = pinned
        self._own_token = own_token
        self._skip = skip

    def on_keys(self, previous: KeySet | None, current: KeySet) -> None:
        if self._skip or (previous is not None and previous.issuer == current.issuer):
            return
        token = self._own_token()
        own_issuer = token_claim(token, "iss") if token else None
        for diagnosis in cross_check_issuers(current.issuer, self._pinned, own_issuer):
            log(diagnosis)
