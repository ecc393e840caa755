"""The daemon's partition task: the month partitions of the history tables made ahead, once a day.

No AMI events, no records: only a periodic task (:func:`pbx_sla.store.partitions.maintain`): shortly after
start, then every :data:`INTERVAL` seconds. The migration runner at the daemon's start has already made
this month's and the next :data:`~pbx_sla.store.partitions.MONTHS_AHEAD` months' partitions, so a run only
adds one when a month begins, and moves rows that waited in a DEFAULT partition. A failure is logged and
retried at the next interval (:func:`pbx_sla.features.periodic.every`); a row without its month's partition
meanwhile waits in the DEFAULT partition, counted in every report. With several daemons on one database each
runs it; the second finds the partitions made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pbx_sla.features import ServiceContext
from pbx_sla.features.periodic import every
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Sink
from pbx_sla.store import partitions
from pbx_sla.store.pool import connect

log = get_logger(__name__)

#: seconds between runs
INTERVAL = 86400.0
#: seconds after the daemon's start before the first run
FIRST_RUN_DELAY = 120.0

_last: dict[str, Any] = {}


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    return {}


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return []


async def run_once(dsn: str) -> dict[str, int]:
    """One run on its own connection; partitions made per table."""
    conn = await connect(dsn)
    try:
        return await partitions.maintain(conn)
    finally:
        await conn.close()


def _done(made: dict[str, int]) -> dict[str, Any]:
    if any(made.values()):
        log.info("history partitions made", **made)
    return {"made": made}


async def start(ctx: ServiceContext) -> Sequence[asyncio.Task[None]]:
    loop = every("partition maintenance", lambda: run_once(ctx.dsn), _done, _last, first_delay=FIRST_RUN_DELAY,
                 interval=INTERVAL)  # fmt: skip
    return [asyncio.create_task(loop, name="partitions")]


def status(ctx: ServiceContext) -> dict[str, Any]:
    return {"last_run": dict(_last) or None}
