"""``pbx-sla usage PERIOD [--tenant ID] [--server NAME]... [--format table|csv|json]``."""

from __future__ import annotations

import argparse

from pbx_sla.commands._period_report import query_period
from pbx_sla.config import Settings
from pbx_sla.reports import usage as report
from pbx_sla.reports.render import render


async def usage(args: argparse.Namespace, settings: Settings) -> int:
    period, data = await query_period(
        args, settings, lambda conn, period: report.usage_report(conn, period, args.tenant, args.server)
    )
    print(render(data, report.as_table(period, data), args.format))
    return 0
