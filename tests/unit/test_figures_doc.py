"""docs/figures.md points at the code computing each report figure: every ``module.py:name`` and every
``sql/...`` file it names exists, so the one hop from the doc to the code stays true when code moves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "figures.md"


def test_every_code_reference_resolves() -> None:
    text = DOC.read_text(encoding="utf-8")
    refs = re.findall(r"`([a-z_/]+)\.py:([A-Za-z_][\w.]*)`", text)
    sql = re.findall(r"`(sql/[\w/]+\.sql)`", text)
    assert len(refs) > 30 and sql  # the table is there and the pattern reads it
    missing = []
    for path, name in refs:
        module = importlib.import_module("pbx_sla." + path.replace("/", "."))
        target: object = module
        for part in name.split("."):
            if not hasattr(target, part):
                missing.append(f"{path}.py:{name}")
                break
            target = getattr(target, part)
    missing += [f for f in sql if not (ROOT / f).is_file()]
    assert missing == []
