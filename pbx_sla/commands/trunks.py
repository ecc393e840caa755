"""``pbx-sla trunks PERIOD [--server NAME] [--format table|csv|json]``: trunk availability and outages."""

from __future__ import annotations

import argparse

from pbx_sla.commands._period_report import query_period
from pbx_sla.config import Settings
from pbx_sla.reports import trunks as report
from pbx_sla.reports.render import render


async def trunks(args: argparse.Namespace, settings: Settings) -> int:
    server = getattr(args, "server", None)
    period, rows = await query_period(
        args, settings, lambda conn, period: report.trunk_availability(conn, period, server=server)
    )
    data = report.as_json(period, rows)
    table = report.as_csv_table(data) if args.format == "csv" else report.as_table(data)
    print(render(data, table, args.format))
    return 0
