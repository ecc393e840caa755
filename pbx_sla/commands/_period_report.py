"""The prologue every period report shares: connect, read the catalogue's zone, parse PERIOD, query."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from pbx_sla.config import Settings
from pbx_sla.reports.period import Period, parse_period
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.store.settings import catalogue_timezone

T = TypeVar("T")


async def query_period(
    args: argparse.Namespace, settings: Settings, query: Callable[[asyncpg.Connection, Period], Awaitable[T]]
) -> tuple[Period, T]:
    """``query(conn, period)`` for the command's ``--period`` / ``--from --to`` in the catalogue's zone."""
    conn = await connect(await resolve_dsn(settings))
    try:
        period = parse_period(args.period, args.date_from, args.date_to, await catalogue_timezone(conn))
        return period, await query(conn, period)
    finally:
        await conn.close()
