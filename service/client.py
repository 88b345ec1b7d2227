"""Client side: a bearer token read from a file that the kubelet rotates.

A pod that calls a compass-auth service mounts a projected service-account token with the
service's audience::

    volumes:
      - name: compass-token
        projected:
          sources:
            - serviceAccountToken: {audience: compass-internal, path: token}

and sends ``Authorization: Bearer <the file's content>``. The kubelet replaces that file at
80 % of the token's lifetime (``pkg/volume/util/atomic_writer.go``): it writes a new
timestamped directory and renames a fresh ``..data`` symlink over the old one, so ``token`` →
``..data/token`` suddenly resolves to another file. A client that read the token once at
start-up sends an expired token an hour later; one that reads the file on every request does a
syscall and a read each time. ``FileTokenSource`` does one ``os.stat`` per call (which follows
the symlinks) and reads only when the resolved file changed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

#: Projected tokens are ~1 KiB; the service refuses more than 8 KiB by default. A bigger file is
#: not a token: refuse it instead of sending it.
MAX_TOKEN_BYTES = 16 * 1024
#: What may follow ``Bearer`` in a header (RFC 6750 §2.1 b64token). Anything else would break
#: or inject into the header line.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class TokenFileError(OSError):
    """The token file is missing, unreadable, empty, too large or not a single token."""


class _FileVersion(NamedTuple):
    """What identifies one version of the file the path resolves to."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    #: A writer can set mtime back (os.utime), never ctime.
    ctime_ns: int


def _version(status: os.stat_result) -> _FileVersion:
    return _FileVersion(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                        status.st_ctime_ns)


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
        self._version: _FileVersion | None = None
        #: How many times the file was read (not served from memory): for tests and logs.
        self.reads = 0

    def token(self) -> str:
        """The token to send now; raises ``TokenFileError`` if there is no valid one."""
        try:
            current = _version(os.stat(self.path))
        except OSError as error:
            raise TokenFileError(f"cannot stat token file {self.path}: {error.strerror}") from None
        if self._token is not None and current == self._version:
            return self._token
        token, version = self._read()
        self._token, self._version = token, version
        return token

    def _read(self) -> tuple[str, _FileVersion]:
        try:
            with open(self.path, "rb") as file:
                version = _version(os.fstat(file.fileno()))
                data = file.read(MAX_TOKEN_BYTES + 1)
        except OSError as error:
            raise TokenFileError(f"cannot read token file {self.path}: {error.strerror}") from None
        self.reads += 1
        if len(data) > MAX_TOKEN_BYTES:
            raise TokenFileError(f"token file {self.path} exceeds {MAX_TOKEN_BYTES} bytes")
        token = data.decode("ascii", "replace").strip()
        if not token:
            raise TokenFileError(f"token file {self.path} is empty")
        if not _B64TOKEN.fullmatch(token):
            # The content is not echoed: it may be a token with a stray character.
            raise TokenFileError(f"token file {self.path} does not hold a single bearer token")
        return token, version
