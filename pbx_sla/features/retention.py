"""The daemon's retention task: ``[retention]`` applied once shortly after start, then every ``interval``.

No AMI events, no records: only a periodic task. A failure (database down) is logged and retried at the
next interval (:func:`pbx_sla.features.periodic.every`); the rest of the daemon never waits for it. With
several daemons on one database each runs it; the runs serialise on the call locks and a second finds
nothing left to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pbx_sla.config import Retention
from pbx_sla.features import ServiceContext
from pbx_sla.features.periodic import every
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Sink
from pbx_sla.store.pool import connect
from pbx_sla.store.retention import apply_retention

log = get_logger(__name__)

#: seconds after the daemon's start before the first run (the collectors connect first)
FIRST_RUN_DELAY = 60.0

_last: dict[str, Any] = {}


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    return {}


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return []


async def run_once(dsn: str, policy: Retention) -> list[dict[str, Any]]:
    """One retention run on its own connection; the per-table report."""
    conn = await connect(dsn)
    try:
        return await apply_retention(conn, policy, datetime.now(UTC))
    finally:
        await conn.close()


def _done(report: list[dict[str, Any]]) -> dict[str, Any]:
    rows = {t["table"]: t["rows"] for t in report}
    rows.update({f"{t['table']}_dropped": t["rows_dropped"] for t in report if t["partitions_dropped"]})
    log.info("retention applied", **rows)
    return {"rows": rows}


async def start(ctx: ServiceContext) -> Sequence[asyncio.Task[None]]:
    policy = ctx.settings.retention
    if not policy.configured:
        return []
    delay = min(FIRST_RUN_DELAY, policy.interval)
    loop = every("retention run", lambda: run_once(ctx.dsn, policy), _done, _last, first_delay=delay,
                 interval=policy.interval)  # fmt: skip
    return [asyncio.create_task(loop, name="retention")]


def status(ctx: ServiceContext) -> dict[str, Any]:
    return {"configured": ctx.settings.retention.configured, "last_run": dict(_last) or None}
