"""What the command-line entry points share: how they were started, and their version."""

from __future__ import annotations

import os
import sys

from .version import __version__


def prog_name(module: str) -> str:
    """How the user started this command, for usage lines: ``python3 -m <module>`` when run
    with ``-m`` (argparse would say ``__main__.py``), else the script's own name."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script in ("", "__main__.py", "-m", "-c"):
        return f"{os.path.basename(sys.executable) or 'python'} -m {module}"
    return script


def version_text(program: str) -> str:
    """The ``--version`` answer."""
    return f"{program} (compass-auth {__version__})"
