"""The test kit's layout is written down: docs/layout.md has a line for each sub-package of
compass_auth/testing/ and names each top-level module, and the kit's README names only files that
exist (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "compass_auth" / "testing"


def test_docs_layout_has_a_line_for_each_sub_package_and_names_each_module() -> None:
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    packages = sorted(path.parent.relative_to(KIT).as_posix()
                      for path in KIT.rglob("__init__.py") if path.parent != KIT)
    assert "server/handlers" in packages  # the walk finds nested ones
    missing = [name for name in packages
               if not re.search(rf"^ +{re.escape(name)}/ ", text, re.MULTILINE)]
    assert missing == [], f"docs/layout.md has no line for compass_auth/testing/{missing}"
    modules = sorted(path.name for path in KIT.glob("*.py") if path.name != "__init__.py")
    assert [name for name in modules if name not in text] == []


def test_the_kit_readme_names_files_that_exist() -> None:
    text = (KIT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:server|wire|rbac|credentials)/[\w/]*?(?:\.py|/))`", text))
    assert "server/endpoints.py" in named
    assert sorted(name for name in named if not (KIT / name).exists()) == []
