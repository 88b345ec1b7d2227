"""The API server's load from a fleet, on paper: docs/scale.md's model as code.

N replicas of a service verify the tokens of M caller pods. What each replica sends the API
server follows from the settings (compass_auth/settings.py):

* discovery and JWKS: one of each per ``AUTH_JWKS_REFRESH_INTERVAL`` (±10 % jitter); once a
  refresh has failed, one discovery attempt per ``AUTH_REDISCOVERY_INTERVAL`` (the JWKS is not
  asked for until discovery answers);
* SubjectAccessReview: at most one per distinct (token, check) per ``AUTH_AUTHZ_ALLOWED_TTL``
  (the decision cache is keyed by the whole principal, the token's credential id included, so
  a caller's new token is decided afresh);
* TokenReview: while the replica holds a key set, the revocation confirmations
  (compass_auth/verification/revocation.py): one per distinct token in use at its first local
  sight, then at most one per ``AUTH_REVOCATION_WINDOW`` (default ``AUTH_TOKENREVIEW_CACHE_TTL``);
  without a key set (started during a discovery outage, or the last good set older than
  ``AUTH_JWKS_MAX_STALE``), one per distinct token per ``AUTH_TOKENREVIEW_CACHE_TTL``, and no
  confirmations (the review is the verification).

Each figure is per second over a phase of ``seconds``, plus what happens once in it (a restart
empties every cache; the first successful discovery after an outage). Pure arithmetic: the
benchmark (benchmarks/fleet.py) puts it beside what the emulator counted.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The request kinds of the report, in its column order.
KINDS = ("discovery", "jwks", "tokenreview", "subjectaccessreview", "other")

#: When the service's start-up discovery tries, in seconds after start, before it gives up on
#: the key set: one attempt and three retries 1, 2 and 4 s apart
#: (compass_auth/apiserver/discovery.py, ``STARTUP_ATTEMPTS``); the retries every
#: ``AUTH_REDISCOVERY_INTERVAL`` begin after them.
STARTUP_ATTEMPTS_AT = (0.0, 1.0, 3.0, 7.0)
STARTUP_SECONDS = STARTUP_ATTEMPTS_AT[-1]


@dataclass(frozen=True)
class Fleet:
    """The fleet and the settings the model needs."""

    replicas: int
    callers: int
    refresh_interval: float  # AUTH_JWKS_REFRESH_INTERVAL
    rediscovery_interval: float  # AUTH_REDISCOVERY_INTERVAL
    tokenreview_ttl: float  # AUTH_TOKENREVIEW_CACHE_TTL
    allowed_ttl: float  # AUTH_AUTHZ_ALLOWED_TTL
    #: AUTH_REVOCATION_WINDOW (None: the TokenReview TTL); 0 when AUTH_REVOCATION_CHECK is off.
    revocation_window: float | None = None

    def window(self) -> float:
        """The revocation window (0: confirmations off)."""
        return self.tokenreview_ttl if self.revocation_window is None else self.revocation_window

    def confirmations(self, seconds: float) -> float:
        """Revocation confirmations of the fleet's tokens in use over ``seconds`` (each token
        already confirmed once; first sights spread over the window)."""
        window = self.window()
        return 0.0 if window == 0 else self.replicas * self.callers * seconds / window


#: The phases the benchmark runs, in order, with what each means for the model.
PHASES = {
    "steady": "stable tokens, every replica holds the key set",
    "rotation wave": "every caller switches to a new token during the phase",
    "outage, keys held": "discovery and JWKS answer 503; the replicas keep their key sets",
    "outage, restarted": "the replicas restarted during the outage: no key set, TokenReview",
    "recovery": "discovery answers again; the replicas retry, load keys, stop reviewing",
}


def expected(fleet: Fleet, phase: str, seconds: float) -> dict[str, float]:
    """Requests the API server should receive in ``seconds`` of ``phase``, by kind."""
    n, m = fleet.replicas, fleet.callers
    refreshes = n * seconds / fleet.refresh_interval
    decisions = n * m * seconds / fleet.allowed_ttl
    reviews = n * m * seconds / fleet.tokenreview_ttl
    confirmations = fleet.confirmations(seconds)
    first_sights = n * m if confirmations else 0.0  # a new token's first confirmation
    if phase == "steady":
        return _row(refreshes, refreshes, confirmations, decisions)
    if phase == "rotation wave":
        # A new token is verified locally and confirmed at its first sight, in the background.
        # The decision cache is keyed by everything the review names, the token's credential id
        # (JTI) included (compass_auth/core/access.py, ``principal``): each new token is decided
        # once per replica.
        return _row(refreshes, refreshes, first_sights + confirmations, n * m + decisions)
    if phase == "outage, keys held":
        # A replica with keys notices the outage at its next scheduled refresh (on average half
        # an interval in), then retries discovery every rediscovery interval.
        noticed = n * min(1.0, seconds / fleet.refresh_interval)
        later = n * max(0.0, seconds - fleet.refresh_interval / 2) / fleet.rediscovery_interval
        # TokenReview still answers: the confirmations go on.
        return _row(noticed + later, 0, confirmations, decisions)
    if phase == "outage, restarted":
        # Start-up discovery (every attempt fails), then the retries. Every cache starts empty:
        # each (replica, token) is reviewed and decided at first sight, then once per TTL.
        startup = n * sum(1 for at in STARTUP_ATTEMPTS_AT if at < seconds)
        later = n * max(0.0, seconds - STARTUP_SECONDS) / fleet.rediscovery_interval
        return _row(startup + later, 0, max(n * m, reviews), max(n * m, decisions))
    if phase == "recovery":
        # Each replica's next retry (within one rediscovery interval) gets discovery and the
        # JWKS, which then refresh on the normal schedule. Until that retry, tokens whose
        # TokenReview answer expires are reviewed again.
        fetches = n * max(1.0, seconds / fleet.refresh_interval)
        pending = min(seconds, fleet.rediscovery_interval)
        # Then the replicas' verified-token caches are empty (they restarted without keys):
        # the tokens' first local sights come together, and so do their confirmations, one
        # round then once per whole window left in the phase.
        rounds = 1 + (seconds - pending) // fleet.window() if first_sights else 0
        return _row(fetches, fetches,
                    n * m * pending / fleet.tokenreview_ttl + first_sights * rounds, decisions)
    raise ValueError(f"no model for phase {phase!r}")


def _row(discovery: float, jwks: float, tokenreview: float,
         subjectaccessreview: float) -> dict[str, float]:
    return {"discovery": discovery, "jwks": jwks, "tokenreview": tokenreview,
            "subjectaccessreview": subjectaccessreview, "other": 0.0}
