"""The service's own service-account token, following the kubelet's rotations without a restart.

The kubelet rewrites a projected token at 80 % of its lifetime
(docs/kubernetes-api.md#token-file-rotation) through its AtomicWriter: the new token goes into a new
timestamped directory, and ``..data`` is renamed over to point at it, so ``token`` (a symlink
through ``..data``) resolves to a *new file* each time.

kubernetes-asyncio re-reads the file at most once a minute, by the clock
(``incluster_config.TOKEN_REFRESH_PERIOD``), and only on the ``Configuration`` its loader filled.
We install our own hook instead: before every API call it ``stat``s the path (following the
symlinks to the current file) and re-reads only when the file is another one or has changed, so a
rotation is seen by the very next call at the cost of one system call. ``reload()`` re-reads
unconditionally; ``middlewares.retry_on_401`` uses it when the API server refuses the token (a
filesystem whose attributes are cached, e.g. NFS ``actimeo``, can hide a change from ``stat``).

The file is tiny and read synchronously on the event loop, as kubernetes-asyncio's own hook does.
A failed read keeps the last good token (the old one usually stays valid until its ``exp``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..core.bearer import fingerprint
from ..logs.text import render
from .projected_token import TokenFileError, file_version, read_token_file

logger = logging.getLogger(__name__)

#: Logged once when the file can be read again after a failure (the failure has its own line).
MSG_READABLE_AGAIN = "service account token file readable again"

Stat = Callable[[Path], os.stat_result]
#: A token is ~1 KiB; a file far larger than this is not a token (and is not read whole).
MAX_TOKEN_FILE_BYTES = 64 * 1024

__all__ = ["MAX_TOKEN_FILE_BYTES", "Stat", "TokenFile", "TokenFileError"]


class TokenFile:
    """The current token of ``path``; ``refresh()`` is cheap enough to call before every request.

    ``stat`` is a constructor parameter so tests can play a filesystem that hides changes.
    """

    def __init__(self, path: Path, *, stat: Stat = os.stat) -> None:
        self.path = path
        self._stat = stat
        self._failing = False
        # The first read must succeed: without a token the service cannot call the API server.
        self._token, self._version = read_token_file(path, MAX_TOKEN_FILE_BYTES)

    @property
    def token(self) -> str:
        """The token as last read (never empty)."""
        return self._token

    def refresh(self) -> bool:
        """Re-read the file if ``stat`` says it changed; return whether the token changed."""
        try:
            version = file_version(self._stat(self.path))
        except OSError as error:
            self._note_failure(error)
            return False
        if version == self._version:
            return False
        return self._reread(reason="file changed")

    def reload(self) -> bool:
        """Re-read the file whatever ``stat`` says; return whether the token changed."""
        return self._reread(reason="reload requested")

    def _reread(self, reason: str) -> bool:
        try:
            token, version = read_token_file(self.path, MAX_TOKEN_FILE_BYTES)
        except TokenFileError as error:
            self._note_failure(error)
            return False
        if self._failing:
            fields = {"path": str(self.path)}
            logger.info(render(MSG_READABLE_AGAIN, fields), extra=fields)
            self._failing = False
        self._version = version
        if token == self._token:
            return False
        previous, self._token = self._token, token
        fields = {"path": str(self.path), "reason": reason, "token_fp": fingerprint(token),
                  "previous_token_fp": fingerprint(previous)}
        logger.info(render("service account token reloaded", fields), extra=fields)
        return True

    def _note_failure(self, error: Exception) -> None:
        if not self._failing:
            # Once per failure streak: this runs before every API call.
            fields = {"path": str(self.path), "error": str(error)}
            logger.warning(render("service account token file unreadable; keeping the last "
                                  "token", fields), extra=fields)
            self._failing = True

