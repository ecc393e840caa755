"""Storage of the support line (sql/0030_support.sql): ``support_call`` and ``queue_event`` sinks, and the
per-call outcomes the ``sla`` report reads. Both sinks are idempotent (``ON CONFLICT DO NOTHING`` on
their natural keys), so a batch replayed after an outage or a crash changes nothing.

The outcomes are read from ``support_call_results`` (sql/1602): the ``support_call_outcomes`` view kept as a
table by statement triggers on ``support_calls`` and ``queue_events``, so a month is one indexed range
read, not a derivation per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from pbx_sla.domain.queue_events import KIND as QUEUE_EVENT
from pbx_sla.domain.support import CallOutcome, ServiceFigures
from pbx_sla.pipeline import DbConnection, optional_int, optional_text, record_instant

SUPPORT_CALL = "support_call"


class SupportCallSink:
    """Inserts ``support_call`` records, one per AGI run: (server, uniqueid, decided_at); a replay changes nothing."""

    kind = SUPPORT_CALL

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        rows = [
            (
                str(i["server"] or "unknown"),
                str(i["uniqueid"]),
                optional_text(i.get("linkedid")),
                record_instant(i["decided_at"], SUPPORT_CALL, "decided_at"),
                str(i.get("caller") or ""),
                optional_text(i.get("caller_e164")),
                str(i.get("caller_name") or ""),
                str(i.get("channel") or ""),
                optional_text(i.get("dialled")),
                optional_text(i.get("tenant")),
                optional_text(i.get("requester")),
                bool(i["authorised"]),
                bool(i.get("in_hours", False)),
                optional_text(i.get("tier")),
                str(i["action"]),
                str(i["reason"]),
                optional_text(i.get("queue")),
                int(i.get("priority") or 0),
                None if i.get("latency_ms") is None else float(i["latency_ms"]),
                int(i.get("pin_attempts") or 0),
                str(i.get("via") or "fastagi"),
            )
            for i in items
        ]
        columns = [list(c) for c in zip(*rows, strict=True)]
        await conn.execute(
            """
            INSERT INTO support_calls (server, uniqueid, linkedid, decided_at, caller, caller_e164, caller_name,
                channel, dialled, tenant_id, requester, authorised, in_hours, tier, action, reason, queue,
                priority, latency_ms, pin_attempts, via)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::boolean[], $13::boolean[],
                $14::text[], $15::text[], $16::text[], $17::text[], $18::integer[], $19::float8[],
                $20::integer[], $21::text[])
            ON CONFLICT (server, uniqueid, decided_at) DO NOTHING
            """,
            *columns,
        )


class QueueEventSink:
    """Inserts ``queue_event`` records; a replayed event (same server, uniqueid, event, time) is ignored."""

    kind = QUEUE_EVENT

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        rows = [
            (
                str(i["server"]),
                str(i["uniqueid"]),
                optional_text(i.get("linkedid")),
                str(i["event"]),
                record_instant(i["at"], QUEUE_EVENT, "at"),
                str(i.get("queue") or ""),
                optional_int(i.get("hold_time")),
                optional_int(i.get("ring_time")),
                optional_int(i.get("talk_time")),
                optional_int(i.get("position")),
                optional_text(i.get("member")),
                optional_text(i.get("reason")),
            )
            for i in items
        ]
        columns = [list(c) for c in zip(*rows, strict=True)]
        await conn.execute(
            """
            INSERT INTO queue_events (server, uniqueid, linkedid, event, at, queue, hold_time, ring_time,
                talk_time, position, member, reason)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                $7::integer[], $8::integer[], $9::integer[], $10::integer[], $11::text[], $12::text[])
            ON CONFLICT (server, uniqueid, event, at) DO NOTHING
            """,
            *columns,
        )


async def support_outcomes(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    servers: Sequence[str] | None = None,
) -> dict[str, list[CallOutcome]]:
    """Tenant id → outcomes of its support calls decided in ``[start, end)`` (calls without a tenant left out);
    of the calls that reached ``servers`` only when given (a call's server is its first AGI run's)."""
    rows = await conn.fetch(
        """
        SELECT tenant_id, outcome, wait_seconds FROM support_call_results
        WHERE decided_at >= $1 AND decided_at < $2 AND tenant_id IS NOT NULL
          AND ($3::text IS NULL OR tenant_id = $3) AND ($4::text[] IS NULL OR server = ANY($4::text[]))
        ORDER BY decided_at
        """,
        start,
        end,
        tenant,
        None if servers is None else list(servers),
    )
    out: dict[str, list[CallOutcome]] = {}
    for r in rows:
        out.setdefault(r["tenant_id"], []).append(CallOutcome(r["outcome"], r["wait_seconds"]))
    return out


async def service_by_tenant(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    servers: Sequence[str] | None = None,
) -> dict[str, ServiceFigures]:
    """Tenant id → :class:`ServiceFigures` of its support calls decided in ``[start, end)`` (calls without a
    tenant left out; of the calls that reached ``servers`` only when given, as :func:`support_outcomes`),
    against the answer target of the tenant's tier (none for a tenant no longer in the catalogue). Counted
    in PostgreSQL with the rule of :func:`pbx_sla.domain.support.service_figures`
    (answered within target: answered and wait ≤ target; abandoned after target: abandoned and not so), so a
    month of any size returns one row per tenant; a test holds both to the same figures."""
    rows = await conn.fetch(
        """
        SELECT o.tenant_id, count(*) AS support_calls,
               count(*) FILTER (WHERE o.outcome = 'answered') AS answered,
               count(*) FILTER (WHERE o.outcome = 'abandoned') AS abandoned,
               count(*) FILTER (WHERE o.outcome = 'answered'
                                  AND o.wait_seconds <= r.answer_target_seconds) AS within,
               count(*) FILTER (WHERE o.outcome = 'abandoned'
                                  AND (o.wait_seconds <= r.answer_target_seconds) IS NOT TRUE) AS late
        FROM support_call_results o
        LEFT JOIN tenants t ON t.id = o.tenant_id
        LEFT JOIN tiers r ON r.name = t.tier
        WHERE o.decided_at >= $1 AND o.decided_at < $2 AND o.tenant_id IS NOT NULL
          AND ($3::text IS NULL OR o.tenant_id = $3) AND ($4::text[] IS NULL OR o.server = ANY($4::text[]))
        GROUP BY o.tenant_id
        """,
        start,
        end,
        tenant,
        None if servers is None else list(servers),
    )
    return {
        r["tenant_id"]: ServiceFigures(r["support_calls"], r["answered"], r["abandoned"], r["within"], r["late"])
        for r in rows
    }
