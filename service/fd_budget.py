"""The descriptor budget: the connections the service may hold, plus what the process needs
besides, must fit under ``RLIMIT_NOFILE``, checked before the service accepts anything.

Every client connection holds one descriptor until its socket is closed, a WebSocket as much as
an HTTP connection, and ``--max-connections`` caps them together (``service/connection_slots.py``).
The rest is counted here:

* the listening sockets (one per address family bound);
* the API-server connection pool: ``AUTH_TOKENREVIEW_MAX_IN_FLIGHT`` plus
  ``compass_auth.apiserver.connection.SPARE_CONNECTIONS``, the limit of its ``aiohttp``
  connector, shared by discovery, JWKS, TokenReview and SubjectAccessReview;
* what the process holds at idle before any client connects: ``ls /proc/PID/fd`` of
  ``python -m service serve`` on uvloop counted 16 besides the listener (stdin, stdout and stderr,
  which is the log; epoll and io_uring; four pipe ends and two socket pairs that wake the event
  loop and deliver signals; an eventfd; the API server's CA as a temporary file; /dev/null);
* short-lived ones: DNS lookups, token file re-reads, the OTLP exporters' connections, the
  connection accepted only to be closed at the cap.

A budget over the soft limit raises the soft limit when the hard limit allows (as Go's runtime
does at start-up), and otherwise refuses to start with a sentence naming the numbers to change.
Without this check a budget over the limit is found under load: ``accept()`` fails with
``EMFILE`` (``service/accept.py``).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Descriptors of the process at idle besides listeners and API-server connections (16 counted,
#: see above), with room for a few more libraries may open.
PROCESS_FDS = 24
#: Short-lived descriptors on top: DNS lookups, token file re-reads, OTLP exports, the
#: connection accepted at the cap only to be closed.
TRANSIENT_FDS = 16


class DescriptorBudgetError(Exception):
    """The connections allowed cannot fit under the file descriptor limit."""


@dataclass(frozen=True)
class DescriptorBudget:
    """What the service may hold open at once."""

    max_connections: int  # client connections, WebSockets included
    max_websockets: int  # only named in the refusal: WebSockets count within max_connections
    listeners: int
    api_connections: int

    @property
    def reserved(self) -> int:
        """Descriptors needed besides client connections."""
        return self.listeners + self.api_connections + PROCESS_FDS + TRANSIENT_FDS

    @property
    def needed(self) -> int:
        return self.max_connections + self.reserved


GetLimit = Callable[[int], tuple[int, int]]
SetLimit = Callable[[int, tuple[int, int]], None]


def fit_descriptor_limit(budget: DescriptorBudget, *,
                         getrlimit: GetLimit = resource.getrlimit,
                         setrlimit: SetLimit = resource.setrlimit) -> int:
    """Make sure ``budget`` fits under ``RLIMIT_NOFILE``; return the soft limit in force.

    Raises the soft limit up to what the budget needs when the hard limit allows it; raises
    ``DescriptorBudgetError`` when it does not.
    """
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    needed = budget.needed
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return soft
    if hard == resource.RLIM_INFINITY or needed <= hard:
        setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        logger.info("file descriptor limit raised to the connection budget",
                    extra={"soft_limit": needed, "was": soft, "hard_limit": hard})
        return needed
    raise DescriptorBudgetError(refusal(budget, hard))


def refusal(budget: DescriptorBudget, limit: int) -> str:
    """The sentence that says which numbers to change."""
    fitting = limit - budget.reserved
    lower = (f"lower --max-connections to at most {fitting}" if fitting > 0
             else "lowering --max-connections cannot make it fit")
    return (
        f"--max-connections {budget.max_connections} needs {budget.needed} file descriptors: "
        f"{budget.max_connections} for client connections (WebSockets count within them; "
        f"--max-websockets {budget.max_websockets} only caps their share) and "
        f"{budget.reserved} for the process ({budget.listeners} listening socket(s), "
        f"{budget.api_connections} API-server connections for AUTH_TOKENREVIEW_MAX_IN_FLIGHT "
        f"and spares, {PROCESS_FDS + TRANSIENT_FDS} for the log, the event loop and short-lived "
        f"files), but the file descriptor limit (RLIMIT_NOFILE, hard) is {limit}: {lower}, or "
        f"raise the limit to at least {budget.needed} (ulimit -n, or the container runtime's "
        "nofile limit)"
    )
