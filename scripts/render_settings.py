"""Write what the settings tables generate: config/auth.env and the tables in docs/settings.md.

    python scripts/render_settings.py          # rewrite both (make config)
    python scripts/render_settings.py --check  # exit 1 if either is out of date

The tables themselves are ``AuthSettings`` in compass_auth/settings.py (what the library
applies) and ``ServiceSettings`` in service/settings.py (what only the example service applies).
config/auth.env is the example's deployment: both tables, with the example's audience for the
one variable that has no default.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The example service runs from the checkout (it is not in the wheel): import it from there.
sys.path.insert(0, str(ROOT))

from compass_auth.settings import VARIABLES, Variable, render_docs_table  # noqa: E402
from service.settings import AUDIENCE  # noqa: E402
from service.settings import VARIABLES as SERVICE_VARIABLES  # noqa: E402

ENV_FILE = ROOT / "config" / "auth.env"
DOCS = ROOT / "docs" / "settings.md"
#: Each table follows its marker line in docs/settings.md and ends at the first line not a row.
MARKER = "<!-- settings table: generated from compass_auth/settings.py -->"
SERVICE_MARKER = "<!-- settings table: generated from service/settings.py -->"
#: The example's values of the variables that have no default (config/auth.env must set them).
REQUIRED_VALUES = {"AUTH_AUDIENCE": AUDIENCE}


def env_file() -> str:
    """The text of config/auth.env: every variable, its meaning and its value."""
    lines = [
        "# compass-auth settings of the example service: every AUTH_* variable with its default.",
        "# The service reads them from the environment (k8s/ loads this file into a ConfigMap).",
        "# Edit what you need; an unknown AUTH_* variable is logged as a likely typo.",
        "# Generated from compass_auth/settings.py and service/settings.py: make config",
        "",
    ]
    lines += _env_rows(VARIABLES)
    lines += ["# --- The example service's own (service/settings.py) ---", ""]
    lines += _env_rows(SERVICE_VARIABLES)
    return "\n".join(lines)


def _env_rows(rows: tuple[Variable, ...]) -> list[str]:
    lines = []
    for variable in rows:
        value = variable.default
        comment = f"# {variable.help}"
        if value is None:
            value = REQUIRED_VALUES[variable.name]
            comment += " The example's audience:"
        lines += [comment, f"{variable.name}={value}", ""]
    return lines


def docs_with_table(text: str, marker: str, table: str) -> str:
    before, found, after = text.partition(marker + "\n")
    if not found:
        raise SystemExit(f"{DOCS}: the marker line {marker!r} is missing")
    lines = after.splitlines(keepends=True)
    rest = 0
    while rest < len(lines) and lines[rest].startswith("|"):
        rest += 1
    return before + marker + "\n" + table + "".join(lines[rest:])


def docs_page(text: str) -> str:
    text = docs_with_table(text, MARKER, render_docs_table(VARIABLES, "AuthSettings"))
    return docs_with_table(text, SERVICE_MARKER,
                           render_docs_table(SERVICE_VARIABLES, "ServiceSettings"))


def main(argv: list[str]) -> int:
    wanted = {ENV_FILE: env_file(), DOCS: docs_page(DOCS.read_text())}
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
