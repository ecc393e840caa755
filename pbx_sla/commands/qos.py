"""``pbx-sla qos PERIOD [--trunk NAME|--tenant ID] [--server NAME]... [--format table|csv|json]``."""

from __future__ import annotations

import argparse

from pbx_sla.commands._period_report import query_period
from pbx_sla.config import Settings
from pbx_sla.reports import qos as report
from pbx_sla.reports.render import render


async def qos(args: argparse.Namespace, settings: Settings) -> int:
    _, data = await query_period(
        args,
        settings,
        lambda conn, period: report.qos_report(conn, period, trunk=args.trunk, tenant=args.tenant, servers=args.server),
    )
    print(render(data, report.as_table(data), args.format))
    return 0
