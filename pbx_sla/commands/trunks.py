"""``pbx-sla trunks PERIOD [--server NAME] [--format table|csv|json]``: trunk availability and outages."""

from __future__ import annotations

import argparse

from pbx_sla.config import Settings
from pbx_sla.reports import trunks as report
from pbx_sla.reports.period import parse_period
from pbx_sla.reports.render import render
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.store.settings import catalogue_timezone


async def trunks(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(await resolve_dsn(settings))
    try:
        tz = await catalogue_timezone(conn)
        period = parse_period(args.period, args.date_from, args.date_to, tz)
        rows = await report.trunk_availability(conn, period, server=getattr(args, "server", None))
    finally:
        await conn.close()
    data = report.as_json(period, rows)
    table = report.as_csv_table(data) if args.format == "csv" else report.as_table(data)
    print(render(data, table, args.format))
    return 0
