"""The voice-quality feature: AMI ``Hangup`` events → ``qos_leg`` records → :class:`~pbx_sla.store.qos.QosLegSink`.

manager.conf ``channelvars = RTPAUDIOQOS,…`` puts the RTP statistics on every ``Hangup`` event (class
``call``). A channel without RTP (a Local channel, an unanswered leg) carries the variables empty and
gives no record. A malformed event is logged (naming the field) and skipped.

The feature counts, per server, Hangup events with and without the variables: ``status(ctx)`` feeds
``pbx-sla status``, which warns when Hangup events arrive without them (the PBX is not configured).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pbx_sla.domain.events import ParseError
from pbx_sla.domain.qos import HANGUP, KIND, QosParseError, hangup_record
from pbx_sla.features import ServiceContext
from pbx_sla.input_warnings import warn_input
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Record, Sink
from pbx_sla.store.qos import QosLegSink

log = get_logger(__name__)

_PROBE = "ChanVariable(RTPAUDIOQOS)"


@dataclass
class HangupCounts:
    """Per server: Hangup events seen, and those that carried the QoS variables (even empty)."""

    hangups: dict[str, int] = field(default_factory=dict)
    with_qos: dict[str, int] = field(default_factory=dict)
    legs: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            server: {
                "hangups": n,
                "hangups_with_qos": self.with_qos.get(server, 0),
                "legs_recorded": self.legs.get(server, 0),
            }
            for server, n in sorted(self.hangups.items())
        }


_counts: dict[int, HangupCounts] = {}  # id(ctx) → counts (ServiceContext is not hashable)


def hangup_handler(counts: HangupCounts) -> EventHandler:
    def handle(server: str, event: Mapping[str, str]) -> Iterable[Record]:
        counts.hangups[server] = counts.hangups.get(server, 0) + 1
        if _PROBE not in event:
            return ()
        counts.with_qos[server] = counts.with_qos.get(server, 0) + 1
        try:
            data = hangup_record(server, event)
        except (ParseError, QosParseError) as exc:
            warn_input(
                log,
                "event.Hangup",
                "Hangup QoS variables skipped",
                server=server,
                uniqueid=event.get("Uniqueid"),
                error=str(exc),
            )
            return ()
        if data is None:
            return ()
        counts.legs[server] = counts.legs.get(server, 0) + 1
        return (Record(KIND, data),)

    return handle


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    counts = _counts.setdefault(id(ctx), HangupCounts())
    return {HANGUP: hangup_handler(counts)}


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return (QosLegSink(),)


def status(ctx: ServiceContext) -> dict[str, Any]:
    """Per server: ``hangups``, ``hangups_with_qos``, ``legs_recorded`` since the daemon started."""
    counts = _counts.get(id(ctx))
    return counts.as_dict() if counts else {}
