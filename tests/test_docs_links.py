"""Every relative link in README.md, SECURITY.md, docs/*.md and compass_auth/testing/README.md
reaches a file, and every ``#anchor`` a heading of the page it names (GitHub's heading ids)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "SECURITY.md", *(ROOT / "docs").glob("*.md"),
                ROOT / "compass_auth" / "testing" / "README.md"])

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # the text, which may hold [brackets]
    r"\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"  # (target "title")
)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", re.MULTILINE)
_HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)


def github_slug(heading: str) -> str:
    """The id GitHub gives a heading: its text without markup, lowercased, punctuation other
    than ``-`` and ``_`` dropped, each space a ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Heading ids of a page (repeats get ``-1``, ``-2``, ...) and explicit HTML anchors."""
    text = _FENCE.sub("", page.read_text())
    found: set[str] = set(_HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(text):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """Link targets outside code, without absolute URLs (``scheme:``) and mail addresses."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", page.read_text()))
    targets = _INLINE_LINK.findall(text) + _REFERENCE.findall(text)
    return [t for t in targets if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


def broken(page: Path, target: str) -> str | None:
    """Why ``target`` (as written in ``page``) leads nowhere; ``None`` when it resolves."""
    path, _, anchor = target.partition("#")
    destination = (page.parent / unquote(path)).resolve() if path else page
    if not destination.exists():
        return f"{target}: no such file {_shown(destination)}"
    if anchor:
        if destination.suffix != ".md":
            return f"{target}: an anchor into a file that is not markdown"
        if unquote(anchor) not in anchors(destination):
            return f"{target}: no heading #{anchor} in {_shown(destination)}"
    return None


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    problems = [problem for target in relative_links(page)
                if (problem := broken(page, target)) is not None]
    assert not problems, "\n".join(problems)


def test_the_pages_link_to_each_other() -> None:
    """The checker reads links at all: the README links the docs pages and their anchors."""
    targets = relative_links(ROOT / "README.md")
    assert any(target.startswith("docs/") and "#" in target for target in targets)
    assert "SECURITY.md" in {target.partition("#")[0] for target in targets}


@pytest.mark.parametrize(("heading", "slug"), [
    ("What is verified, and in which order", "what-is-verified-and-in-which-order"),
    ("Strict mode: `AUTH_MODE=review`", "strict-mode-auth_modereview"),
    ("Fallback (when discovery is down)", "fallback-when-discovery-is-down"),
    ("Unknown kids", "unknown-kids"),
    ("Load and soak", "load-and-soak"),
    ("See [the docs](docs/x.md) -- twice", "see-the-docs----twice"),
])
def test_headings_get_github_ids(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A\n\n## Notes\n\n```\n# not a heading\n```\n\n## Notes\n")
    assert anchors(page) == {"a", "notes", "notes-1"}
    assert broken(page, "#notes-1") is None
    assert broken(page, "#not-a-heading") is not None
    assert broken(page, "missing.md") is not None
