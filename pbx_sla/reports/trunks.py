"""The ``trunks`` report: availability, outages and MTTR per trunk, and the figures the SLA report reuses.

Every figure comes from :func:`pbx_sla.domain.trunks.summarize` (what
:func:`pbx_sla.domain.trunks.trunk_summary` does after replaying the observations) over the known states of
:func:`pbx_sla.store.trunk_days.load_known`; this module only loads, shapes and renders. JSON keys and
where each is computed: docs/figures.md.
``target`` is the trunk's own ``availability_target`` (the catalogue's ``[[trunks]]``), else null: tier
targets belong to tenants and are judged by the ``sla`` report over a tenant's trunks combined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from pbx_sla.domain.support import below
from pbx_sla.domain.trunks import Interval, Summary, summarize
from pbx_sla.reports.period import Period
from pbx_sla.reports.render import Table, hours_minutes_seconds
from pbx_sla.reports.servers import ServerScope
from pbx_sla.store.trunk_days import load_known


def seconds(value: timedelta) -> float:
    """Exact to the microsecond, as a JSON number."""
    return round(value.total_seconds(), 6)


@dataclass(frozen=True)
class TrunkAvailability:
    server: str
    trunk: str
    in_catalogue: bool
    target: Decimal | None
    summary: Summary

    @property
    def availability(self) -> float | None:
        return self.summary.availability

    @property
    def breach(self) -> bool | None:
        """availability < target; False without a target; None when nothing was observed."""
        if self.target is None:
            return False
        if self.availability is None:
            return None
        return below(self.availability, self.target)

    @property
    def up_seconds(self) -> float:
        return seconds(self.summary.up)

    @property
    def down_seconds(self) -> float:
        return seconds(self.summary.down)


async def trunk_availability(
    conn: asyncpg.Connection,
    period: Period,
    trunks: Sequence[tuple[str, str]] | None = None,
    *,
    servers: Sequence[str] | None = None,
    now: datetime | None = None,
) -> list[TrunkAvailability]:
    """Per trunk over ``period``. ``trunks``: only these (server, name) pairs (e.g. one tenant's);
    ``servers``: only the trunks of these servers (``--server``; None: every server). Known states of the
    UTC days over by ``now`` (default: the current time) are read as kept (:mod:`pbx_sla.store.trunk_days`),
    the rest replayed: the same summary as :func:`pbx_sla.domain.trunks.trunk_summary` of the period."""
    bounds = Interval(period.start, period.end)
    out = []
    for t in await load_known(conn, period, servers, trunks, now=now):
        summary = summarize(bounds, t.segments, t.maintenance)
        out.append(TrunkAvailability(t.info.server, t.info.trunk, t.info.in_catalogue, t.info.target, summary))
    return out


def as_json(period: Period, rows: Sequence[TrunkAvailability], scope: ServerScope | None = None) -> dict[str, Any]:
    """The report's JSON document; with ``scope`` (the ``--server`` choice) its ``servers`` and ``scope`` keys."""
    trunks = []
    for r in rows:
        s = r.summary
        mttr = s.mttr
        trunks.append(
            {
                "server": r.server,
                "trunk": r.trunk,
                "in_catalogue": r.in_catalogue,
                "availability": r.availability,
                "target": None if r.target is None else float(r.target),
                "breach": r.breach,
                "up_seconds": seconds(s.up),
                "down_seconds": seconds(s.down),
                "unknown_seconds": seconds(s.unknown),
                "maintenance_seconds": seconds(s.maintenance),
                "outage_count": s.outage_count,
                "mttr_seconds": None if mttr is None else seconds(mttr),
                "outages": [
                    {
                        "start": period.local(o.start).isoformat(),
                        "end": period.local(o.end).isoformat(),
                        "seconds": seconds(o.duration),
                    }
                    for o in s.outages
                ],
            }
        )
    return {"period": period.as_json(), **(scope.as_json() if scope else {}), "trunks": trunks}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3f} %"


def as_table(report: dict[str, Any]) -> Table:
    """Human view: durations as h:mm:ss, ratios as percentages, with outage count and MTTR."""
    period = report["period"]
    rows = [
        (
            t["server"],
            t["trunk"],
            t["in_catalogue"],
            _percent(t["availability"]),
            _percent(t["target"]),
            t["breach"],
            hours_minutes_seconds(t["up_seconds"]),
            hours_minutes_seconds(t["down_seconds"]),
            hours_minutes_seconds(t["unknown_seconds"]),
            hours_minutes_seconds(t["maintenance_seconds"]),
            t["outage_count"],
            hours_minutes_seconds(t["mttr_seconds"]),
        )
        for t in report["trunks"]
    ]
    return Table(
        columns=(
            "server",
            "trunk",
            "catalogue",
            "availability",
            "target",
            "breach",
            "up",
            "down",
            "unknown",
            "maintenance",
            "outages",
            "mttr",
        ),
        rows=rows,
        title=f"Trunk availability {period['from']} .. {period['to']}",
    )


def as_csv_table(report: dict[str, Any]) -> Table:
    """One row per trunk, raw numbers (seconds, ratios 0..1)."""
    columns = (
        "server",
        "trunk",
        "in_catalogue",
        "availability",
        "target",
        "breach",
        "up_seconds",
        "down_seconds",
        "unknown_seconds",
        "maintenance_seconds",
        "outage_count",
        "mttr_seconds",
    )
    return Table(columns=columns, rows=[tuple(t[c] for c in columns) for t in report["trunks"]])
