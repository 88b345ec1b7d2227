"""Write what the settings table generates: config/auth.env and the table in docs/settings.md.

    python scripts/render_settings.py          # rewrite both (make config)
    python scripts/render_settings.py --check  # exit 1 if either is out of date

The table itself is ``AuthSettings`` in compass_auth/settings.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from compass_auth.settings import render_docs_table, render_env_file

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / "config" / "auth.env"
DOCS = ROOT / "docs" / "settings.md"
#: The table follows this line in docs/settings.md and ends at the first line not a table row.
MARKER = "<!-- settings table: generated from compass_auth/settings.py -->"


def docs_with_table(text: str) -> str:
    before, found, after = text.partition(MARKER + "\n")
    if not found:
        raise SystemExit(f"{DOCS}: the marker line {MARKER!r} is missing")
    lines = after.splitlines(keepends=True)
    rest = 0
    while rest < len(lines) and lines[rest].startswith("|"):
        rest += 1
    return before + MARKER + "\n" + render_docs_table() + "".join(lines[rest:])


def main(argv: list[str]) -> int:
    wanted = {ENV_FILE: render_env_file(), DOCS: docs_with_table(DOCS.read_text())}
    stale = [path for path, text in wanted.items() if path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run `make config`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
