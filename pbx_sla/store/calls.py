"""Storage of CDR legs and calls: the one write path shared by the daemon (AMI ``Cdr`` events) and
``cdr import`` (Master.csv).

:func:`store_legs` runs inside the caller's transaction: it serialises writers per server with a
transaction-scoped advisory lock, inserts the legs idempotently (``ON CONFLICT (server, fingerprint)
DO NOTHING``), then recomputes every call that gained a leg from all of its legs and moves the
per-(tenant, day) rollup by the difference (SQL function ``calls_refresh``, sql/0020_calls.sql).
Caller and dialled numbers are normalised to E.164 here, with the catalogue's country code read in
the same transaction, because the attribution lookups compare E.164 strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from pbx_sla.domain.calls import caller_number, dialled_number
from pbx_sla.domain.cdr import CdrLeg, leg_from_data

KIND = "cdr_leg"
#: first key of the two-key advisory lock; the second is hashtext(server)
LOCK_NAMESPACE = int.from_bytes(hashlib.sha256(b"pbx-sla calls").digest()[:4], "big", signed=True)

_INSERT = """
INSERT INTO cdr_legs (server, fingerprint, call_key, source, accountcode, src, dst, dcontext, clid, channel,
                      dstchannel, lastapp, lastdata, start_at, answer_at, end_at, duration, billsec, disposition,
                      amaflags, uniqueid, userfield, peeraccount, linkedid, sequence, caller_e164, dialled_e164,
                      src_endpoint, dst_endpoint)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                     $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::int[], $18::int[],
                     $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::int[],
                     $26::text[], $27::text[], $28::text[], $29::text[])
ON CONFLICT (server, fingerprint) DO NOTHING
RETURNING server, call_key
"""


@dataclass(frozen=True)
class StoreResult:
    inserted: int  # legs new to the database
    present: int  # legs already stored (from either source)


async def store_legs(conn: asyncpg.Connection, legs: Sequence[CdrLeg], source: str) -> StoreResult:
    """Store legs and bring their calls and the usage rollup up to date; call inside a transaction."""
    if not legs:
        return StoreResult(0, 0)
    # the same leg twice in one batch: keep one (ON CONFLICT cannot affect a row twice per statement
    # for DO UPDATE; for DO NOTHING it is harmless, but counting stays honest this way)
    unique: dict[tuple[str, object], CdrLeg] = {}
    for leg in legs:
        unique.setdefault((leg.server, leg.fingerprint), leg)
    batch = list(unique.values())
    servers = sorted({leg.server for leg in batch})
    for server in servers:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, server)
    await conn.execute("INSERT INTO servers (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", servers)
    cc = await conn.fetchval("SELECT country_code FROM catalogue_settings")
    columns: list[list[Any]] = [[] for _ in range(29)]
    for leg in batch:
        values = (
            leg.server,
            leg.fingerprint,
            leg.call_key,
            source,
            leg.accountcode,
            leg.src,
            leg.dst,
            leg.dcontext,
            leg.clid,
            leg.channel,
            leg.dstchannel,
            leg.lastapp,
            leg.lastdata,
            leg.start,
            leg.answer,
            leg.end,
            leg.duration,
            leg.billsec,
            leg.disposition,
            leg.amaflags,
            leg.uniqueid,
            leg.userfield,
            leg.peeraccount,
            leg.linkedid,
            leg.sequence,
            caller_number(leg, cc),
            dialled_number(leg, cc),
            leg.src_endpoint,
            leg.dst_endpoint,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    rows = await conn.fetch(_INSERT, *columns)
    if rows:
        await conn.execute(
            "SELECT calls_refresh($1::text[], $2::text[])",
            [r["server"] for r in rows],
            [r["call_key"] for r in rows],
        )
    return StoreResult(len(rows), len(legs) - len(rows))


class CdrLegSink:
    """Sink for ``cdr_leg`` records (:func:`pbx_sla.domain.cdr.leg_to_data` dicts)."""

    kind = KIND

    def __init__(self, source: str = "ami") -> None:
        self.source = source

    async def write(self, conn: asyncpg.Connection, items: Sequence[Mapping[str, Any]]) -> None:
        await self.write_legs(conn, [leg_from_data(item) for item in items])

    async def write_legs(self, conn: asyncpg.Connection, legs: Sequence[CdrLeg]) -> StoreResult:
        return await store_legs(conn, legs, self.source)


async def reattribute_unattributed(conn: asyncpg.Connection) -> int:
    """Recompute the calls without a tenant (after a catalogue change); returns how many were examined."""
    async with conn.transaction():
        servers = await conn.fetch("SELECT DISTINCT server FROM calls WHERE tenant_id IS NULL ORDER BY server")
        for row in servers:
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, row["server"])
        return int(await conn.fetchval("SELECT calls_reattribute_unattributed()"))
