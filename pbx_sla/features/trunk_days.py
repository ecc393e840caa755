"""The daemon's kept-days task: every trunk's closed UTC days of this and last month stored ahead (issue 16).

The reports store a trunk's known states per UTC day once the day is over (:mod:`pbx_sla.store.trunk_days`,
table ``trunk_known_days``) on first use: the first dashboard view of a month paid for up to 31 days of
every trunk. This task stores them first, through the same function the reports read them with
(:func:`pbx_sla.store.trunk_days.load_known`), shortly after start and then every :data:`INTERVAL` seconds,
so a UTC day is kept within an hour of its end and a day a late observation invalidated is stored again
at the next run. Today (the open day) is never stored. The span starts one day before last month's first
UTC day: a month in a zone east of UTC starts on that day.

No AMI events, no records: only a periodic task. Its connection reads in READ COMMITTED whatever the
database's default (days are stored only there; see :mod:`pbx_sla.store.trunk_days`). A failure is logged
(database unreachable: a warning) and retried at the next interval (:func:`pbx_sla.features.periodic.every`).
With several daemons on one database each runs it; the store's lock serialises them and a second run finds
the days kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pbx_sla.domain.trunks import Interval, utc_day, utc_midnight
from pbx_sla.features import ServiceContext
from pbx_sla.features.periodic import every
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Sink
from pbx_sla.store.pool import connect
from pbx_sla.store.trunk_days import ONE_DAY, load_known
from pbx_sla.store.trunks import trunk_rows

log = get_logger(__name__)

#: seconds between runs: a UTC day is kept within this long after its end
INTERVAL = 3600.0
#: seconds after the daemon's start before the first run (the collectors connect first)
FIRST_RUN_DELAY = 90.0

_last: dict[str, Any] = {}


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    return {}


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return []


def span(now: datetime) -> Interval:
    """The UTC days a run keeps at ``now``: from the day before last month's first day (a month in a zone
    east of UTC starts there) to the end of yesterday (today is open)."""
    today = utc_day(now)
    last_month = date(today.year - 1, 12, 1) if today.month == 1 else date(today.year, today.month - 1, 1)
    return Interval(utc_midnight(last_month - ONE_DAY), utc_midnight(today))


async def run_once(dsn: str, now: datetime | None = None) -> dict[str, Any]:
    """One run on its own connection: every known trunk's closed days of :func:`span` kept."""
    now = now or datetime.now(UTC)
    days = span(now)
    conn = await connect(dsn, server_settings={"default_transaction_isolation": "read committed"})
    try:
        started = await conn.fetchval("SELECT now()")
        # every trunk known up to now (also one first seen today: this month's report lists it), not only
        # those load_known would list for the span
        infos = await trunk_rows(conn, Interval(days.start, max(now, days.end)))
        known = await load_known(conn, days, trunks=[(i.server, i.trunk) for i in infos], now=now)
        stored = await conn.fetchval("SELECT count(*) FROM trunk_known_days WHERE computed_at >= $1", started)
    finally:
        await conn.close()
    last = days.end.date() - ONE_DAY
    return {"trunks": len(known), "first_day": days.start.date().isoformat(), "last_day": last.isoformat(),
            "days_stored": stored}  # fmt: skip


def _done(result: dict[str, Any]) -> dict[str, Any]:
    if result["days_stored"]:
        log.info("trunk days kept", **result)
    return result


async def start(ctx: ServiceContext) -> Sequence[asyncio.Task[None]]:
    loop = every("trunk days", lambda: run_once(ctx.dsn), _done, _last, first_delay=FIRST_RUN_DELAY,
                 interval=INTERVAL)  # fmt: skip
    return [asyncio.create_task(loop, name="trunk_days")]


def status(ctx: ServiceContext) -> dict[str, Any]:
    return {"last_run": dict(_last) or None}
