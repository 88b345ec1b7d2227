"""A projected token volume laid out the way the kubelet writes it (``atomic_writer.go``).

``<dir>/token`` → ``..data/token``, ``..data`` → ``..<timestamp>``. A rotation writes a new
timestamped directory, points ``..data_tmp`` at it, renames that over ``..data`` (the one atomic
step) and removes the old directory. Written here rather than borrowed from the emulator so that
the client is checked against an independent picture of the layout.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

_sequence = itertools.count()


def _new_data_dir(volume: Path, token: str) -> Path:
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
    data_dir = volume / f"..{stamp}.{next(_sequence):010d}"
    data_dir.mkdir()
    (data_dir / "token").write_text(token + "\n", encoding="ascii")
    return data_dir


def write_token_volume(volume: Path, token: str) -> Path:
    """Create the volume with ``token``; returns the path a client reads (``<volume>/token``)."""
    volume.mkdir(parents=True, exist_ok=True)
    data_dir = _new_data_dir(volume, token)
    (volume / "..data").symlink_to(data_dir.name)
    (volume / "token").symlink_to("..data/token")
    return volume / "token"


def rotate_token(volume: Path, token: str) -> None:
    """Swap in ``token`` as the kubelet does; the old directory is gone afterwards."""
    old_dir = volume / os.readlink(volume / "..data")
    data_dir = _new_data_dir(volume, token)
    (volume / "..data_tmp").symlink_to(data_dir.name)
    os.replace(volume / "..data_tmp", volume / "..data")
    shutil.rmtree(old_dir)
