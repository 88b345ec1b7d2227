"""Everything one emulated OIDC issuer knows, shared by the test thread and its server thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from compass_auth.testing.clock import EmulatorClock
from compass_auth.testing.credentials import jws
from compass_auth.testing.credentials.keys import KeyRing
from compass_auth.testing.server.faults import FaultBoard
from compass_auth.testing.server.requestlog import RequestLog

logger = logging.getLogger(__name__)

#: The names ``OidcIssuer.set_fault`` takes and the request log records (plus "notfound").
FAULT_ENDPOINTS = ("discovery", "jwks", "all")


class IssuerState:
    """Issuer URL, keys, faults, request log and clock of one issuer.

    As in ``ClusterState``: plain attributes are replaced whole; keys, faults and the log have
    their own locks. Nothing here is shared with another issuer or cluster.
    """

    def __init__(self, key_type: jws.KeyType, clock: Callable[[], float] = time.time) -> None:
        if key_type not in ("RSA", "EC"):
            raise ValueError(f"unsupported key type {key_type!r} (want 'RSA' or 'EC')")
        #: Set by ``OidcIssuer.start`` (the served URL is known once the port is).
        self.issuer = ""
        self.jwks_uri = ""
        self.keys = KeyRing(key_type)
        self.faults = FaultBoard(FAULT_ENDPOINTS)
        self.requests = RequestLog()
        self.clock = EmulatorClock(clock)

    def reset(self) -> None:
        """Forget faults, the request log and the clock's offset; keep the keys."""
        self.faults.clear()
        self.requests.clear()
        self.clock.reset()
