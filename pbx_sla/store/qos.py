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
from pbx_sla.pipeline import DbConnection, record_instant

#: the batch's rows, COPYed (binary, no per-value checks) then inserted in one statement; emptied at commit
#: (and before each batch: two batches in one transaction)
_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS qos_legs_stage (
    server text, uniqueid text, linkedid text, channel text, endpoint text, at timestamptz, codec text,
    received bigint, lost bigint, sent bigint, jitter_ms float8, jitter_max_ms float8, jitter_avg_ms float8,
    far_lost bigint, far_jitter_ms float8, rtt_ms float8, rtt_max_ms float8, asterisk_mes float8
) ON COMMIT DELETE ROWS;
TRUNCATE qos_legs_stage
"""
COLUMNS = ("server", "uniqueid", "linkedid", "channel", "endpoint", "at", "codec", "received", "lost", "sent",
           "jitter_ms", "jitter_max_ms", "jitter_avg_ms", "far_lost", "far_jitter_ms", "rtt_ms", "rtt_max_ms",
           "asterisk_mes")  # fmt: skip
_INSERT = f"""
INSERT INTO qos_legs ({", ".join(COLUMNS)})
SELECT {", ".join(COLUMNS)} FROM qos_legs_stage
ON CONFLICT (server, uniqueid, at) DO NOTHING
"""


class QosLegSink:
    """Inserts ``qos_leg`` records; a replayed record (same server, uniqueid and event time) is ignored.

    A batch is COPYed into a session-private staging table, then inserted by one statement: asyncpg's array
    parameters (the former ``unnest($1::text[], …)``) check every element of every array against three
    ``collections.abc`` classes, most of the writer's CPU per row (bench/ami_ingest_qos.py, daemon CPU)."""

    kind = KIND

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        rows = _rows(items)
        if conn.is_in_transaction():  # the writer's: the staged rows live until its commit
            await _store(conn, rows)
        else:
            async with conn.transaction():
                await _store(conn, rows)


def _rows(items: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The COPY rows of a batch, each value read as its column's type (records may come back from the spool as
    JSON: ``at`` as text). The checks of :func:`~pbx_sla.pipeline.optional_text`, ``optional_float`` and
    ``optional_int`` written out in place: one row per call leg, 18 calls fewer each."""
    rows = []
    for i in items:
        get = i.get
        linkedid, endpoint, codec = get("linkedid"), get("endpoint"), get("codec")
        rows.append(
            (
                str(i["server"]),
                str(i["uniqueid"]),
                None if linkedid is None or linkedid == "" else str(linkedid),
                str(get("channel") or ""),
                None if endpoint is None or endpoint == "" else str(endpoint),
                record_instant(i["at"], KIND, "at"),
                None if codec is None or codec == "" else str(codec),
                int(i["received"]),
                int(i["lost"]),
                int(get("sent") or 0),
                None if (jitter := get("jitter_ms")) is None else float(jitter),
                None if (jitter_max := get("jitter_max_ms")) is None else float(jitter_max),
                None if (jitter_avg := get("jitter_avg_ms")) is None else float(jitter_avg),
                None if (far_lost := get("far_lost")) is None else int(far_lost),
                None if (far_jitter := get("far_jitter_ms")) is None else float(far_jitter),
                None if (rtt := get("rtt_ms")) is None else float(rtt),
                None if (rtt_max := get("rtt_max_ms")) is None else float(rtt_max),
                None if (mes := get("asterisk_mes")) is None else float(mes),
            )
        )
    return rows


async def _store(conn: DbConnection, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute(_STAGE)
    await conn.copy_records_to_table("qos_legs_stage", records=rows, columns=COLUMNS)
    await conn.execute(_INSERT)


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
