"""``pbx-sla sla PERIOD [--tenant ID] [--format table|csv|json]``."""

from __future__ import annotations

import argparse

from pbx_sla.config import Settings
from pbx_sla.reports import sla as report
from pbx_sla.reports.period import parse_period
from pbx_sla.reports.render import render
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.store.settings import catalogue_timezone


async def sla(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(await resolve_dsn(settings))
    try:
        tz = await catalogue_timezone(conn)
        period = parse_period(args.period, args.date_from, args.date_to, tz)
        data = await report.sla_report(conn, period, args.tenant)
    finally:
        await conn.close()
    print(render(data, report.as_table(data), args.format))
    return 0
