"""Every JSON key the reports print is explained in docs/figures.md (a key added to a report without its
definition fails here). The reports are built on a database holding the example catalogue, so every
per-trunk and per-tenant object is present even without calls; the ``requests`` report lists requests
only, so without calls only its top-level keys are checked here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.reports import qos, requests, sla, trunks, usage
from pbx_sla.reports.period import month_period
from pbx_sla.reports.servers import server_scope
from pbx_sla.store.catalogue import apply_catalogue

ROOT = Path(__file__).resolve().parents[2]
#: keys whose children are data, not names (``daily`` maps each day to its count)
DATA_KEYED = {"daily"}


def _keys(value: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            out.add(key)
            if key not in DATA_KEYED:
                out |= _keys(child)
    elif isinstance(value, list):
        for item in value:
            out |= _keys(item)
    return out


def _documented() -> set[str]:
    text = (ROOT / "docs" / "figures.md").read_text(encoding="utf-8")
    return {word for span in re.findall(r"`([^`]+)`", text) for word in re.findall(r"[A-Za-z_]\w*", span)}


async def test_every_report_key_is_in_figures_md(db) -> None:
    data = tomllib.loads((ROOT / "examples" / "contracts.toml").read_text(encoding="utf-8"))
    catalogue = parse_catalogue(data, "contracts.toml")
    await apply_catalogue(db, catalogue, "contracts.toml")
    period = month_period(2026, 11, ZoneInfo(catalogue.timezone))
    scope = await server_scope(db)
    reports = {
        "trunks": trunks.as_json(period, await trunks.trunk_availability(db, period), scope),
        "usage": await usage.usage_report(db, period),
        "sla": await sla.sla_report(db, period),
        "qos": await qos.qos_report(db, period),
        "requests": await requests.requests_report(db, period, period.end),
    }
    documented = _documented()
    missing = {name: sorted(_keys(report) - documented) for name, report in reports.items()}
    assert all(report.get("tenants") or report.get("trunks") for name, report in reports.items() if name != "requests")
    assert missing == {name: [] for name in reports}
