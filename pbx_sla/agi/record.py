"""The ``support_call`` record of one decision, shared by the FastAGI server and the classic script.

Kept free of asyncpg and the daemon's modules so that the classic script (one process per call)
imports only what it needs to answer quickly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pbx_sla.agi import protocol as p
from pbx_sla.domain.routing import Decision

#: under ``data_dir``: records the classic script could not store (one JSON file each); the daemon
#: replays them (:mod:`pbx_sla.agi.classic_spool`), so does the next classic call that reaches the database
SPOOL_DIR = "classic-agi-spool"


def record_data(
    d: Decision,
    *,
    uniqueid: str,
    linkedid: str | None,
    server: str,
    caller_id: str,
    caller_name: str,
    channel: str,
    decided_at: datetime,
    latency_ms: float,
    pin_attempts: int,
    via: str,
) -> dict[str, Any]:
    """The ``support_call`` record of one decision (FastAGI and the classic script alike)."""
    s = p.sanitise
    return {
        "uniqueid": s(uniqueid, max_chars=64),
        "linkedid": linkedid,
        "server": s(server, max_chars=64) or "unknown",
        "caller": s(caller_id, max_chars=80),
        "caller_e164": d.caller,
        "caller_name": s(caller_name, max_chars=80),
        "channel": s(channel, max_chars=120),
        "dialled": d.dialled,
        "tenant": d.tenant or None,
        "requester": d.requester,
        "authorised": d.authorised,
        "in_hours": d.in_hours,
        "tier": d.tier or None,
        "action": d.action,
        "reason": d.reason,
        "queue": d.queue or None,
        "priority": d.priority,
        "decided_at": decided_at.isoformat(),
        "latency_ms": latency_ms,
        "pin_attempts": pin_attempts,
        "via": via,
    }
