"""Storage of CDR legs and calls: the one write path shared by the daemon (AMI ``Cdr`` events) and
``cdr import`` (Master.csv).

:func:`store_rows` (and :func:`store_legs`, which turns legs into rows) runs inside the caller's
transaction: it serialises writers per server with a transaction-scoped advisory lock, COPYs the rows
into a temporary staging table, inserts them idempotently (``ON CONFLICT (server, fingerprint) DO
NOTHING``), then recomputes every call that gained a leg from all of its legs and moves the
per-(tenant, day) rollup by the difference, in one set-based statement (SQL function ``calls_refresh``,
sql/0021_calls_refresh_setbased.sql).
Caller and dialled numbers are normalised to E.164 here, with the catalogue's country code read in
the same transaction, because the attribution lookups compare E.164 strings.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from pbx_sla.domain.cdr import LEG_ROW_FIELDS, CdrLeg, LegRow, leg_from_data, leg_row
from pbx_sla.domain.phone import normalise

KIND = "cdr_leg"
#: first key of the two-key advisory lock; the second is hashtext(server)
LOCK_NAMESPACE = int.from_bytes(hashlib.sha256(b"pbx-sla calls").digest()[:4], "big", signed=True)

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS cdr_legs_stage (
    server text, fingerprint uuid, call_key text, accountcode text, src text, dst text, dcontext text, clid text,
    channel text, dstchannel text, lastapp text, lastdata text, start_epoch bigint, answer_epoch bigint,
    end_epoch bigint, duration integer, billsec integer, disposition text, amaflags text, uniqueid text,
    userfield text, peeraccount text, linkedid text, sequence integer, src_endpoint text, dst_endpoint text,
    caller_e164 text, dialled_e164 text
) ON COMMIT DELETE ROWS;
TRUNCATE cdr_legs_stage
"""
_STAGE_COLUMNS = (
    *(f"{name}_epoch" if name in ("start", "answer", "end") else name for name in LEG_ROW_FIELDS),
    "caller_e164",
    "dialled_e164",
)

_INSERT = """
WITH ins AS (
    INSERT INTO cdr_legs (server, fingerprint, call_key, source, accountcode, src, dst, dcontext, clid, channel,
                          dstchannel, lastapp, lastdata, start_at, answer_at, end_at, duration, billsec,
                          disposition, amaflags, uniqueid, userfield, peeraccount, linkedid, sequence, caller_e164,
                          dialled_e164, src_endpoint, dst_endpoint)
    SELECT server, fingerprint, call_key, $1, accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp,
           lastdata, to_timestamp(start_epoch), to_timestamp(answer_epoch), to_timestamp(end_epoch), duration,
           billsec, disposition, amaflags, uniqueid, userfield, peeraccount, linkedid, sequence, caller_e164,
           dialled_e164, src_endpoint, dst_endpoint
    FROM cdr_legs_stage
    ON CONFLICT (server, fingerprint) DO NOTHING
    RETURNING server, call_key
),
touched AS (
    SELECT server, call_key, count(*) AS legs FROM ins GROUP BY server, call_key
)
SELECT coalesce(sum(legs), 0)::bigint AS inserted, array_agg(server) AS servers, array_agg(call_key) AS keys
FROM touched
"""

#: the import's variant: no calls_refresh in this transaction; the touched calls are queued in
#: calls_pending (same transaction) for :func:`refresh_batch` on another connection
_INSERT_DEFERRED = _INSERT.replace(
    """touched AS (""",
    """pending AS (
    INSERT INTO calls_pending (batch, server, call_key) SELECT DISTINCT $2::uuid, server, call_key FROM ins
),
touched AS (""",
)

#: E.164 normalisation is pure and callers/DIDs repeat a lot: cache it
_normalise = functools.lru_cache(maxsize=1 << 16)(normalise)


@dataclass(frozen=True)
class StoreResult:
    inserted: int  # legs new to the database
    present: int  # legs already stored (from either source)


async def store_legs(conn: asyncpg.Connection, legs: Sequence[CdrLeg], source: str) -> StoreResult:
    """Store legs and bring their calls and the usage rollup up to date (see :func:`store_rows`)."""
    return await store_rows(conn, [leg_row(leg) for leg in legs], source)


async def store_rows(conn: asyncpg.Connection, rows: Sequence[LegRow], source: str) -> StoreResult:
    """Store leg rows (:data:`pbx_sla.domain.cdr.LEG_ROW_FIELDS`) and bring their calls and the usage
    rollup up to date; runs in the caller's transaction (a savepoint of it).

    The rows are COPYed into a session-private staging table, inserted with one ``INSERT ... SELECT ...
    ON CONFLICT DO NOTHING`` (the same leg twice, in the batch or already stored, is stored once), and
    the calls that gained a leg are recomputed in one set-based ``calls_refresh``.
    """
    if not rows:
        return StoreResult(0, 0)
    servers = sorted({row[0] for row in rows})
    async with conn.transaction():
        for server in servers:
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, server)
        result = await _stage_and_insert(conn, rows, _INSERT, source)
        inserted = int(result["inserted"])
        if inserted:
            await conn.execute("SELECT calls_refresh($1::text[], $2::text[])", result["servers"], result["keys"])
    return StoreResult(inserted, len(rows) - inserted)


@dataclass(frozen=True)
class DeferredStore:
    result: StoreResult
    batch: uuid.UUID  # the calls_pending rows of this batch
    servers: list[str]  # with keys: the calls this batch touched, for refresh_batch
    keys: list[str]


async def _stage_and_insert(conn: asyncpg.Connection, rows: Sequence[LegRow], query: str, *args: Any) -> asyncpg.Record:
    servers = sorted({row[0] for row in rows})
    await conn.execute("INSERT INTO servers (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", servers)
    cc = await conn.fetchval("SELECT country_code FROM catalogue_settings")
    if cc:
        # caller: src, else the caller ID (pbx_sla.domain.calls.caller_number); dialled: dst
        staged = [(*row, _normalise(row[4] or row[7], cc), _normalise(row[5], cc)) for row in rows]
    else:
        staged = [(*row, None, None) for row in rows]
    await conn.execute(_STAGE)
    await conn.copy_records_to_table("cdr_legs_stage", records=staged, columns=_STAGE_COLUMNS)
    return await conn.fetchrow(query, *args)


async def insert_rows_deferred(conn: asyncpg.Connection, rows: Sequence[LegRow], source: str) -> DeferredStore:
    """Import path, first half: store leg rows and queue the calls they touched in ``calls_pending``,
    without recomputing those calls (the caller runs :func:`refresh_batch` after this transaction commits).

    Takes no advisory lock: the lock orders *call recomputations*, and every call this inserts a leg into
    is recomputed later by :func:`refresh_batch` under the lock, in a statement that starts after this
    transaction committed, so it sees this leg and every leg committed before it. Runs in the caller's
    transaction (a savepoint of it).
    """
    batch = uuid.uuid4()
    if not rows:
        return DeferredStore(StoreResult(0, 0), batch, [], [])
    async with conn.transaction():
        result = await _stage_and_insert(conn, rows, _INSERT_DEFERRED, source, batch)
    inserted = int(result["inserted"])
    return DeferredStore(
        StoreResult(inserted, len(rows) - inserted), batch, result["servers"] or [], result["keys"] or []
    )


async def refresh_batch(conn: asyncpg.Connection, stored: DeferredStore) -> None:
    """Import path, second half: recompute the calls of a committed :func:`insert_rows_deferred` batch
    (under the per-server lock, like :func:`store_rows`) and clear its ``calls_pending`` rows."""
    if not stored.keys:
        return
    async with conn.transaction():
        for server in sorted(set(stored.servers)):
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, server)
        await conn.execute("SELECT calls_refresh($1::text[], $2::text[])", stored.servers, stored.keys)
        await conn.execute("DELETE FROM calls_pending WHERE batch = $1", stored.batch)


async def refresh_leftover(conn: asyncpg.Connection, server: str) -> int:
    """Recompute the calls an interrupted import left in ``calls_pending`` for ``server``; returns how many."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, server)
        rows = await conn.fetch("DELETE FROM calls_pending WHERE server = $1 RETURNING call_key", server)
        keys = sorted({r["call_key"] for r in rows})
        if keys:
            await conn.execute("SELECT calls_refresh($1::text[], $2::text[])", [server] * len(keys), keys)
    return len(keys)


class CdrLegSink:
    """Sink for ``cdr_leg`` records (:func:`pbx_sla.domain.cdr.leg_to_data` dicts)."""

    kind = KIND

    def __init__(self, source: str = "ami") -> None:
        self.source = source

    async def write(self, conn: asyncpg.Connection, items: Sequence[Mapping[str, Any]]) -> None:
        await self.write_legs(conn, [leg_from_data(item) for item in items])

    async def write_legs(self, conn: asyncpg.Connection, legs: Sequence[CdrLeg]) -> StoreResult:
        return await store_legs(conn, legs, self.source)

    async def write_rows(self, conn: asyncpg.Connection, rows: Sequence[LegRow]) -> StoreResult:
        return await store_rows(conn, rows, self.source)


async def reattribute_unattributed(conn: asyncpg.Connection) -> int:
    """Recompute the calls without a tenant (after a catalogue change); returns how many were examined."""
    async with conn.transaction():
        servers = await conn.fetch("SELECT DISTINCT server FROM calls WHERE tenant_id IS NULL ORDER BY server")
        for row in servers:
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, row["server"])
        return int(await conn.fetchval("SELECT calls_reattribute_unattributed()"))
