"""``pbx-sla usage PERIOD [--tenant ID] [--format table|csv|json]``."""

from __future__ import annotations

import argparse

from pbx_sla.commands._period_report import query_period
from pbx_sla.config import Settings
from pbx_sla.reports import usage as report
from pbx_sla.reports.render import render


async def usage(args: argparse.Namespace, settings: Settings) -> int:
    async def query(conn, period):  # type: ignore[no-untyped-def]
        rows = await report.usage_rows(conn, period, args.tenant)
        return rows, await report.support_hours_by_tenant(conn, period, rows)

    period, (rows, hours) = await query_period(args, settings, query)
    data = report.as_json(period, rows, hours)
    print(render(data, report.as_table(period, data), args.format))
    return 0
