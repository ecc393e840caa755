"""The support feature: the FastAGI server (``start``), queue events from AMI, and their storage.

``start(ctx)`` binds ``[agi] listen`` and serves ``/support`` until cancelled; decisions read
``ctx.catalogue.current`` only, records go to ``ctx.submit`` (the durable writer), so a PostgreSQL
outage changes neither the decisions nor the records kept of them. ``start`` also replays the classic
AGI script's spool every 30 s (:mod:`pbx_sla.agi.classic_spool`). Queue events become
``queue_event`` records; a malformed one is logged (naming the field) and skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pbx_sla.agi.classic_spool import db_writer, replay_forever, spool_directory
from pbx_sla.agi.pins import PinLimiter
from pbx_sla.agi.server import SupportAGIServer
from pbx_sla.config import AgiOptions
from pbx_sla.domain.events import ParseError
from pbx_sla.domain.pin_limits import PinLimits
from pbx_sla.domain.queue_events import EVENTS, KIND, parse_queue_event
from pbx_sla.features import ServiceContext
from pbx_sla.input_warnings import warn_input
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Record, Sink
from pbx_sla.store.support import QueueEventSink, SupportCallSink

log = get_logger(__name__)


#: under ``data_dir``: the daemon's PIN guess counts (0600, rewritten atomically), so a restart keeps them
PIN_STATE = "pin-limits.json"


def pin_limits(options: AgiOptions) -> PinLimits:
    return PinLimits(options.pin_caller_limit, options.pin_tenant_limit, options.pin_global_limit,
                     options.pin_window_seconds)  # fmt: skip


def _pin_state_error(exc: OSError) -> None:
    log.warning("PIN guess counts not saved (kept in memory)", error=str(exc))


def queue_event_handler(server: str, event: Mapping[str, str]) -> Iterable[Record]:
    try:
        data = parse_queue_event(server, event, datetime.now(UTC))
    except ParseError as exc:
        warn_input(
            log,
            f"event.{event.get('Event', '?')}",
            "queue event skipped",
            server=server,
            ami_event=event.get("Event"),
            error=str(exc),
        )
        return ()
    return (Record(KIND, data),)


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    return dict.fromkeys(EVENTS, queue_event_handler)


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return (SupportCallSink(), QueueEventSink())


#: the FastAGI server of each running daemon (by its context), for :func:`status`
_servers: dict[int, SupportAGIServer] = {}


def status(ctx: ServiceContext) -> dict[str, Any]:
    """The FastAGI server's counters (``status.json`` ``features.support``); empty before it started."""
    agi = _servers.get(id(ctx))
    return {**agi.stats, "pin": agi.limiter.status()} if agi is not None else {}


async def start(ctx: ServiceContext) -> Sequence[asyncio.Task[None]]:
    """Bind the FastAGI server (an OSError such as a port in use reaches the daemon: exit 2) and replay the
    classic script's spool."""
    options = ctx.settings.agi
    limiter = PinLimiter(pin_limits(options), ctx.settings.data_dir / PIN_STATE, on_error=_pin_state_error)
    if limiter.state:
        log.info("PIN guess counts loaded", file=str(limiter.path), buckets=len(limiter.state),
                 lockouts=len(limiter.lockouts()))  # fmt: skip
    agi = SupportAGIServer(
        ctx.catalogue,
        ctx.submit,
        servers=ctx.settings.asterisk,
        limiter=limiter,
        header_timeout=options.header_timeout,
        session_timeout=options.session_timeout,
        max_sessions=options.max_sessions,
        metrics=ctx.agi_metrics,
    )
    server = await agi.serve(ctx.settings.agi_host, ctx.settings.agi_port)
    _servers[id(ctx)] = agi

    async def serve() -> None:
        try:
            await server.serve_forever()
        finally:
            server.close()
            log.info("FastAGI server stopped", **agi.stats)

    spool = replay_forever(spool_directory(ctx.settings.data_dir), db_writer(ctx.dsn))
    return [asyncio.create_task(serve(), name="fastagi"), asyncio.create_task(spool, name="classic-agi-spool")]
