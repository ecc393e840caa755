"""README.md's "Layout" names every top-level folder of the repository and every part of the package, so
the map a newcomer reads first stays the tree they find."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout") :]
    return section[: section.index("```", section.index("```") + 3)]


def _tracked_top_level() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {line.split("/")[0] for line in out.splitlines() if "/" in line and not line.startswith(".")}


def test_layout_names_every_folder_and_package_part() -> None:
    layout = _layout()
    parts = {p.name + "/" for p in (ROOT / "pbx_sla").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.name for p in (ROOT / "pbx_sla").glob("*.py") if p.name != "__init__.py"}
    folders = {name + "/" for name in _tracked_top_level()}
    missing = sorted(name for name in parts | folders if name not in layout)
    assert missing == []
