"""``support_call_results`` (sql/1602) holds exactly what the view ``support_call_outcomes`` gives, whatever
order and batches the runs and queue events arrive in (late events, replays, a second run, two channels of
one call, a run recorded under server 'unknown', deleted rows, a truncated table), and the per-tenant counts
the ``sla`` report reads (:func:`service_by_tenant`) are the domain's :func:`service_figures` over the view.
Before the table, the report derived every call from the view at report time (7 s for a month of 50,000
calls; docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from pbx_sla.domain.support import CallOutcome, service_figures
from pbx_sla.store.support import QueueEventSink, SupportCallSink, service_by_tenant

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
COLUMNS = "server, uniqueid, linkedid, decided_at, tenant_id, tier, action, reason, authorised, joined_at, " \
          "queue, outcome, wait_seconds, runs"  # fmt: skip


def traffic(rnd: random.Random, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` support calls: some with a second run (same channel, or a new channel of the same linkedid),
    some recorded under server 'unknown', some without a linkedid; queue events answered, abandoned, left,
    or none."""
    runs, events = [], []
    for i in range(n):
        at = START + timedelta(minutes=7 * i, seconds=rnd.randint(0, 59))
        server = "unknown" if rnd.random() < 0.1 else "pbx1"
        channels = [f"u{i}"] + ([f"u{i}b"] if rnd.random() < 0.15 else [])
        for c, uid in enumerate(channels):
            for r in range(2 if rnd.random() < 0.15 else 1):
                decided = at + timedelta(minutes=3 * c + r, seconds=rnd.randint(0, 20))
                runs.append({
                    "server": server, "uniqueid": uid, "linkedid": None if rnd.random() < 0.05 else f"u{i}",
                    "decided_at": decided.isoformat(), "tenant": rnd.choice(["acme", "globex", "nobody", None]),
                    "authorised": rnd.random() < 0.8, "tier": "t", "action": rnd.choice(["queue", "general", "closed"]),
                    "reason": "r", "queue": "q",
                })  # fmt: skip
                if rnd.random() < 0.15:
                    continue  # never queued
                join = decided + timedelta(seconds=1)
                events.append({"server": "pbx1", "uniqueid": uid, "event": "QueueCallerJoin",
                               "at": join.isoformat(), "queue": rnd.choice(["q", "general"])})  # fmt: skip
                end = rnd.random()
                wait = rnd.randint(1, 90)
                gone = join + timedelta(seconds=wait, milliseconds=rnd.randint(0, 999))
                if end < 0.6:
                    events.append({"server": "pbx1", "uniqueid": uid, "event": "AgentConnect", "at": gone.isoformat(),
                                   "hold_time": wait if rnd.random() < 0.8 else None})  # fmt: skip
                elif end < 0.8:
                    events.append({"server": "pbx1", "uniqueid": uid, "event": "QueueCallerAbandon",
                                   "at": gone.isoformat(), "hold_time": wait})  # fmt: skip
                elif end < 0.9:
                    events.append({"server": "pbx1", "uniqueid": uid, "event": "QueueCallerLeave",
                                   "at": gone.isoformat()})  # fmt: skip
    return runs, events


async def kept(db: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetch(f"SELECT {COLUMNS} FROM support_call_results ORDER BY server, uniqueid")]


async def derived(db: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetch(f"SELECT {COLUMNS} FROM support_call_outcomes ORDER BY server, uniqueid")]


async def test_the_table_is_the_view_whatever_order_records_arrive_in(db: asyncpg.Connection) -> None:
    rnd = random.Random(16)
    runs, events = traffic(rnd, 300)
    records = [(SupportCallSink(), r) for r in runs] + [(QueueEventSink(), e) for e in events]
    rnd.shuffle(records)  # events before their run, a call's second run before its first
    i = 0
    while i < len(records):
        size = rnd.randint(1, 40)
        batch = records[i : i + size]
        for sink in (SupportCallSink(), QueueEventSink()):
            items = [item for s, item in batch if type(s) is type(sink)]
            await sink.write(db, items)
            if rnd.random() < 0.2:
                await sink.write(db, items)  # a replay changes nothing
        i += size
    assert len(await kept(db)) > 250
    assert await kept(db) == await derived(db)
    # deleted runs and events (not something pbx-sla does, but any writer may)
    await db.execute("DELETE FROM queue_events WHERE uniqueid LIKE '%3' AND event <> 'QueueCallerJoin'")
    await db.execute("DELETE FROM support_calls WHERE uniqueid LIKE '%7'")
    assert await kept(db) == await derived(db)
    await db.execute("TRUNCATE queue_events")
    assert await kept(db) == await derived(db)
    assert {r[11] for r in await kept(db)} == {"not-queued"}
    await db.execute("TRUNCATE support_calls")
    assert await kept(db) == []


async def test_two_writers_at_once_see_each_others_records(db: asyncpg.Connection, db_dsn: str) -> None:
    """A run and its queue events written in two concurrent transactions: the later one to take the lock
    recomputes with both, so the call is not left 'not-queued'."""
    run = {"server": "pbx1", "uniqueid": "c1", "linkedid": "c1", "decided_at": START.isoformat(), "tenant": "acme",
           "authorised": True, "tier": "t", "action": "queue", "reason": "r", "queue": "q"}  # fmt: skip
    joined, answered = (START + timedelta(seconds=1)).isoformat(), (START + timedelta(seconds=9)).isoformat()
    events = [
        {"server": "pbx1", "uniqueid": "c1", "event": "QueueCallerJoin", "at": joined},
        {"server": "pbx1", "uniqueid": "c1", "event": "AgentConnect", "at": answered, "hold_time": 8},
    ]
    a, b = await asyncpg.connect(db_dsn), await asyncpg.connect(db_dsn)
    try:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        await SupportCallSink().write(a, [run])  # holds the lock until it commits
        writing = asyncio.create_task(QueueEventSink().write(b, events))  # waits for the lock
        done, _ = await asyncio.wait({writing}, timeout=0.5)
        assert not done  # b waits for a
        await ta.commit()
        await writing
        await tb.commit()
    finally:
        await a.close()
        await b.close()
    assert [(r[0], r[11], r[12]) for r in await kept(db)] == [("pbx1", "answered", 8.0)]
    assert await kept(db) == await derived(db)


async def test_service_counts_are_the_domains_figures(db: asyncpg.Connection) -> None:
    await db.execute(
        """INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420');
           INSERT INTO calendars (name, always, hours) VALUES ('always', true, '{}');
           INSERT INTO tiers (name, price_per_year, currency, max_calls_per_day, max_employees, calendar, queue,
                              priority, out_of_hours, answer_target_seconds)
           VALUES ('fast', 1, 'CZK', 1, 1, 'always', 'q', 1, 'closed', 20),
                  ('slow', 1, 'CZK', 1, 1, 'always', 'q', 1, 'closed', 60);
           INSERT INTO tenants (id, name, tier, employees, contract_start)
           VALUES ('acme', 'Acme', 'fast', 1, '2025-01-01'), ('globex', 'Globex', 'slow', 1, '2025-01-01')"""
    )
    runs, events = traffic(random.Random(7), 400)
    await SupportCallSink().write(db, runs)
    await QueueEventSink().write(db, events)
    start, end = START + timedelta(hours=5), START + timedelta(days=1)
    rows = await db.fetch(
        "SELECT tenant_id, outcome, wait_seconds FROM support_call_outcomes "
        "WHERE decided_at >= $1 AND decided_at < $2 AND tenant_id IS NOT NULL",
        start,
        end,
    )
    targets = {"acme": 20, "globex": 60, "nobody": None}  # nobody: not in the catalogue
    expected = {
        tenant: service_figures(
            [CallOutcome(r["outcome"], r["wait_seconds"]) for r in rows if r["tenant_id"] == tenant], target
        )
        for tenant, target in targets.items()
    }
    got = await service_by_tenant(db, start, end)
    assert got == expected
    assert got["acme"].answered_within_target > 0 and got["acme"].abandoned_after_target > 0
    assert got["nobody"].answered_within_target == 0 and got["nobody"].abandoned == got["nobody"].abandoned_after_target
    assert got["nobody"].abandoned > 0
    assert await service_by_tenant(db, start, end, "acme") == {"acme": expected["acme"]}


async def test_a_database_with_support_calls_before_1602_is_filled(empty_dsn: str) -> None:
    """Support calls stored before sql/1602: the migration's repeatable file fills the table once."""
    from pbx_sla.store import migrate

    schema = migrate.load()
    before = migrate.Schema([m for m in schema.migrations if m.version < 1602], schema.repeatables)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn, before)
        assert await conn.fetchval("SELECT to_regclass('support_call_results')") is None
        runs, events = traffic(random.Random(3), 60)
        await SupportCallSink().write(conn, runs)
        await QueueEventSink().write(conn, events)
        assert 1602 in [m.version for m in await migrate.upgrade(conn, schema)]
        assert len(await kept(conn)) == len(await derived(conn)) >= 55
        assert await kept(conn) == await derived(conn)
    finally:
        await conn.close()
