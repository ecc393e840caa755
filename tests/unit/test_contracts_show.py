"""``contracts show``: every kind of credit rule is shown, in the JSON and the table (a ``qos_…`` rule
triggers *above* a value and has no ``below``)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from pbx_sla.commands.contracts import _tables, show_report
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.reports.render import to_json, to_table

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"
REVISION = SimpleNamespace(id=3, applied_at=datetime(2026, 11, 1, tzinfo=UTC), source="c.toml", sha256="ab")


def test_above_and_below_credit_rules_are_shown() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["tiers"]["tier1"]["credits"] = [
        {"metric": "availability", "below": 0.995, "percent": 5},
        {"metric": "qos_loss", "above": 0.02, "percent": 3},
    ]
    report = show_report(parse_catalogue(data, "c.toml"), REVISION, [])
    tier1 = next(t for t in report["tiers"] if t["name"] == "tier1")
    assert tier1["credits"] == [
        {"metric": "availability", "below": 0.995, "percent": 5.0},
        {"metric": "qos_loss", "above": 0.02, "percent": 3.0},
    ]
    assert '"above": 0.02' in to_json(report)
    table = to_table(_tables(report)[1])
    assert "avail<0.995:5%, qos_l>0.02:3%" in table
