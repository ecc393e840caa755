"""Storage of per-leg voice quality (sql/1401_qos_legs.sql): the ``qos_leg`` sink and the reports' reads.

The sink is idempotent (``ON CONFLICT (server, uniqueid, at) DO NOTHING``; ``at``, the month partition key
since sql/1703, is the Hangup event's own time): a Hangup event replayed after an outage or a crash changes
nothing. Since sql/1710 it also stores each leg's MOS (``qos_leg_mos``, the SQL twin of
:func:`pbx_sla.domain.qos.leg_mos`) and, when its call is stored, the call's tenant
(sql/repeatable/qos_legs_call_tenant.sql keeps that tenant current when the call changes).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from pbx_sla.domain.qos import KIND, QosTotals
from pbx_sla.pipeline import DbConnection, record_instant
from pbx_sla.store.calls import LOCK_NAMESPACE, call_lock_keys, lock_calls

#: the batch's rows, COPYed (binary, no per-value checks) into this session-private table, then stored by
#: ``qos_legs_store_stage`` (sql/repeatable/qos_legs_store_stage.sql), which also empties it; emptied at commit too
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
#: the calls locks of the legs' servers, then the legs with their MOS and call tenant (see the SQL file), in one
#: round trip
_STORE = "SELECT qos_legs_store_stage($1, $2)"

#: the connections (asyncpg's, not a pool's proxy of one) whose session holds ``qos_legs_stage`` for good: made
#: outside a transaction by :meth:`QosLegSink.prepare_connection`. Forgotten on any error of a write on it (a
#: ``DISCARD TEMP`` behind our back: that write fails, the writer retries it, and the retry makes it again).
_staged: weakref.WeakSet[Any] = weakref.WeakSet()


def _session(conn: DbConnection) -> Any:
    """The connection itself: a pooled connection is lent through a new proxy per ``acquire()``, the session
    (and its temporary tables) stays with the connection behind it."""
    return getattr(conn, "_con", None) or conn


class QosLegSink:
    """Inserts ``qos_leg`` records; a replayed record (same server, uniqueid and event time) is ignored.

    A batch is COPYed into a session-private staging table, then stored by one statement: asyncpg's array
    parameters (the former ``unnest($1::text[], …)``) check every element of every array against three
    ``collections.abc`` classes, most of the writer's CPU per row (bench/ami_ingest_qos.py, daemon CPU).

    The durable writer calls :meth:`prepare_connection` on its connection before its transactions: the staging
    table is then made once per connection, and a batch costs two round trips (COPY, ``qos_legs_store_stage``)
    instead of four (the calls locks, the stage's ``CREATE IF NOT EXISTS`` and ``TRUNCATE``, COPY, INSERT).
    On any other connection each batch makes sure of the table first, in its transaction, as before."""

    kind = KIND

    async def prepare_connection(self, conn: DbConnection) -> None:
        """Make the staging table on this connection for its whole session (once; outside a transaction, so
        that no rollback undoes it). Nothing to do inside a transaction: :meth:`write` then makes it itself."""
        if _session(conn) in _staged or conn.is_in_transaction():
            return
        await conn.execute(_STAGE)
        _staged.add(_session(conn))

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
    session = _session(conn)
    try:
        if session not in _staged:
            await conn.execute(_STAGE)
        await conn.copy_records_to_table("qos_legs_stage", records=rows, columns=COLUMNS)
        # the calls writers' locks of the legs' servers, taken first: no call of theirs changes between the
        # look-up of a leg's call and the commit (a change waits, and its trigger then sees the leg)
        await conn.fetchval(_STORE, LOCK_NAMESPACE, call_lock_keys({row[0] for row in rows}))
    except BaseException:
        _staged.discard(session)
        raise


async def trunk_legs(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    servers: Sequence[str] | None = None,
    tenant: str | None = None,
) -> list[asyncpg.Record]:
    """Measured legs (received > 0) that hung up in ``[start, end)`` on a catalogue trunk's endpoint, with
    the tenant of their call (NULL when the call is not stored or not attributed), from the view
    ``qos_leg_figures`` (sql/repeatable/qos_leg_figures.sql: the tenant kept on the leg since sql/1710,
    else looked up by linkedid as before); of ``servers`` only when given; of ``tenant``'s calls only, when
    given. ``jitter_ms`` is 0 and ``jitter_max_ms`` the jitter when unknown (as
    :class:`pbx_sla.domain.qos.MeasuredLeg` takes them). Not the view's MOS: the ``qos`` report computes it in
    Python (:func:`pbx_sla.reports.qos.measured`; the same value), which a leg stored before sql/1710 would
    otherwise have computed twice."""
    return await conn.fetch(
        """
        SELECT l.server, l.endpoint AS trunk, l.at, l.tenant_id, l.codec, l.received, l.lost, l.jitter_ms,
               l.jitter_max_ms, l.rtt_ms
        FROM qos_leg_figures l
        JOIN trunks t ON t.server = l.server AND t.name = l.endpoint AND t.in_catalogue
        WHERE l.at >= $1 AND l.at < $2 AND l.received > 0 AND ($3::text[] IS NULL OR l.server = ANY($3::text[]))
          AND ($4::text IS NULL OR l.tenant_id = $4)
        ORDER BY l.server, l.endpoint, l.at, l.uniqueid
        """,
        start,
        end,
        None if servers is None else list(servers),
        tenant,
    )


#: per tenant of ``$4`` (a JSON object: tenant → its poor-MOS threshold), the totals of its calls' measured trunk
#: legs that hung up in [$1, $2) (on servers ``$3`` only, unless NULL). p95s by nearest rank: the
#: ⌈0.95·n⌉ = (19·n + 19) / 20-th smallest (integer division), as pbx_sla.domain.percentile.nearest_rank. The
#: float sums add the legs in the order the plan gives (a sort by tenant of the scan): equal to Python's sums of
#: the same legs up to rounding (the tests compare them to 1e-12). Ordering each tenant's legs as trunk_legs
#: does would make them bit for bit equal, and cost more than the rest of the statement (a sort of every leg on
#: five keys: 0.6 s → 2.3 s for 250,000 legs in the benchmark's database at load 9, measured).
_TENANT_TOTALS = """
SELECT p.tenant_id, count(*) AS legs, sum(l.received) AS received, sum(l.lost) AS lost,
       sum(l.jitter_ms * l.received) AS jitter_weighted,
       (array_agg(l.jitter_max_ms ORDER BY l.jitter_max_ms))[((19 * count(*) + 19) / 20)::int] AS jitter_max_p95,
       (array_agg(l.rtt_ms ORDER BY l.rtt_ms) FILTER (WHERE l.rtt_ms IS NOT NULL))
           [((19 * count(l.rtt_ms) + 19) / 20)::int] AS rtt_p95,
       count(l.rtt_ms) AS rtt_legs, sum(l.mos) AS mos_sum, count(*) FILTER (WHERE l.mos < p.poor_text::float8) AS poor
FROM qos_leg_figures l
JOIN trunks t ON t.server = l.server AND t.name = l.endpoint AND t.in_catalogue
JOIN jsonb_each_text($4::jsonb) AS p(tenant_id, poor_text) ON p.tenant_id = l.tenant_id
WHERE l.at >= $1 AND l.at < $2 AND l.received > 0 AND ($3::text[] IS NULL OR l.server = ANY($3::text[]))
GROUP BY p.tenant_id
"""


async def tenant_totals(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    poor: Mapping[str, float],
    servers: Sequence[str] | None = None,
) -> dict[str, QosTotals]:
    """Per tenant of ``poor`` (tenant → its poor-MOS threshold), the :class:`~pbx_sla.domain.qos.QosTotals`
    of its calls' measured trunk legs that hung up in ``[start, end)`` (on ``servers`` only, when given),
    summed in SQL over ``qos_leg_figures``: the same legs, tenants and MOS as :func:`trunk_legs` gives. A
    tenant without legs is absent. JIT is off for the statement: the view's per-leg call look-up (legs
    stored before sql/1710) makes its estimate high enough to compile it, which costs more than it runs.
    The thresholds go as JSON (``json.dumps`` writes a float's shortest round-trip text: the same double)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL jit = off")
        rows = await conn.fetch(
            _TENANT_TOTALS, start, end, None if servers is None else list(servers), json.dumps(dict(poor))
        )
    return {
        r["tenant_id"]: QosTotals(
            legs=r["legs"],
            received=int(r["received"]),
            lost=int(r["lost"]),
            jitter_weighted=r["jitter_weighted"],
            jitter_max_p95=r["jitter_max_p95"],
            rtt_p95=r["rtt_p95"],
            rtt_legs=r["rtt_legs"],
            mos_sum=r["mos_sum"],
            poor=r["poor"],
        )
        for r in rows
    }


async def fill_legs(conn: asyncpg.Connection, start: datetime, end: datetime) -> int:
    """The legs that hung up in ``[start, end)`` stored before sql/1710: each gets its MOS and, when its call
    is stored within the window, its call's tenant (``qos_legs_fill``); under the call locks of every server.
    Returns how many legs it set. Not needed for correct figures (the readers compute what a leg lacks), only
    for their speed."""
    async with conn.transaction():
        servers = [r["name"] for r in await conn.fetch("SELECT name FROM servers")]
        await lock_calls(conn, servers)
        return int(await conn.fetchval("SELECT qos_legs_fill($1, $2)", start, end))
