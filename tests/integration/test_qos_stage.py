"""The ``qos_leg`` sink's staging table, made once per connection of the durable writer (issue 14: it was made
and truncated per batch), and ``qos_legs_store_stage``: every leg lands once across batches, transactions,
reconnects, a stage dropped behind the sink's back and connections killed mid-batch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from polling import eventually

from pbx_sla.pipeline import Record
from pbx_sla.store import qos
from pbx_sla.store.qos import QosLegSink
from pbx_sla.store.writer import DurableWriter

T0 = datetime(2026, 11, 3, 9, tzinfo=UTC)


def leg(n: int) -> dict:
    """A ``qos_leg`` record's data as the spool gives it back (``at`` as text)."""
    return {
        "server": "pbx1", "uniqueid": f"1700000000.{n}", "linkedid": f"1700000000.{n - n % 2}",
        "channel": f"PJSIP/trunk-a-{n:08x}", "endpoint": "trunk-a", "at": (T0 + timedelta(seconds=n)).isoformat(),
        "codec": "ulaw", "received": 3000 - n % 7, "lost": n % 7, "sent": 3000, "jitter_ms": 0.5,
        "jitter_max_ms": 6.75, "jitter_avg_ms": 0.8, "far_lost": 0, "far_jitter_ms": 1.0, "rtt_ms": None,
        "rtt_max_ms": None, "asterisk_mes": 86.0,
    }  # fmt: skip


@pytest.fixture
async def counted(db, monkeypatch: pytest.MonkeyPatch):
    """The stage statement counts its runs in the sequence ``stage_made`` (outside every transaction's reach)."""
    await db.execute("CREATE SEQUENCE stage_made")
    monkeypatch.setattr(qos, "_STAGE", qos._STAGE + ";\nSELECT nextval('stage_made')")

    async def made() -> int:
        return int(await db.fetchval("SELECT last_value - 1 + (CASE WHEN is_called THEN 1 ELSE 0 END) FROM stage_made"))

    return made


async def stored(db: asyncpg.Connection) -> tuple[int, int, int]:
    row = await db.fetchrow(
        "SELECT count(*), count(DISTINCT uniqueid), count(*) FILTER (WHERE mos IS NULL OR call_tenant_known) "
        "FROM qos_legs"
    )
    return row[0], row[1], row[2]


async def test_writer_makes_the_stage_once_per_connection(db, db_dsn: str, counted, tmp_path: Path) -> None:
    writer = DurableWriter(db_dsn, [QosLegSink()], tmp_path / "spool", batch_size=50, flush_interval=0.01, pool_size=1)
    writer.start()
    for n in range(600):
        writer.submit(Record("qos_leg", leg(n)))
        if n % 40 == 0:
            await asyncio.sleep(0.02)  # several chunks, each a transaction or more
    await writer.close(30)
    assert await stored(db) == (600, 600, 0)  # every leg with its MOS; its call not stored (yet)
    assert await counted() == 1
    # the same legs again (a replay): nothing twice
    again = DurableWriter(db_dsn, [QosLegSink()], tmp_path / "spool", batch_size=50, flush_interval=0.01)
    again.start()
    for n in range(600):
        again.submit(Record("qos_leg", leg(n)))
    await again.close(30)
    assert await stored(db) == (600, 600, 0)


async def test_a_lost_connection_and_a_dropped_stage_lose_nothing(db, db_dsn: str, counted, tmp_path: Path) -> None:
    writer = DurableWriter(
        db_dsn, [QosLegSink()], tmp_path / "spool", batch_size=50, flush_interval=0.01, max_backoff=0.2, pool_size=1
    )
    writer.start()
    for n in range(200):
        writer.submit(Record("qos_leg", leg(n)))
    await eventually(lambda: writer.written == 200, timeout=10)
    assert await counted() == 1
    # the writer's connection is killed: the pool connects again, and the stage is made on the new session
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip
    for n in range(200, 400):
        writer.submit(Record("qos_leg", leg(n)))
    await eventually(lambda: writer.written >= 400, timeout=20)
    assert await counted() == 2
    # the stage vanishes behind the sink's back (DISCARD TEMP): that write fails, its retry makes it again
    assert writer._pool is not None
    async with writer._pool.acquire() as conn:
        await conn.execute("DISCARD TEMP")
    for n in range(400, 600):
        writer.submit(Record("qos_leg", leg(n)))
    await writer.close(30)
    assert await stored(db) == (600, 600, 0)
    assert await counted() == 3
    assert writer.dead_letters == 0


async def test_connections_killed_mid_batch_lose_nothing(db, db_dsn: str, tmp_path: Path) -> None:
    writer = DurableWriter(
        db_dsn, [QosLegSink()], tmp_path / "spool", batch_size=100, flush_interval=0.01, max_backoff=0.2
    )
    writer.start()
    total = 3000

    async def produce() -> None:
        for n in range(total):
            writer.submit(Record("qos_leg", leg(n)))
            if n % 50 == 0:
                await asyncio.sleep(0.005)

    producer = asyncio.create_task(produce())
    for _ in range(5):  # kill the writer's sessions while batches are on their way
        await asyncio.sleep(0.05)
        await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip
    await producer
    await writer.close(60)
    assert await stored(db) == (total, total, 0)
    assert writer.backlog.total == 0 and writer.dead_letters == 0


async def test_two_batches_in_one_transaction_and_a_prepared_connection(db) -> None:
    sink = QosLegSink()
    async with db.transaction():
        await sink.write(db, [leg(n) for n in range(10)])
        await sink.write(db, [leg(n) for n in range(5, 20)])  # the stage was emptied by the first batch
    assert await stored(db) == (20, 20, 0)
    await sink.prepare_connection(db)  # outside a transaction: the stage stays for the session
    await sink.write(db, [leg(n) for n in range(20, 30)])
    async with db.transaction():
        await sink.write(db, [leg(n) for n in range(30, 40)])
        assert await db.fetchval("SELECT count(*) FROM qos_legs_stage") == 0
    assert await stored(db) == (40, 40, 0)
    assert await db.fetchval("SELECT count(*) FROM qos_legs WHERE mos IS NULL") == 0
