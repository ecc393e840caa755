"""The voice-quality feature: per-leg RTP statistics from AMI → ``qos_leg`` records → :class:`QosLegSink`.

Two sources give the same record (:mod:`pbx_sla.domain.qos`):

* ``UserEvent: PbxSlaQos`` (class ``user``), sent once per leg by the dialplan's hangup handler
  (asterisk_conf/extensions.conf, the shipped configuration): one small event per leg, nothing added to
  any other event;
* the ``ChanVariable: RTPAUDIOQOS…`` lines of the ``Hangup`` event (class ``call``), with manager.conf
  ``channelvars = RTPAUDIOQOS,…``: for PBXs whose dialplan cannot be changed (it costs every channel event
  six lines, docs/qos.md).

A PBX configured for both would record each leg twice (the two events have different timestamps, part of
the row's key): the UserEvent comes first, and a Hangup whose uniqueid it already gave is skipped. A leg
without RTP gives no record; a malformed event is logged (naming the field) and skipped.

The feature counts, per server, Hangup events, those with the variables, PbxSlaQos events and legs recorded:
``status(ctx)`` feeds ``pbx-sla status``, which warns when Hangups arrive but neither source delivers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pbx_sla.domain.events import ParseError
from pbx_sla.domain.qos import (
    HANGUP,
    KIND,
    QOS_USER_EVENT,
    USER_EVENT,
    QosParseError,
    hangup_record,
    user_event_message_record,
    user_event_record,
)
from pbx_sla.features import ServiceContext
from pbx_sla.input_warnings import warn_input
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Record, Sink
from pbx_sla.store.qos import QosLegSink

log = get_logger(__name__)

_PROBE = "ChanVariable(RTPAUDIOQOS)"
#: uniqueids recently recorded from a PbxSlaQos event, per server (a leg's Hangup follows within seconds)
RECENT_LEGS = 4096


@dataclass
class HangupCounts:
    """Per server: Hangup events seen, those that carried the QoS variables (even empty), PbxSlaQos events
    seen, and legs recorded from either."""

    hangups: dict[str, int] = field(default_factory=dict)
    with_qos: dict[str, int] = field(default_factory=dict)
    qos_events: dict[str, int] = field(default_factory=dict)
    legs: dict[str, int] = field(default_factory=dict)
    #: server → uniqueids recorded from PbxSlaQos events, oldest first (at most twice RECENT_LEGS)
    recent: dict[str, dict[str, None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            server: {
                "hangups": self.hangups.get(server, 0),
                "hangups_with_qos": self.with_qos.get(server, 0),
                "qos_events": self.qos_events.get(server, 0),
                "legs_recorded": self.legs.get(server, 0),
            }
            for server in sorted({*self.hangups, *self.qos_events})
        }


_counts: dict[int, HangupCounts] = {}  # id(ctx) → counts (ServiceContext is not hashable)


def _skipped(server: str, source: str, event: Mapping[str, str], exc: Exception) -> None:
    warn_input(
        log,
        f"event.{source}",
        f"{source} QoS values skipped",
        server=server,
        uniqueid=event.get("Uniqueid"),
        error=str(exc),
    )


def hangup_handler(counts: HangupCounts) -> EventHandler:
    def handle(server: str, event: Mapping[str, str]) -> Iterable[Record]:
        counts.hangups[server] = counts.hangups.get(server, 0) + 1
        if _PROBE not in event:
            return ()
        counts.with_qos[server] = counts.with_qos.get(server, 0) + 1
        recent = counts.recent.get(server)
        if recent and event.get("Uniqueid") in recent:
            return ()  # this leg came with its PbxSlaQos event already
        try:
            data = hangup_record(server, event)
        except (ParseError, QosParseError) as exc:
            _skipped(server, HANGUP, event, exc)
            return ()
        if data is None:
            return ()
        counts.legs[server] = counts.legs.get(server, 0) + 1
        return (Record(KIND, data),)

    return handle


class UserEventHandler:
    """``UserEvent`` → a ``qos_leg`` record for ``PbxSlaQos`` (once per call leg), counted per server.

    Called with the parsed event like any :data:`~pbx_sla.pipeline.EventHandler`; :meth:`message` reads the raw
    message itself when it is in the shipped handler's exact layout (the AMI reader then builds no dict of its
    headers and routes nothing: :class:`pbx_sla.ami.collector.Router`), and gives the same record."""

    def __init__(self, counts: HangupCounts) -> None:
        # once per call leg: the counters bound here, not looked up on ``counts`` per event
        self._qos_events, self._legs, self._recents = counts.qos_events, counts.legs, counts.recent

    def __call__(self, server: str, event: Mapping[str, str]) -> Iterable[Record]:
        if event.get("UserEvent") != QOS_USER_EVENT:
            return ()  # the support line's PbxSlaSupport and the PBX's own
        qos_events = self._qos_events
        qos_events[server] = qos_events.get(server, 0) + 1
        try:
            data = user_event_record(server, event)
        except (ParseError, QosParseError) as exc:
            _skipped(server, QOS_USER_EVENT, event, exc)
            return ()
        if data is None:
            return ()
        return self._recorded(server, data)

    def message(self, server: str, text: str) -> tuple[Record] | None:
        """:meth:`__call__` of the raw message when :func:`user_event_message_record` reads it; None otherwise
        (another UserEvent, another layout, a value to refuse: the caller parses it and calls the handler)."""
        data = user_event_message_record(server, text)
        if data is None:
            return None
        qos_events = self._qos_events
        qos_events[server] = qos_events.get(server, 0) + 1
        return self._recorded(server, data)

    def _recorded(self, server: str, data: dict[str, Any]) -> tuple[Record]:
        recents = self._recents
        recent = recents.get(server)
        if recent is None:
            recent = recents[server] = {}
        recent[data["uniqueid"]] = None
        if len(recent) > 2 * RECENT_LEGS:  # keep the newest RECENT_LEGS (dicts keep insertion order)
            recents[server] = dict.fromkeys(list(recent)[-RECENT_LEGS:])
        legs = self._legs
        legs[server] = legs.get(server, 0) + 1
        return (Record(KIND, data),)


def user_event_handler(counts: HangupCounts) -> UserEventHandler:
    return UserEventHandler(counts)


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    # fresh counts for every router built: an id() is reused once its context is gone, and a new context must
    # not inherit the last one's uniqueids (its Hangups would be skipped as already recorded)
    counts = _counts[id(ctx)] = HangupCounts()
    return {HANGUP: hangup_handler(counts), USER_EVENT: user_event_handler(counts)}


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return (QosLegSink(),)


def status(ctx: ServiceContext) -> dict[str, Any]:
    """Per server: ``hangups``, ``hangups_with_qos``, ``qos_events``, ``legs_recorded`` since the daemon started."""
    counts = _counts.get(id(ctx))
    return counts.as_dict() if counts else {}
