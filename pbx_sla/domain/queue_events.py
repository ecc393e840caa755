"""Queue events of support calls (AMI class ``agent``) as plain records, parsed from AMI dicts.

``QueueCallerJoin``, ``AgentConnect``, ``QueueCallerAbandon``, ``AgentComplete`` and ``QueueCallerLeave``
all carry the caller channel's ``Uniqueid``/``Linkedid``: the same channel that ran the support AGI,
so a queue event joins its support call by (server, uniqueid). Times come from the event's
``Timestamp``; without one (``timestampevents = no``) the adapter passes the time it read the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pbx_sla.domain.events import ParseError, non_negative_int, parse_timestamp

KIND = "queue_event"
EVENTS = ("QueueCallerJoin", "AgentConnect", "QueueCallerAbandon", "AgentComplete", "QueueCallerLeave")


def parse_queue_event(server: str, raw: Mapping[str, str], received_at: datetime) -> dict[str, Any]:
    """One queue event as a ``queue_event`` record's data; raises ParseError naming the field at fault."""
    event = raw.get("Event", "")
    if event not in EVENTS:
        raise ParseError(event or "?", "Event", "is not a queue event")
    uniqueid = (raw.get("Uniqueid") or raw.get("UniqueID") or "").strip()
    if not uniqueid:
        raise ParseError(event, "Uniqueid", "is missing or empty")
    at = parse_timestamp(raw, event) if (raw.get("Timestamp") or "").strip() else received_at
    member = (raw.get("MemberName") or raw.get("Interface") or "").strip() or None
    return {
        "server": server,
        "uniqueid": uniqueid,
        "linkedid": (raw.get("Linkedid") or raw.get("LinkedID") or "").strip() or None,
        "event": event,
        "at": at.isoformat(),
        "queue": (raw.get("Queue") or "").strip(),
        "hold_time": non_negative_int(raw, event, "HoldTime"),
        "ring_time": non_negative_int(raw, event, "RingTime"),
        "talk_time": non_negative_int(raw, event, "TalkTime"),
        "position": non_negative_int(raw, event, "Position"),
        "member": member,
        "reason": (raw.get("Reason") or "").strip() or None,
    }
