"""The repository stands alone: no code, test or document cites a file that is not in it (the project's
working notes outside the repository, e.g. ``spec.md``). What a reader needs is restated in README/docs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"spec\.md|asterisk-notes|library-notes|style\.md|\.\./shared\b|\bshared/[\w.-]+\.(md|toml)")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked source archive)
        return [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]


def test_nothing_cites_a_file_outside_the_repository() -> None:
    found = []
    for path in _tracked():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (pcaps, images)
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert found == []


def test_the_check_finds_a_citation() -> None:
    assert OUTSIDE.search("see spec.md, Reports") and OUTSIDE.search("(shared/library-notes.md)")
    assert not OUTSIDE.search("importlib.util.spec_from_file_location")
