"""The package's layers only import downwards: the pure core knows no adapter, adapters know no wiring.

domain (pure)  <-  pipeline (contracts)  <-  store, ami, agi, ingest, reports (adapters)
               <-  features (wiring per feature)  <-  service, commands, cli (entry points)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pbx_sla"

ENTRY_POINTS = {"service", "commands", "cli", "__main__"}
#: top-level part of pbx_sla -> the parts it must not import
FORBIDDEN = {
    "domain": {"pipeline", "store", "ami", "agi", "ingest", "reports", "features", "config", "log"} | ENTRY_POINTS,
    "pipeline": {"store", "ami", "agi", "ingest", "reports", "features"} | ENTRY_POINTS,
    "store": {"features", "reports"} | ENTRY_POINTS,
    "ami": {"features", "reports"} | ENTRY_POINTS,
    "agi": {"features", "reports"} | ENTRY_POINTS,
    "ingest": {"features", "reports"} | ENTRY_POINTS,
    "reports": {"features"} | ENTRY_POINTS,
    "features": ENTRY_POINTS,
}


def _imports(path: Path) -> set[str]:
    """Top-level pbx_sla parts a module imports (``pbx_sla.store.calls`` -> ``store``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pbx_sla" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_layers_import_only_downwards() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for part in sorted(_imports(path) & FORBIDDEN.get(layer, set())):
            wrong.append(f"{path.relative_to(PACKAGE.parent)} imports pbx_sla.{part}")
    assert wrong == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from pbx_sla.features import trunks\nimport pbx_sla.store.calls\nfrom . import x\n")
    assert _imports(module) == {"features", "store"}
