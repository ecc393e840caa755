"""The daemon's kept-requests task: every tenant's settled support requests kept ahead (issue 16).

The ``sla`` report (and so the dashboard's overview and tenant page) keeps each tenant's requests before a cut
(:mod:`pbx_sla.store.kept_requests`, docs/requests.md) and moves them on, or derives them again after a late
fact or a catalogue change deleted or outdated them (a revision outdates only the tenants whose catalogue
parts it changes, sql/1770), on first use: the view that does it pays for every
tenant's history (1.6-3.3 s with 50,000 support calls a month). This task does it first, through the same
function the report calls (:func:`pbx_sla.reports.requests.keep_ahead`), shortly after start and then every
:data:`INTERVAL` seconds, for every tenant of the current catalogue, judged as of the wall clock.

No AMI events, no records: only a periodic task. Its connection reads in READ COMMITTED whatever the
database's default (rows are stored only there). A failure is logged and retried at the next interval
(:func:`pbx_sla.features.periodic.every`). With several daemons on one database each runs it; the store's lock
serialises them and a second run finds nothing to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pbx_sla.features import ServiceContext
from pbx_sla.features.periodic import every
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Sink
from pbx_sla.reports.requests import keep_ahead
from pbx_sla.store.catalogue import revision_catalogue
from pbx_sla.store.pool import connect

log = get_logger(__name__)

#: seconds between runs: a tenant whose rows a late fact deleted is derived again within this long
INTERVAL = 60.0
#: seconds after the daemon's start before the first run (the collectors connect first)
FIRST_RUN_DELAY = 100.0

_last: dict[str, Any] = {}


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    return {}


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return []


async def run_once(dsn: str, now: datetime | None = None) -> dict[str, Any]:
    """One run on its own connection: the kept requests of every catalogue tenant moved on as of ``now``."""
    now = now or datetime.now(UTC)
    conn = await connect(dsn, server_settings={"default_transaction_isolation": "read committed"})
    try:
        revision = await revision_catalogue(conn)
        if revision is None:
            return {"tenants": 0, "moved": 0}
        revision_id, cat = revision
        moved = await keep_ahead(conn, cat, revision_id, now, sorted(cat.tenants))
    finally:
        await conn.close()
    return {"tenants": len(cat.tenants), "moved": len(moved)}


def _done(result: dict[str, Any]) -> dict[str, Any]:
    if result["moved"]:
        log.info("support requests kept", **result)
    return result


async def start(ctx: ServiceContext) -> Sequence[asyncio.Task[None]]:
    loop = every("support kept", lambda: run_once(ctx.dsn), _done, _last, first_delay=FIRST_RUN_DELAY,
                 interval=INTERVAL)  # fmt: skip
    return [asyncio.create_task(loop, name="support_kept")]


def status(ctx: ServiceContext) -> dict[str, Any]:
    return {"last_run": dict(_last) or None}
