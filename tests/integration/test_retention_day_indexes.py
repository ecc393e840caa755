"""``retention apply`` finds the rows to pseudonymise by sql/1760's partial indexes (the rows not yet
pseudonymised, keyed by their UTC day): on PostgreSQL, with three months of legs and calls, the older ones
already pseudonymised by earlier runs and a cutoff in the middle of a UTC day, the statements it runs read
the indexes (EXPLAIN of the very statements, with their arguments), its dry-run counts are the exact counts
of unmarked rows before the instant, and its run marks exactly those (none of the same day after it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pbx_sla.config import Retention
from pbx_sla.store.retention import apply_retention

PER_MONTH = 20_000
MONTHS = ((2026, 1), (2026, 2), (2026, 3))
DONE_BEFORE = datetime(2026, 3, 10, tzinfo=UTC)  # earlier runs pseudonymised everything before it
NOW = datetime(2026, 3, 20, 6, tzinfo=UTC)
POLICY = Retention(legs_days=8, support_days=None, qos_days=None)
CUTOFF = NOW - timedelta(days=8)  # 2026-03-12 06:00 UTC: a quarter into a UTC day

LEGS = """
INSERT INTO cdr_legs (server, fingerprint, call_key, source, src, dst, channel, start_at, end_at, duration,
                      billsec, disposition, uniqueid, linkedid, caller_e164, dialled_e164, src_endpoint,
                      pseudonymised)
SELECT 'pbx1', md5($3 || i)::uuid, $3 || i, 'ami', '777' || i, '221000' || i % 10, 'PJSIP/a-' || i, s,
       s + interval '1 minute', 60, 50, 'ANSWERED', $3 || i, $3 || i, '+420777' || i, '+420221000' || i % 10,
       'a', s < $4
FROM generate_series(0, $5 - 1) i,
     LATERAL (SELECT $1::timestamptz + (i * extract(epoch FROM $2::timestamptz - $1) / $5) * interval '1 second'
              AS s) x
"""
CALLS = """
INSERT INTO calls (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                   caller_e164, dialled_e164, direction, pseudonymised)
SELECT 'pbx1', $3 || i, $3 || i, 1, s, s + interval '1 minute', s::date, 'ANSWERED', 50, '+420777' || i,
       '+420221000' || i % 10, 'inbound', s < $4
FROM generate_series(0, $5 - 1) i,
     LATERAL (SELECT $1::timestamptz + (i * extract(epoch FROM $2::timestamptz - $1) / $5) * interval '1 second'
              AS s) x
"""


async def test_retention_reads_the_unmarked_rows_by_day_index(db):
    await db.execute("INSERT INTO servers (name) VALUES ('pbx1') ON CONFLICT DO NOTHING")
    for y, m in MONTHS:
        lo = datetime(y, m, 1, tzinfo=UTC)
        hi = datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
        for table, sql in (("cdr_legs", LEGS), ("calls", CALLS)):
            await db.execute("SELECT history_partitions_ensure($1, $2, $2)", table, lo)
            await db.execute(sql, lo, hi, f"k{y}{m:02d}-", DONE_BEFORE, PER_MONTH)
    await db.execute("ANALYZE cdr_legs, calls")
    expected = {
        "cdr_legs": await db.fetchval(
            "SELECT count(*) FROM cdr_legs WHERE NOT pseudonymised AND start_at < $1", CUTOFF
        ),
        "calls": await db.fetchval("SELECT count(*) FROM calls WHERE NOT pseudonymised AND started_at < $1", CUTOFF),
    }
    same_day_after = await db.fetchval(
        "SELECT count(*) FROM cdr_legs WHERE start_at >= $1 AND start_at < $2",
        CUTOFF,
        datetime(2026, 3, 13, tzinfo=UTC),
    )
    assert expected["cdr_legs"] == expected["calls"] > 1000 and same_day_after > 300

    ran: list[tuple[str, tuple[Any, ...]]] = []
    db.add_query_logger(lambda q: ran.append((q.query, tuple(q.args or ()))))
    dry = {t["table"]: t for t in await apply_retention(db, POLICY, NOW, dry_run=True)}
    assert {t: dry[t]["rows"] for t in expected} == expected
    assert dry["cdr_legs"]["partitions_dropped"] == []  # no closed statement: nothing dropped

    for table in expected:
        [(sql, args)] = [(s, a) for s, a in ran if s.startswith(f"SELECT count(*) FROM {table} t")]
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN (COSTS OFF) " + sql, *args))
        day_indexes = [
            r["relid"]
            for r in await db.fetch("SELECT relid::text FROM pg_partition_tree($1::regclass)", f"{table}_retention_day")
        ]
        assert f"Seq Scan on {table}_y" not in plan, plan  # (the empty DEFAULT partition is scanned)
        for y, m in MONTHS:  # every month before the cutoff is read by its partition's day index
            assert any(f"using {i} on {table}_y{y}m{m:02d}" in plan for i in day_indexes), plan

    await apply_retention(db, POLICY, NOW)
    for table, column in (("cdr_legs", "start_at"), ("calls", "started_at")):
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE NOT pseudonymised AND {column} < $1", CUTOFF) == 0
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE pseudonymised AND {column} >= $1", CUTOFF) == 0
    assert await db.fetchval("SELECT count(*) FROM cdr_legs WHERE caller_e164 LIKE 'erased:%'") == expected["cdr_legs"]
