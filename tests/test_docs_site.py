"""The documentation speaks to users: no project paperwork in README.md or docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPERWORK = re.compile(r"issue [0-9]|the lead", re.I)


def test_no_paperwork_in_the_docs() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(pages) > 20
    found = [
        f"{page.relative_to(ROOT)}:{n}: {line.strip()}"
        for page in pages
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if PAPERWORK.search(line)
    ]
    assert not found, "\n".join(found)


def test_every_page_is_in_the_site() -> None:
    """mkdocs --strict also fails on a page left out of the nav; this names it sooner."""
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    missing = [p for p in pages if p not in nav]
    assert not missing, missing
