"""DurableWriter against a real, private PostgreSQL that is stopped and started again while records pour in:
every record lands exactly once, a refused record goes to dead letters, nothing waits for the database."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import asyncpg
from polling import eventually

from pbx_sla.log import setup_logging
from pbx_sla.pipeline import Record
from pbx_sla.store.writer import DEAD_LETTER, DurableWriter


class NumbersSink:
    """Idempotent: a replayed batch inserts nothing twice."""

    kind = "number"

    async def write(self, conn: asyncpg.Connection, items) -> None:
        await conn.execute(
            "INSERT INTO numbers (n, label) SELECT * FROM unnest($1::int[], $2::text[]) ON CONFLICT (n) DO NOTHING",
            [i["n"] for i in items],
            [i["label"] for i in items],
        )


async def test_every_record_lands_once_across_a_database_restart(private_pg, tmp_path: Path) -> None:
    setup_logging("info", json=True, stream=io.StringIO())
    dsn = private_pg.dsn
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE numbers (n int PRIMARY KEY CHECK (n >= 0), label text NOT NULL)")
    await conn.close()

    spool = tmp_path / "spool"
    writer = DurableWriter(
        dsn, [NumbersSink()], spool, batch_size=500, flush_interval=0.05, max_memory=4000, max_backoff=0.5
    )
    writer.start()
    total = 40_000
    submit_times: list[float] = []

    async def produce() -> None:
        loop = asyncio.get_running_loop()
        for n in range(total):
            t0 = loop.time()
            writer.submit(Record("number", {"n": n, "label": f"r{n}"}))
            submit_times.append(loop.time() - t0)
            if n == 1234:
                writer.submit(Record("number", {"n": -1, "label": "refused by CHECK"}))
            if n % 200 == 0:
                await asyncio.sleep(0.01)

    producer = asyncio.create_task(produce())
    await eventually(lambda: writer.written > 0)  # records flowing before the outage
    await asyncio.to_thread(private_pg.stop)
    # the outage outlasts max_memory: records go to disk while the database is away
    await eventually(lambda: writer.db_ok is False and writer.backlog.spooled > 0, timeout=30)
    spilled_while_down = writer.backlog.spooled
    await asyncio.to_thread(private_pg.start)
    await producer
    await writer.close(60)

    conn = await asyncpg.connect(dsn)
    try:
        count, distinct, lo, hi = await conn.fetchrow("SELECT count(*), count(DISTINCT n), min(n), max(n) FROM numbers")
    finally:
        await conn.close()
    assert (count, distinct, lo, hi) == (total, total, 0, total - 1)
    assert spilled_while_down > 0  # the outage outlasted max_memory: records went to disk
    assert writer.backlog.total == 0
    assert sorted(p.name for p in spool.iterdir()) == [DEAD_LETTER]  # segments replayed and removed
    dead = [json.loads(line) for line in (spool / DEAD_LETTER).read_text().splitlines()]
    assert [d["data"]["n"] for d in dead] == [-1]
    # submit never waits on the database (a 2-core shared machine: judge the 99.9th percentile, not GC pauses)
    assert sorted(submit_times)[int(0.999 * len(submit_times))] < 0.005


async def test_close_while_the_database_is_down_spools_and_the_next_writer_delivers(private_pg, tmp_path) -> None:
    setup_logging("info", json=True, stream=io.StringIO())
    dsn = private_pg.dsn
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE numbers (n int PRIMARY KEY CHECK (n >= 0), label text NOT NULL)")
    await conn.close()
    await asyncio.to_thread(private_pg.stop)

    spool = tmp_path / "spool"
    first = DurableWriter(dsn, [NumbersSink()], spool, flush_interval=0.05, max_backoff=0.2)
    first.start()
    for n in range(500):
        first.submit(Record("number", {"n": n, "label": "x"}))
    await first.close(1.0)  # SIGTERM with the database away: nothing lost, all on disk
    assert first.backlog == (0, 500)

    await asyncio.to_thread(private_pg.start)
    second = DurableWriter(dsn, [NumbersSink()], spool, flush_interval=0.05)
    second.start()
    await second.close(30)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(DISTINCT n) FROM numbers") == 500
    finally:
        await conn.close()
