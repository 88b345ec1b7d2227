"""The WARN for stale tokens (past ``kubernetes.io.warnafter``), once per token.

A client that read its projected token once and never again keeps sending the same token for up
to a year; logging every request would flood the log, so each token is reported once (by its
fingerprint, never the token) within a bounded memory. Every request with a stale token is
counted by the ``auth.tokens.stale`` metric instead (``Telemetry.stale_token``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from ..core.bearer import fingerprint
from ..core.identity import Identity

logger = logging.getLogger(__name__)

#: Log line operators grep for; keep it stable (docs/troubleshooting.md).
MSG_STALE = "stale token accepted: past kubernetes.io.warnafter"
#: Distinct stale tokens remembered; beyond that the oldest is forgotten (and may log again).
CAPACITY = 4096


class StaleTokenLog:
    """Logs ``MSG_STALE`` the first time each stale token is accepted."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __call__(self, identity: Identity, token: str) -> None:
        token_fp = fingerprint(token)
        if token_fp in self._seen:
            self._seen.move_to_end(token_fp)
            return
        self._seen[token_fp] = None
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        logger.warning(
            "%s (token_fp=%s, subject %s)", MSG_STALE, token_fp, identity.subject,
            extra={
                "subject": identity.subject,
                "pod": identity.pod_name or "",
                "warn_after": identity.warn_after,
                "token_fp": token_fp,
                "fix": "the client must re-read its token file (client-go does every minute); "
                "update the client library",
            },
        )
