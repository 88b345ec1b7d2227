"""Reading a projected service-account token file, one version at a time.

Shared by the service's own credentials (``auth/tokenfile.py``) and the client helper
(``client.py``). The kubelet replaces a projected token at 80 % of its lifetime
(``pkg/volume/util/atomic_writer.go``, docs/kubernetes-api.md#token-file-rotation): it writes a new
timestamped directory and renames a fresh ``..data`` symlink over the old one, so ``token`` →
``..data/token`` suddenly resolves to another file. Both readers ``stat`` the path before use (one
system call, following the symlinks) and re-read only when the resolved file is another version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class TokenFileError(OSError):
    """The token file is missing, unreadable, too large, not ASCII text or empty."""


class FileVersion(NamedTuple):
    """What identifies one version of the file the path resolves to: a symlink swap gives
    another inode, an in-place rewrite (a Secret mounted by hand, a test) another size or
    times. ctime is included because a writer can set mtime back (``os.utime``), never ctime."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def file_version(status: os.stat_result) -> FileVersion:
    return FileVersion(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                       status.st_ctime_ns)


def read_token_file(path: Path, max_bytes: int) -> tuple[str, FileVersion]:
    """The token in ``path`` and the version of the file it came from.

    The version is the ``fstat`` of the file actually read, so a swap between a caller's
    ``stat`` and this ``open`` is caught on the next comparison. Never echoes the content.
    """
    try:
        with open(path, "rb") as handle:
            version = file_version(os.fstat(handle.fileno()))
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise TokenFileError(
            f"cannot read token file {path}: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise TokenFileError(f"token file {path} exceeds {max_bytes} bytes")
    try:
        # A hand-written file may end with a newline, which must not reach a header.
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenFileError(f"token file {path} is not ASCII text") from None
    if not token:
        raise TokenFileError(f"token file {path} is empty")
    return token, version
