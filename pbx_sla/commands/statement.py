"""``pbx-sla statement close|show --period YYYY-MM``: monthly statements (docs/statements.md)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pbx_sla.config import Settings
from pbx_sla.reports import statements as report
from pbx_sla.reports.render import render
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.web.pages import statement_document


async def close(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(await resolve_dsn(settings))
    try:
        written, done, rows = await report.close_month(conn, args.period)
    finally:
        await conn.close()
    if written:
        adjusted = sum(1 for r in rows if r.adjustments)
        print(f"closed {done.period}: {done.tenants} statements, {adjusted} with adjustments of earlier months "
              f"(catalogue revision {done.catalogue_revision}, pbx-sla {done.code_version})")  # fmt: skip
    else:
        print(f"{done.period} was closed already at {done.closed_at.isoformat(timespec='seconds')}: nothing changed")
    return 0


async def show(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(await resolve_dsn(settings))
    try:
        data = await report.statement_report(conn, args.period, args.tenant)
    finally:
        await conn.close()
    text = statement_document(data) if args.format == "html" else render(data, report.as_table(data), args.format)
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text.rstrip("\n") + "\n", encoding="utf-8")
    else:
        print(text)
    return 0
