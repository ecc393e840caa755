"""``pbx-sla sla PERIOD [--tenant ID] [--format table|csv|json]``."""

from __future__ import annotations

import argparse

from pbx_sla.commands._period_report import query_period
from pbx_sla.config import Settings
from pbx_sla.reports import sla as report
from pbx_sla.reports.render import render


async def sla(args: argparse.Namespace, settings: Settings) -> int:
    _, data = await query_period(args, settings, lambda conn, period: report.sla_report(conn, period, args.tenant))
    print(render(data, report.as_table(data), args.format))
    return 0
