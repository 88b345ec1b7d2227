"""Client side: a bearer token read from a file that the kubelet rotates.

A pod that calls a compass-auth service mounts a projected service-account token with the
service's audience::

    volumes:
      - name: compass-token
        projected:
          sources:
            - serviceAccountToken: {audience: compass-internal, path: token}

and sends ``Authorization: Bearer <the file's content>``. The kubelet replaces that file at
80 % of the token's lifetime (``compass_auth/apiserver/projected_token.py``). A client that read
the token once at
start-up sends an expired token an hour later; one that reads the file on every request does a
syscall and a read each time. ``FileTokenSource`` does one ``os.stat`` per call (which follows
the symlinks) and reads only when the resolved file changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from compass_auth.apiserver.projected_token import (
    FileVersion,
    TokenFileError,
    file_version,
    read_token_file,
)
from compass_auth.core.bearer import B64TOKEN

#: Projected tokens are ~1 KiB; the service refuses more than 8 KiB by default. A bigger file is
#: not a token: refuse it instead of sending it.
MAX_TOKEN_BYTES = 16 * 1024

__all__ = ["MAX_TOKEN_BYTES", "FileTokenSource", "TokenFileError"]


class FileTokenSource:
    """The current token in ``path``, re-read only when the file behind the path changes.

    ``token()`` stats the path (following the kubelet's ``..data`` symlink) and compares the
    resolved file's device, inode, size, mtime and ctime with those of the file it last read:
    an atomic symlink swap gives another inode, an in-place rewrite (a Secret mounted by hand, a
    test) another ctime. The version recorded is the ``fstat`` of the file actually read, so a
    swap between the ``stat`` and the ``open`` is caught on the next call. (Two in-place writes
    of the same size within one tick of the file system's clock look alike; the kubelet never
    writes in place.)

    Not thread-safe; one source per event loop or thread. Never logs or prints the token.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._token: str | None = None
        self._version: FileVersion | None = None
        #: How many times the file was read (not served from memory): for tests and logs.
        self.reads = 0

    def token(self) -> str:
        """The token to send now; raises ``TokenFileError`` if there is no valid one."""
        try:
            current = file_version(os.stat(self.path))
        except OSError as error:
            raise TokenFileError(f"cannot stat token file {self.path}: {error.strerror}") from None
        if self._token is not None and current == self._version:
            return self._token
        token, version = read_token_file(self.path, MAX_TOKEN_BYTES)
        self.reads += 1
        # What may follow ``Bearer`` in a header: anything else would break or inject into the
        # header line.
        if not B64TOKEN.fullmatch(token):
            # The content is not echoed: it may be a token with a stray character.
            raise TokenFileError(f"token file {self.path} does not hold a single bearer token")
        self._token, self._version = token, version
        return token
