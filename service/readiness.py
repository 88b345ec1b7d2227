"""``/readyz``: whether a verification path is available, and which, from what the paths report.

Ready when local verification has a key set, or when TokenReview is the path and works: when
nothing recent says whether it works, one probe review is sent (its answer is remembered for a
few seconds, so probes are rare). The fields are documented in docs/verification.md.
"""

from __future__ import annotations

from typing import Any

from compass_auth import Authenticator


async def path_readiness(authenticator: Authenticator) -> dict[str, Any]:
    path = authenticator.active_path()
    ready = True
    review: dict[str, Any] = {}
    if path == "tokenreview":
        ready, review = await authenticator.review.status()
    else:
        review = {"tokenreview_cache_entries": authenticator.reviewer.cache_size()}
    return {
        "ready": ready,
        "path": path if ready else "none",
        "mode": authenticator.settings.mode,
        **authenticator.local.status(),
        **review,
    }
