"""``pbx-sla trunks PERIOD [--server NAME]... [--format table|csv|json]``: trunk availability and outages."""

from __future__ import annotations

import argparse

from pbx_sla.commands._period_report import query_period
from pbx_sla.config import Settings
from pbx_sla.reports import trunks as report
from pbx_sla.reports.render import render
from pbx_sla.reports.servers import server_scope


async def trunks(args: argparse.Namespace, settings: Settings) -> int:
    async def query(conn, period):  # type: ignore[no-untyped-def]
        scope = await server_scope(conn, getattr(args, "server", None))
        return scope, await report.trunk_availability(conn, period, servers=scope.sql)

    period, (scope, rows) = await query_period(args, settings, query)
    data = report.as_json(period, rows, scope)
    table = report.as_csv_table(data) if args.format == "csv" else report.as_table(data)
    print(render(data, table, args.format))
    return 0
