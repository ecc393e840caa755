"""``pbx-sla sla PERIOD [--tenant ID] [--server NAME]... [--now INSTANT] [--format table|csv|json]``."""

from __future__ import annotations

import argparse

from pbx_sla.commands._period_report import query_period
from pbx_sla.commands.requests import judged_at
from pbx_sla.config import Settings
from pbx_sla.reports import sla as report
from pbx_sla.reports.render import render


async def sla(args: argparse.Namespace, settings: Settings) -> int:
    now = judged_at(args.now)
    _, data = await query_period(
        args, settings, lambda conn, period: report.sla_report(conn, period, args.tenant, now, args.server)
    )
    print(render(data, report.as_table(data), args.format))
    return 0
