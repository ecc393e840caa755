"""Storage of CDR legs and calls: the one write path shared by the daemon (AMI ``Cdr`` events) and
``cdr import`` (Master.csv).

A batch of legs is COPYed into a session-private staging table (``cdr_legs_stage``), then one SQL
function, ``cdr_store_stage`` (sql/repeatable/cdr_store_stage.sql), inserts the legs idempotently (a leg
whose fingerprint is stored is left out; ``ON CONFLICT (fingerprint, start_at) DO NOTHING``), recomputes
every call that gained a leg from all of its legs, and moves the per-(tenant, day) rollup by the difference:
one statement, in the caller's transaction.

Serialisation: a call must be recomputed by one transaction at a time, each seeing the legs the others
committed. Calls are spread over :data:`~pbx_sla.domain.calls.CALL_BUCKETS` buckets by a hash of their
key (:func:`pbx_sla.domain.calls.call_bucket`), with one transaction-scoped advisory lock per (server,
bucket). The daemon and re-attribution take every bucket of their servers; ``cdr import`` stores each
bucket's share of a batch on its own connection under that bucket's lock alone, so the two halves run on
two cores.

Caller and dialled numbers are normalised to E.164 before staging (the attribution lookups compare
E.164 strings), through the process's one number cache (:func:`pbx_sla.domain.phone.e164_cache`): here
with the catalogue's country code read in the same transaction, or by the import's parser with the
country code read when the import starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from pbx_sla.domain.calls import CALL_BUCKETS
from pbx_sla.domain.cdr import LEG_ROW_FIELDS, LegRow, leg_from_data
from pbx_sla.domain.phone import e164_cache
from pbx_sla.pipeline import DbConnection

KIND = "cdr_leg"
#: first key of the two-key advisory locks; the second is hashtext('<server>:<bucket>')
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
#: the staging table's columns: a leg row (:data:`LEG_ROW_FIELDS`, times as epochs) and the two numbers
STAGE_COLUMNS = (
    *(f"{name}_epoch" if name in ("start", "answer", "end") else name for name in LEG_ROW_FIELDS),
    "caller_e164",
    "dialled_e164",
)


class StoredUnderAnotherZone(Exception):
    """Legs being imported are already stored with other times: the same local times were read in another
    time zone before. The transaction is rolled back: nothing of the batch is stored."""

    def __init__(self, legs: int, shift: int) -> None:
        super().__init__(f"{legs} legs already stored with times {shift:+d} s apart")
        self.legs = legs
        self.shift = shift  # seconds: this reading minus the stored one


#: staged legs whose stored copy (same fingerprint: same local texts) has another start instant. A scalar
#: subquery per staged leg (an index probe each): the temporary table has no statistics, and a join was
#: planned as a hash join over all of cdr_legs, which tripled a re-import's database CPU (measured). The
#: window of 27 hours (more than any two zones differ) keeps the probe to the partitions of the leg's
#: start (cdr_legs is partitioned by month, sql/1703).
_TIMES_DIFFER = """
SELECT count(*) AS legs, min(shift) AS shift
FROM (SELECT s.start_epoch - extract(epoch FROM (
             SELECT l.start_at FROM cdr_legs l
             WHERE l.fingerprint = s.fingerprint
               AND l.start_at >= to_timestamp(s.start_epoch) - interval '27 hours'
               AND l.start_at <= to_timestamp(s.start_epoch) + interval '27 hours'
             LIMIT 1))::bigint AS shift
      FROM cdr_legs_stage s) d
WHERE shift <> 0
"""


@dataclass(frozen=True)
class StoreResult:
    inserted: int  # legs new to the database
    present: int  # legs already stored (from either source)


def call_lock_keys(servers: Iterable[str], buckets: Iterable[int] | None = None) -> list[str]:
    """The second keys (before ``hashtext``) of these servers' call-bucket locks (all buckets by default), in the
    one order every calls writer takes them: by server, then bucket (under :data:`LOCK_NAMESPACE`)."""
    wanted = sorted(range(CALL_BUCKETS) if buckets is None else set(buckets))
    return [f"{server}:{bucket}" for server in sorted(set(servers)) for bucket in wanted]


async def lock_calls(conn: DbConnection, servers: Iterable[str], buckets: Iterable[int] | None = None) -> None:
    """Take the advisory locks of these servers' call buckets (all buckets by default), in one order."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(k)) FROM unnest($2::text[]) WITH ORDINALITY AS u(k, i)",
        LOCK_NAMESPACE,
        call_lock_keys(servers, buckets),
    )


async def _prepare_stage(conn: DbConnection, servers: Iterable[str]) -> None:
    await conn.execute("INSERT INTO servers (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", sorted(servers))
    await conn.execute(_STAGE)


async def _store_staged(conn: DbConnection, source: str, rows: int, fresh: bool = False) -> StoreResult:
    inserted = int(await conn.fetchval("SELECT cdr_store_stage($1, $2)", source, fresh))
    return StoreResult(inserted, rows - inserted)


async def store_rows(conn: DbConnection, rows: Sequence[LegRow], source: str) -> StoreResult:
    """Store legs (:class:`~pbx_sla.domain.cdr.LegRow`) and bring their calls and the usage
    rollup up to date; runs in the caller's transaction (a savepoint of it), under every bucket lock
    of the rows' servers. The same leg twice, in the batch or already stored, is stored once."""
    if not rows:
        return StoreResult(0, 0)
    servers = {row[0] for row in rows}
    async with conn.transaction():
        await lock_calls(conn, servers)
        await _prepare_stage(conn, servers)
        e164 = e164_cache(await conn.fetchval("SELECT country_code FROM catalogue_settings"))
        staged = [(*row, e164[row.caller], e164[row.dst]) for row in rows]
        await conn.copy_records_to_table("cdr_legs_stage", records=staged, columns=STAGE_COLUMNS)
        return await _store_staged(conn, source, len(rows))


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    """COPY data for asyncpg (which takes a plain ``bytes`` object for a file name)."""
    yield data


async def store_staging_text(
    conn: DbConnection,
    server: str,
    bucket: int | None,
    data: bytes,
    rows: int,
    source: str = "csv",
    *,
    fresh: bool = False,
) -> StoreResult:
    """Import path: store ``rows`` staged rows given as COPY text data (:data:`STAGE_COLUMNS`, the empty
    string for NULL: ``cdr_store_stage`` reads a NULL text as ''), all of ``server`` and, unless ``bucket``
    is None, all of that call bucket; in one transaction under that bucket's lock (every bucket's when
    None).

    ``fresh``: the rows are expected to be new to the database: the legs are first inserted without
    conflict handling (cheaper), and stored by the general statement if one turns out to be present
    (same result either way; sql/repeatable/cdr_store_stage.sql).

    A leg's fingerprint hashes its local time texts, not instants, so a file read again under another
    zone finds its legs present; if their stored start differs from this reading, the batch is rolled
    back and :class:`StoredUnderAnotherZone` raised (checked only when some leg was present)."""
    if not rows:
        return StoreResult(0, 0)
    async with conn.transaction():
        await lock_calls(conn, [server], None if bucket is None else [bucket])
        await _prepare_stage(conn, [server])
        await conn.copy_to_table("cdr_legs_stage", source=_chunks(data), columns=STAGE_COLUMNS, format="text", null="")
        result = await _store_staged(conn, source, rows, fresh)
        if result.present:  # only a batch with legs already stored can disagree with them
            differ = await conn.fetchrow(_TIMES_DIFFER)  # an aggregate: always one row
            if differ is not None and differ["legs"]:
                raise StoredUnderAnotherZone(differ["legs"], differ["shift"])
        return result


class CdrLegSink:
    """Sink for ``cdr_leg`` records (:func:`pbx_sla.domain.cdr.leg_to_data` dicts of
    :class:`~pbx_sla.domain.cdr.LegRow`)."""

    kind = KIND

    def __init__(self, source: str = "ami") -> None:
        self.source = source

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        await self.write_legs(conn, [leg_from_data(item) for item in items])

    async def write_legs(self, conn: DbConnection, legs: Sequence[LegRow]) -> StoreResult:
        return await store_rows(conn, legs, self.source)


async def reattribute_unattributed(conn: asyncpg.Connection) -> int:
    """Recompute the calls without a tenant (after a catalogue change); returns how many were examined."""
    async with conn.transaction():
        servers = await conn.fetch("SELECT DISTINCT server FROM calls WHERE tenant_id IS NULL")
        await lock_calls(conn, [row["server"] for row in servers])
        return int(await conn.fetchval("SELECT calls_reattribute_unattributed()"))
