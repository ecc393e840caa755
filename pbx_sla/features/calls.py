"""The calls feature: AMI ``Cdr`` events → ``cdr_leg`` records → :class:`~pbx_sla.store.calls.CdrLegSink`.

A ``Cdr`` event's times are the server's local time: the zone is the ``[[asterisk]]`` entry's
``timezone``, else the catalogue's, else UTC. A malformed event is logged (naming the field) and
skipped; the daemon goes on. Headers are read case-insensitively (cdr_manager's ``[mappings]`` name the
linkedid and sequence headers as the administrator spelt them); the first event of a server without a
linkedid is warned about once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from pbx_sla.domain.cdr import CdrError, LocalClock, ami_leg, leg_to_data
from pbx_sla.features import ServiceContext
from pbx_sla.input_warnings import warn_input
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Record, Sink
from pbx_sla.store.calls import KIND, CdrLegSink

log = get_logger(__name__)


def server_zone(ctx: ServiceContext, server: str) -> ZoneInfo:
    """Zone of a server's local clock: its ``[[asterisk]] timezone``, else the catalogue's, else UTC."""
    for entry in ctx.settings.asterisk:
        if entry.name == server and entry.timezone:
            return ZoneInfo(entry.timezone)
    catalogue = ctx.catalogue.current
    return ZoneInfo(catalogue.timezone if catalogue is not None else "UTC")


def cdr_handler(ctx: ServiceContext) -> EventHandler:
    """AMI ``Cdr`` event → one ``cdr_leg`` record, read by :func:`pbx_sla.domain.cdr.ami_leg` (the same
    :func:`~pbx_sla.domain.cdr.read_leg` as ``cdr import``)."""
    clocks: dict[str, LocalClock] = {}  # zone name → its clock (and the clock's cache of hours)
    warned: set[str] = set()  # servers already warned about Cdr events without a linkedid

    def handle(server: str, event: Mapping[str, str]) -> Iterable[Record]:
        tz = server_zone(ctx, server)
        clock = clocks.get(tz.key)
        if clock is None:
            clock = clocks[tz.key] = LocalClock(tz)
        try:
            leg = ami_leg(server, event, clock)
        except CdrError as exc:
            warn_input(
                log, "event.Cdr", "Cdr event skipped", server=server, uniqueid=event.get("UniqueID"), error=str(exc)
            )
            return ()
        if not leg.linkedid and server not in warned:
            warned.add(server)
            log.warning(
                "Cdr events carry no linkedid: each channel's legs count as a call of their own. Map it in "
                "cdr_manager.conf [mappings] (linkedid => LinkedID; any capitalisation is read)",
                server=server,
                uniqueid=leg.uniqueid,
            )
        return (Record(KIND, leg_to_data(leg)),)

    return handle


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    return {"Cdr": cdr_handler(ctx)}


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return (CdrLegSink(source="ami"),)
