"""Every relative Markdown link in README.md, CHANGELOG.md, docs/ and bench/results/ names a file of the repository
(and, with ``#anchor``, a heading or ``<a id>`` of that file): a moved or renamed document breaks no reference."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _documents() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "bench" / "results").glob("*.md")),
    ]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors (lower case, punctuation dropped, spaces to hyphens) and explicit ``<a id>``."""
    text = path.read_text(encoding="utf-8")
    found, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#+\s+(.*)", line)
        if heading:
            title = re.sub(r"<[^>]+>", "", heading.group(1).strip().lower())
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found | set(re.findall(r'<a id="([^"]+)"', text))


def test_relative_links_resolve() -> None:
    broken = []
    for doc in _documents():
        for match in LINK.finditer(doc.read_text(encoding="utf-8")):
            target = match.group(1)
            if re.match(r"[a-z]+:", target) or target == "!":  # a URL; `[section](!)`: an Asterisk template
                continue
            name, _, anchor = target.partition("#")
            path = (doc.parent / name).resolve() if name else doc
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
