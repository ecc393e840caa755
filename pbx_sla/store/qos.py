"""Storage of per-leg voice quality (sql/1401_qos_legs.sql): the ``qos_leg`` sink and the report's read.

The sink is idempotent (``ON CONFLICT (server, uniqueid, at) DO NOTHING``; ``at``, the month partition key
since sql/1703, is the Hangup event's own time): a Hangup event replayed after an outage or a crash changes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from pbx_sla.domain.qos import KIND
from pbx_sla.pipeline import DbConnection, optional_float, optional_int, optional_text, record_instant


class QosLegSink:
    """Inserts ``qos_leg`` records; a replayed record (same server, uniqueid and event time) is ignored."""

    kind = KIND

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        rows = [
            (
                str(i["server"]),
                str(i["uniqueid"]),
                optional_text(i.get("linkedid")),
                str(i.get("channel") or ""),
                optional_text(i.get("endpoint")),
                record_instant(i["at"], KIND, "at"),
                optional_text(i.get("codec")),
                int(i["received"]),
                int(i["lost"]),
                int(i.get("sent") or 0),
                optional_float(i.get("jitter_ms")),
                optional_float(i.get("jitter_max_ms")),
                optional_float(i.get("jitter_avg_ms")),
                optional_int(i.get("far_lost")),
                optional_float(i.get("far_jitter_ms")),
                optional_float(i.get("rtt_ms")),
                optional_float(i.get("rtt_max_ms")),
                optional_float(i.get("asterisk_mes")),
            )
            for i in items
        ]
        columns = [list(c) for c in zip(*rows, strict=True)]
        await conn.execute(
            """
            INSERT INTO qos_legs (server, uniqueid, linkedid, channel, endpoint, at, codec, received, lost, sent,
                jitter_ms, jitter_max_ms, jitter_avg_ms, far_lost, far_jitter_ms, rtt_ms, rtt_max_ms, asterisk_mes)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::float8[], $12::float8[], $13::float8[],
                $14::bigint[], $15::float8[], $16::float8[], $17::float8[], $18::float8[])
            ON CONFLICT (server, uniqueid, at) DO NOTHING
            """,
            *columns,
        )


async def trunk_legs(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    servers: Sequence[str] | None = None,
    tenant: str | None = None,
) -> list[asyncpg.Record]:
    """Measured legs (received > 0) that hung up in ``[start, end)`` on a catalogue trunk's endpoint, with
    the tenant of their call (joined by linkedid; NULL when the call is not stored or not attributed); of
    ``servers`` only when given; of ``tenant``'s calls only, when given.

    ``calls`` is partitioned by month of ``started_at``: a lookup by key alone probes every month kept. A
    leg hangs up after its call started, so the call is first looked for in the 40 days before the leg's
    hangup (the leg's month and the one before it; run-time partition pruning), and only a leg whose call
    is not there is looked up in every month (a call longer than 40 days, or none stored): same result."""
    return await conn.fetch(
        """
        SELECT * FROM (
        SELECT q.server, q.endpoint AS trunk, q.at,
               CASE WHEN near.found THEN near.tenant_id
                    ELSE (SELECT c.tenant_id FROM calls c WHERE c.server = q.server AND c.call_key = q.linkedid
                          LIMIT 1) END AS tenant_id,
               q.codec, q.received, q.lost, q.jitter_ms, q.jitter_max_ms, q.rtt_ms
        FROM qos_legs q
        JOIN trunks t ON t.server = q.server AND t.name = q.endpoint AND t.in_catalogue
        LEFT JOIN LATERAL (
            SELECT true AS found, c.tenant_id FROM calls c
            WHERE c.server = q.server AND c.call_key = q.linkedid
              AND c.started_at > q.at - interval '40 days' AND c.started_at <= q.at + interval '1 day'
            LIMIT 1) near ON true
        WHERE q.at >= $1 AND q.at < $2 AND q.received > 0 AND ($3::text[] IS NULL OR q.server = ANY($3::text[]))
        ) l
        WHERE $4::text IS NULL OR l.tenant_id = $4
        ORDER BY l.server, l.trunk, l.at
        """,
        start,
        end,
        None if servers is None else list(servers),
        tenant,
    )
