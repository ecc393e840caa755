"""Benchmark: reports over a long partitioned history, and retention dropping a month (issue 17).

    .venv/bin/python bench/partitions.py [--calls 10000000,30000000] [--retention-legs 5000000]
                                         [--tenants 500] [--trunks 50] [--runs 5] [--dsn ADMIN_DSN]
                                         [--month-calls N] [--load-only | --keep | --reuse DB1,DB2]

For each size in ``--calls`` (one database each, created, migrated to the current schema and DROPPED at the
end; sizes run one after the other in the same run), the history is 24 UTC months 2024-12 .. 2026-11:

* ``calls`` and ``cdr_legs`` (one leg per call: the columns the reports and the leg writer read, short
  texts elsewhere), the size spread evenly over the months; ``usage_daily`` built from the calls;
* ``support_calls``: one per 200 calls, each with a QueueCallerJoin and an AgentConnect (80 %) or a
  QueueCallerAbandon; ``qos_legs``: one per 10 calls, on a catalogue trunk, joined to its call;
* ``--trunks`` trunks on 2 servers, a daemon session per day and a weekly flap (bench/trunks_report.py).

Since sql/1710 the QoS legs are loaded with their MOS and their call's tenant, as the leg writer stores them.
A kept database loaded before (``--reuse``) gets them for the measured month's two UTC months
(``pbx_sla.store.qos.fill_legs``, timed); its other legs keep none (the reports compute what a leg lacks).
Before measuring, a catalogue document is applied once (bench/web.py's: tiers, the tenants with their trunks
and a requester each, support settings), so ``sla`` computes every tenant's voice-quality figures as it
does in production (without a document it computes none); the support calls are not given the requesters
(bench/web.py does that; here it would recompute every support call's outcome), so few support requests.

``--month-calls N``: the measured month (2026-11) and the month before it hold N calls each (4,166,667 is a
month of 100 M over 24 months) and the rest of the size is spread over the other 22 months, so the month's
cost can be compared over histories of different sizes. ``--load-only`` loads and keeps the databases
(names printed), ``--reuse`` measures kept databases (one per size, migrated to the code measured; the
oldest month reloaded when an earlier run's retention dropped it), ``--keep`` keeps them after measuring:
drop them by hand (``DROP DATABASE``). ``--month-calls`` takes one value per size (comma-separated, empty for an
even spread). A size is refused before its load when it would leave less than ``--min-free-gb`` (default 15,
at least 8) free on the disk at ``BYTES_PER_CALL``, and a load stops before a month that would.

Runs 1 and 2 of bench/results/partitions.md at commit 421fd9d (before sql/1602's support_call_results
table); since then the loader fills that table after the load from the view, in one statement (run 3).

Set-based: each month's rows are inserted with ``INSERT ... SELECT generate_series`` into a table made
``LIKE`` the partition, without indexes, then ATTACHed (which builds its keys and indexes once, after the
load). The catalogue is written into its tables (bench/cdr.py ``seed``), without a catalogue revision, so
``sla`` computes no support-request reaction figures (the part that reads all legs before ``now``).

Measured, median and worst of ``--runs`` (each after one warm-up run), for 2026-11 (Europe/Prague):
``usage_rows`` (``pbx-sla usage``), ``sla_report`` (``pbx-sla sla``), ``trunk_availability``
(``pbx-sla trunks``), and the month partitions each report's statements read (EXPLAIN ANALYZE of every
statement it ran). Then retention:
the month 2024-12 holds ``--retention-legs`` extra legs and calls, its months (2024-12, 2025-01 in
Prague) have closed statements; ``apply_retention`` with ``legs_days`` past it drops its partitions; timed,
with the rows it dropped. Sizes on disk per table are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from zoneinfo import ZoneInfo  # noqa: E402

from cdr import rollup_usage_daily, seed, with_db  # noqa: E402
from trunks_report import generate  # noqa: E402
from web import catalogue as web_catalogue  # noqa: E402

from pbx_sla.config import Retention  # noqa: E402
from pbx_sla.reports import sla as sla_report  # noqa: E402
from pbx_sla.reports import usage as usage_report  # noqa: E402
from pbx_sla.reports.period import month_period  # noqa: E402
from pbx_sla.reports.qos import tenant_figures  # noqa: E402
from pbx_sla.reports.trunks import trunk_availability  # noqa: E402
from pbx_sla.store import migrate  # noqa: E402
from pbx_sla.store.catalogue import apply_catalogue, load_catalogue  # noqa: E402
from pbx_sla.store.qos import fill_legs  # noqa: E402
from pbx_sla.store.retention import apply_retention  # noqa: E402

PRAGUE = ZoneInfo("Europe/Prague")
MONTHS = [(2024 + (11 + i) // 12, (11 + i) % 12 + 1) for i in range(24)]  # 2024-12 .. 2026-11
MEASURED = (2026, 11)
BYTES_PER_CALL = 750  # the five history tables with their indexes, per call (bench/results/partitions.md run 9)
MIN_FREE_GB = 15.0  # what the shared disk keeps free by default (--min-free-gb, never below 8)

CALLS = """
INSERT INTO {part} (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec, caller_e164,
                    dialled_e164, direction, trunk, tenant_id, attributed_by, leg_fingerprints)
SELECT 'pbx1', k, k, 1, s, s + interval '2 minutes', (s AT TIME ZONE 'Europe/Prague')::date,
       (ARRAY['ANSWERED','ANSWERED','ANSWERED','BUSY','NO ANSWER','FAILED'])[1 + i % 6],
       CASE WHEN i % 6 < 3 THEN i % 300 ELSE 0 END, '+420777' || lpad((i % 1000000)::text, 6, '0'),
       '+420221' || lpad((i % 500)::text, 6, '0'), 'inbound', 'trunk-' || lpad((i % $4)::text, 3, '0'),
       CASE WHEN i % 20 = 0 THEN NULL ELSE 't' || (i * 7919 % $3) END,
       CASE WHEN i % 20 = 0 THEN NULL ELSE 'accountcode' END, ARRAY[f]
FROM generate_series($1::bigint, $2::bigint) i,
     LATERAL (SELECT 'c' || i AS k, md5(i::text)::uuid AS f,
                     $5::timestamptz + ((i - $1) * $6::double precision / ($2 - $1 + 1)) * interval '1 second' AS s) x
"""
LEGS = """
INSERT INTO {part} (server, fingerprint, call_key, source, accountcode, src, dst, dcontext, clid, channel, dstchannel,
                    lastapp, lastdata, start_at, answer_at, end_at, duration, billsec, disposition, uniqueid,
                    linkedid, sequence, caller_e164, dialled_e164, src_endpoint, dst_endpoint)
SELECT 'pbx1', md5(i::text)::uuid, 'c' || i, 'ami', CASE WHEN i % 20 = 0 THEN '' ELSE 't' || (i * 7919 % $3) END,
       '777' || lpad((i % 1000000)::text, 6, '0'), '221' || lpad((i % 500)::text, 6, '0'), 'from-trunk',
       '"Caller" <777' || lpad((i % 1000000)::text, 6, '0') || '>', 'PJSIP/trunk-' || lpad((i % $4)::text, 3, '0')
       || '-' || i, 'PJSIP/agent-' || (i % 40) || '-' || i, 'Dial', 'PJSIP/agent,30', s, s + interval '5 seconds',
       s + interval '2 minutes', 120, CASE WHEN i % 6 < 3 THEN i % 300 ELSE 0 END,
       (ARRAY['ANSWERED','ANSWERED','ANSWERED','BUSY','NO ANSWER','FAILED'])[1 + i % 6], 'c' || i, 'c' || i, 1,
       '+420777' || lpad((i % 1000000)::text, 6, '0'), '+420221' || lpad((i % 500)::text, 6, '0'),
       'trunk-' || lpad((i % $4)::text, 3, '0'), 'agent-' || (i % 40)
FROM generate_series($1::bigint, $2::bigint) i,
     LATERAL (SELECT $5::timestamptz + ((i - $1) * $6::double precision / ($2 - $1 + 1)) * interval '1 second' AS s) x
"""
SUPPORT = """
INSERT INTO {part} (server, uniqueid, linkedid, decided_at, tenant_id, authorised, in_hours, tier, action, reason,
                    queue)
SELECT 'pbx1', 'c' || i, 'c' || i, s, 't' || (i * 7919 % $3), true, true, 't1', 'queue', 'authorised-number', 'q'
FROM generate_series($1::bigint, $2::bigint, 200) i,
     LATERAL (SELECT $5::timestamptz + ((i - $1) * $6::double precision / ($2 - $1 + 1)) * interval '1 second'
                     + $4::int * interval '0 s' AS s) x
"""
QUEUE = """
INSERT INTO {part} (server, uniqueid, linkedid, event, at, queue, hold_time)
SELECT 'pbx1', uniqueid, linkedid, 'QueueCallerJoin', decided_at + interval '1 second', 'q', NULL FROM {support}
UNION ALL
SELECT 'pbx1', uniqueid, linkedid,
       CASE WHEN hashtext(uniqueid) % 5 = 0 THEN 'QueueCallerAbandon' ELSE 'AgentConnect' END,
       decided_at + (6 + abs(hashtext(uniqueid)) % 55) * interval '1 second', 'q', 5 + abs(hashtext(uniqueid)) % 55
FROM {support}
"""
QOS = """
INSERT INTO {part} (server, uniqueid, linkedid, channel, endpoint, at, codec, received, lost, jitter_ms,
                    jitter_max_ms, rtt_ms, mos, call_tenant_id, call_tenant_known)
SELECT 'pbx1', 'c' || i, 'c' || i, 'PJSIP/trunk-' || lpad((i % $4)::text, 3, '0') || '-' || i,
       'trunk-' || lpad((i % $4)::text, 3, '0'), s + interval '2 minutes', 'ulaw', 6000, i % 40, 3.5, 9.0, 35.0,
       qos_leg_mos(6000, i % 40, 3.5, 35.0, 'ulaw'), CASE WHEN i % 20 = 0 THEN NULL ELSE 't' || (i * 7919 % $3) END,
       true
FROM generate_series($1::bigint, $2::bigint, 10) i,
     LATERAL (SELECT $5::timestamptz + ((i - $1) * $6::double precision / ($2 - $1 + 1)) * interval '1 second'
                     + $3::int * interval '0 s' AS s) x
"""


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    nxt = (year + month // 12, month % 12 + 1)
    return datetime(year, month, 1, tzinfo=UTC), datetime(*nxt, 1, tzinfo=UTC)


async def load_month(conn: asyncpg.Connection, year: int, month: int, first: int, last: int, tenants: int,
                     trunks: int) -> None:  # fmt: skip
    """Calls ``first`` .. ``last`` spread over the UTC month, with their legs, support calls, queue events and
    QoS legs: each table's month loaded unindexed, then attached (keys and indexes built once)."""
    lo, hi = month_bounds(year, month)
    span = (hi - lo).total_seconds() - 300  # queue events and QoS legs come up to 2 minutes later
    suffix = f"y{year:04d}m{month:02d}"
    staged: dict[str, str] = {}
    for parent, sql in (("calls", CALLS), ("cdr_legs", LEGS), ("support_calls", SUPPORT), ("qos_legs", QOS),
                        ("queue_events", QUEUE)):  # fmt: skip
        part = f"{parent}_{suffix}"
        await conn.execute(f"DROP TABLE IF EXISTS {part}")
        await conn.execute(f"CREATE TABLE {part} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        if parent == "queue_events":
            await conn.execute(sql.format(part=part, support=staged["support_calls"]))
        else:
            await conn.execute(sql.format(part=part), first, last, tenants, trunks, lo, span)
        staged[parent] = part
    for parent, part in staged.items():
        await conn.execute(f"ALTER TABLE {parent} ATTACH PARTITION {part} FOR VALUES FROM ('{lo}') TO ('{hi}')")


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float]:
    await fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


PARTITIONED = ("calls", "cdr_legs", "support_calls", "queue_events", "qos_legs")
READERS = (*PARTITIONED, "qos_leg_figures")  # a view on qos_legs (sql/repeatable/qos_leg_figures.sql)


async def partitions_read(conn: asyncpg.Connection, fn: Callable[[], Awaitable[Any]]) -> list[str]:
    """The month partitions the report's statements read: every statement ``fn`` runs that names a
    partitioned table, EXPLAIN ANALYZEd with its arguments; the partitions of the plan nodes that ran
    (run-time pruning leaves the others "never executed")."""
    ran: list[tuple[str, tuple[Any, ...]]] = []

    def log(q: Any) -> None:
        ran.append((q.query, tuple(q.args or ())))

    conn.add_query_logger(log)
    try:
        await fn()
    finally:
        conn.remove_query_logger(log)
    parts: set[str] = set()
    for sql, args in ran:
        words = sql.replace("(", " ").replace(",", " ").split()
        if sql.lstrip().upper().startswith(("SELECT", "WITH")) and any(t in words for t in READERS):
            plan = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + sql, *args)
            for line in (r[0] for r in plan):
                if "never executed" not in line:
                    parts |= {w for w in line.split() if "_y20" in w and not w.endswith(("_idx", "_pkey"))}
    return sorted(parts)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def month_sizes(calls: int, month_calls: int | None) -> list[int]:
    """Calls per month of ``MONTHS``: ``calls`` spread evenly, or with ``month_calls`` in the measured month and
    the month before it (the partitions the measured Prague month and its QoS lookups read), the rest of
    ``calls`` spread evenly over the other 22 months."""
    if month_calls is None:
        return [calls // len(MONTHS)] * len(MONTHS)
    rest = (calls - 2 * month_calls) // (len(MONTHS) - 2)
    if rest < 1:
        raise SystemExit(f"--calls {calls} is too small for two months of --month-calls {month_calls}")
    return [rest] * (len(MONTHS) - 2) + [month_calls, month_calls]


def free_gb() -> float:
    return shutil.disk_usage("/").free / 1e9


def check_disk(need_bytes: float, min_free_gb: float, what: str = "the next month") -> None:
    """Stop before a load would leave less than ``min_free_gb`` on the shared disk."""
    free = free_gb()
    if free - need_bytes / 1e9 < min_free_gb:
        raise SystemExit(f"disk: {free:.1f} GB free, {what} needs ~{need_bytes / 1e9:.1f} GB: stopped to keep "
                         f"{min_free_gb:g} GB free")  # fmt: skip


async def load_history(conn: asyncpg.Connection, sizes: list[int], args: argparse.Namespace) -> float:
    """Catalogue, trunks and the 24 months of history (``sizes[n]`` calls in month n, plus ``--retention-legs``
    in the first), the rollup and support outcomes, VACUUM ANALYZE; returns the seconds it took."""
    await seed(conn, args.tenants)
    await conn.execute("INSERT INTO servers (name) VALUES ('pbx1'), ('pbx2') ON CONFLICT DO NOTHING")
    names, sessions, obs = generate(args.trunks, 2, 7 * 24 * 60, month_bounds(*MONTHS[0])[0],
                                    month_bounds(*MONTHS[-1])[1])  # fmt: skip
    await conn.executemany(
        "INSERT INTO trunks (server, name, availability_target, in_catalogue) VALUES ($1, $2, 0.999, true)", names
    )
    await conn.copy_records_to_table("ami_sessions", records=sessions, columns=[
        "server", "session_id", "login_at", "resynced_at", "last_seen_at", "lost_at"])  # fmt: skip
    await conn.copy_records_to_table("trunk_observations", records=obs, columns=[
        "server", "trunk", "at", "source", "key", "status", "rtt_usec", "polled"])  # fmt: skip
    await conn.executemany(
        "INSERT INTO tenant_trunks (tenant_id, server, trunk) VALUES ($1, $2, $3)",
        [(f"t{i}", *names[i % len(names)]) for i in range(args.tenants)],
    )
    t0 = time.perf_counter()
    for n, (y, m) in enumerate(MONTHS):
        first, last = month_range(sizes, n, args.retention_legs)
        check_disk((last - first + 1) * BYTES_PER_CALL * 1.3, args.min_free_gb)
        await load_month(conn, y, m, first, last, args.tenants, args.trunks)
        print(f"  {y}-{m:02d} loaded ({time.perf_counter() - t0:.0f} s, {free_gb():.1f} GB free, {uptime()})",
              flush=True)  # fmt: skip
    t = time.perf_counter()
    await rollup_usage_daily(conn)
    print(f"  usage_daily built ({time.perf_counter() - t:.0f} s)", flush=True)
    if await conn.fetchval("SELECT to_regclass('support_call_results') IS NOT NULL"):
        # sql/1602 keeps the support outcomes as a table by triggers on the parents: the partitions were
        # attached, not inserted through them, so the table is filled here
        # in one statement from the view (what the refresh function gives per call, for every call at once:
        # the function's per-call statements cost ~12 ms a call over 28 partitions, this ~0.7 ms)
        await conn.execute(
            """INSERT INTO support_call_results (server, call_key, uniqueid, linkedid, decided_at, tenant_id, tier,
                                                 action, reason, authorised, joined_at, queue, outcome, wait_seconds,
                                                 runs)
               SELECT o.server, COALESCE(o.linkedid, o.uniqueid), o.uniqueid, o.linkedid, o.decided_at, o.tenant_id,
                      o.tier, o.action, o.reason, o.authorised, o.joined_at, o.queue, o.outcome, o.wait_seconds,
                      o.runs
               FROM support_call_outcomes o"""
        )
    t = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE ({time.perf_counter() - t:.0f} s)", flush=True)
    return time.perf_counter() - t0


def month_range(sizes: list[int], n: int, retention_legs: int) -> tuple[int, int]:
    """The first and last call number of month ``n`` (the first month holds ``retention_legs`` more)."""
    first = sum(sizes[:n]) + 1 + (0 if n == 0 else retention_legs)
    return first, first + sizes[n] + (retention_legs if n == 0 else 0) - 1


async def reload_oldest(conn: asyncpg.Connection, sizes: list[int], args: argparse.Namespace) -> float:
    """A kept database whose oldest month retention dropped: load that month again (its calls, legs, support
    calls, queue events, QoS legs), so retention can be measured again (its statements stay closed)."""
    t0 = time.perf_counter()
    first, last = month_range(sizes, 0, args.retention_legs)
    check_disk((last - first + 1) * BYTES_PER_CALL * 1.3, args.min_free_gb)
    await load_month(conn, *MONTHS[0], first, last, args.tenants, args.trunks)
    for part in ("calls", "cdr_legs", "support_calls", "queue_events", "qos_legs"):
        await conn.execute(f"VACUUM ANALYZE {part}_y2024m12")
    await conn.execute(  # their support outcomes, as the load made them (retention deleted them)
        """INSERT INTO support_call_results (server, call_key, uniqueid, linkedid, decided_at, tenant_id, tier, action,
                                             reason, authorised, joined_at, queue, outcome, wait_seconds, runs)
           SELECT o.server, COALESCE(o.linkedid, o.uniqueid), o.uniqueid, o.linkedid, o.decided_at, o.tenant_id,
                  o.tier, o.action, o.reason, o.authorised, o.joined_at, o.queue, o.outcome, o.wait_seconds, o.runs
           FROM support_call_outcomes o WHERE o.decided_at < $1
           ON CONFLICT DO NOTHING""",
        month_bounds(*MONTHS[1])[0],
    )
    # the earlier drop's record goes with the rows back (a bench database only: history_dropped is the audit)
    await conn.execute("DELETE FROM history_dropped WHERE partition LIKE '%\\_y2024m12'")
    return time.perf_counter() - t0


async def one_size(admin_dsn: str, calls: int, month_calls: int | None, args: argparse.Namespace, out: list[str],
                   reuse: str | None = None) -> str:  # fmt: skip
    """Load (or, with ``reuse``, take the kept database of that name), measure; returns the database's name."""
    name = reuse or f"bench_part_{uuid.uuid4().hex[:8]}"
    sizes = month_sizes(calls, month_calls)
    if reuse is None:  # the whole size before starting, not an hour into its load
        check_disk((calls + args.retention_legs) * BYTES_PER_CALL * 1.05, args.min_free_gb,
                   f"{calls:,} calls (+{args.retention_legs:,}) at ~{BYTES_PER_CALL} bytes a call")  # fmt: skip
    admin = await asyncpg.connect(admin_dsn)
    if reuse is None:
        await admin.execute(f'CREATE DATABASE "{name}"')
        print(f"database {name} ({calls:,} calls, {sizes[-1]:,} in the measured month)", flush=True)
    keep = args.keep or args.load_only or reuse is not None
    try:
        conn = await asyncpg.connect(with_db(admin_dsn, name), server_settings={"jit": "off"})
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await migrate.upgrade(conn)  # a kept database gets the migrations and views of the code measured
        if reuse is None:
            load_s = await load_history(conn, sizes, args)
            load_text = f"load (set-based, indexes built at attach): {load_s:.0f} s"
        elif await conn.fetchval("SELECT to_regclass('cdr_legs_y2024m12') IS NULL"):
            reload_s = await reload_oldest(conn, sizes, args)
            load_text = f"kept database {name}; its oldest month reloaded in {reload_s:.0f} s"
        else:
            load_text = f"kept database {name}"
        if args.load_only:
            out.append(f"\n{name}: {calls:,} calls ({sizes[-1]:,} in the measured month), {load_text}")
        else:
            await measure(conn, args, out, load_text)
        await conn.close()
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return name


async def measure(conn: asyncpg.Connection, args: argparse.Namespace, out: list[str], load_text: str) -> None:
    """Sizes, the month's reports (median and worst of ``--runs``), retention of the oldest month."""
    total = await conn.fetchval("SELECT count(*) FROM calls")
    legs = await conn.fetchval("SELECT count(*) FROM cdr_legs")
    month = await conn.fetchval("SELECT count(*) FROM calls_y2026m11")
    out.append(
        f"\n### {total:,} calls, {legs:,} legs over {len(MONTHS)} monthly partitions, {month:,} calls in the "
        f"measured UTC month ({uptime()})\n"
    )
    out.append(f"{load_text}\n")
    tables = await conn.fetch(
        """SELECT parent, pg_size_pretty(sum(pg_total_relation_size(relid))) AS size,
                  sum(pg_total_relation_size(relid)) AS bytes
           FROM (SELECT p AS parent, (pg_partition_tree(p)).relid
                 FROM unnest(ARRAY['cdr_legs','calls','support_calls','queue_events','qos_legs']) p) t
           GROUP BY parent ORDER BY parent"""
    )
    out.append("sizes: " + ", ".join(f"{r['parent']} {r['size']}" for r in tables))
    out.append(f"; all five per call: {sum(r['bytes'] for r in tables) / total:.0f} bytes\n")
    parts = await conn.fetch(  # each table's heap (with TOAST) and each index, summed over its partitions
        """SELECT t.p AS parent, 'heap' AS rel,
                  sum(pg_total_relation_size(x.relid) - pg_indexes_size(x.relid)) AS bytes
           FROM unnest(ARRAY['calls','cdr_legs','qos_legs','support_calls','queue_events']) t(p),
                pg_partition_tree(t.p) x GROUP BY 1
           UNION ALL
           SELECT t.p, i.indexrelid::regclass::text, sum(pg_relation_size(x.relid))
           FROM unnest(ARRAY['calls','cdr_legs','qos_legs','support_calls','queue_events']) t(p)
           JOIN pg_index i ON i.indrelid = t.p::regclass, pg_partition_tree(i.indexrelid) x GROUP BY 1, 2
           ORDER BY 1, 3 DESC"""
    )
    out.append("\nbytes per call (the table's size over the calls stored), heap and each index:\n")
    for parent in sorted({r["parent"] for r in parts}):
        rels = [r for r in parts if r["parent"] == parent]
        out.append(f"* {parent}: {sum(r['bytes'] for r in rels) / total:.1f} = "
                   + " + ".join(f"{r['rel']} {r['bytes'] / total:.1f}" for r in rels))  # fmt: skip
    out.append("")
    period = month_period(*MEASURED, PRAGUE)
    if await load_catalogue(conn) is None:
        t = time.perf_counter()
        names = [(r["server"], r["name"]) for r in await conn.fetch("SELECT server, name FROM trunks ORDER BY 1, 2")]
        await apply_catalogue(conn, web_catalogue(args.tenants, names), "bench/partitions.py")
        await conn.execute("ANALYZE tenants, tiers, trunks, tenant_trunks, tenant_accountcodes")
        out.append(f"catalogue document applied: {time.perf_counter() - t:.1f} s\n")
    lo, hi = month_bounds(2026, 10)[0], month_bounds(*MEASURED)[1]
    t = time.perf_counter()
    filled = await fill_legs(conn, lo, hi)
    await conn.execute("ANALYZE qos_legs")
    out.append(f"QoS legs of {lo:%Y-%m}..{MEASURED[0]}-{MEASURED[1]:02d} given their MOS and call's tenant "
               f"(stored before sql/1710): {filled:,} in {time.perf_counter() - t:.1f} s\n")  # fmt: skip
    print(out[-1], flush=True)
    catalogue = await load_catalogue(conn)
    out.append(
        "\n| report | median | worst | month partitions its statements read (EXPLAIN ANALYZE) |\n|---|---|---|---|"
    )
    checks: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("usage", lambda: usage_report.usage_rows(conn, period)),
        ("sla", lambda: sla_report.sla_report(conn, period)),
        ("sla (one tenant)", lambda: sla_report.sla_report(conn, period, "t7")),
        ("sla's voice quality per tenant (tenant_figures)", lambda: tenant_figures(conn, period, catalogue)),
        ("trunks", lambda: trunk_availability(conn, period)),
    ]
    for label, fn in checks:
        med, worst = await timed(fn, args.runs)
        parts = await partitions_read(conn, fn)
        out.append(f"| {label} | {med:.3f} s | {worst:.3f} s | {', '.join(parts) or '(none)'} |")
        print(out[-1], flush=True)
    # retention: the first month (2024-12, with the extra legs) past the age, its months closed
    for period_text in ("2024-12", "2025-01"):
        await conn.execute(  # closed once (statements are append-only): a kept database has them already
            """INSERT INTO statement_closes (period, code_version, tenants) SELECT $1, 'bench', 0
               WHERE NOT EXISTS (SELECT 1 FROM statement_closes WHERE period = $1)""",
            period_text,
        )
    dropped_legs = await conn.fetchval("SELECT count(*) FROM cdr_legs_y2024m12")
    now = datetime(2025, 1, 2, tzinfo=UTC)  # legs_days = 1: only 2024-12 is wholly past the age
    policy = Retention(legs_days=1, support_days=1, qos_days=1)
    t = time.perf_counter()
    await apply_retention(conn, policy, now, dry_run=True)
    out.append(f"\nretention apply --dry-run (counts the partitions' rows): {time.perf_counter() - t:.3f} s")
    t = time.perf_counter()
    report = await apply_retention(conn, policy, now)
    took = time.perf_counter() - t
    gone = {r["table"]: (r["partitions_dropped"], r["rows_dropped"], r["rows"]) for r in report}
    out.append(f"\nretention apply (2024-12 past the age; {dropped_legs:,} legs in its partition): {took:.3f} s; "
               f"per table (partitions dropped, rows in them, rows pseudonymised): {gone}\n")  # fmt: skip
    print(out[-1], flush=True)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--calls", default="10000000,30000000", help="sizes, comma-separated")
    p.add_argument("--retention-legs", type=int, default=5_000_000)
    p.add_argument("--tenants", type=int, default=500)
    p.add_argument("--trunks", type=int, default=50)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument(
        "--month-calls",
        default=None,
        help="calls in the measured month and the month before it (the rest spread over the others); "
        "comma-separated, one per --calls size, empty for an even spread (`--calls 10000000,75000000 "
        "--month-calls ,4166667`)",
    )
    p.add_argument(
        "--min-free-gb",
        type=float,
        default=MIN_FREE_GB,
        help=f"GB the load leaves free on the disk (default {MIN_FREE_GB:g}, at least 8)",
    )
    p.add_argument("--load-only", action="store_true", help="load and keep the databases, measure nothing")
    p.add_argument("--keep", action="store_true", help="keep the databases (names printed) for --reuse")
    p.add_argument(
        "--reuse",
        default=None,
        help="kept databases, comma-separated, one per --calls size: measure "
        "them without loading (migrated to this code; the oldest month reloaded if retention dropped it)",
    )
    args = p.parse_args()
    out = [f"# bench/partitions.py, {datetime.now(UTC):%Y-%m-%d %H:%MZ}\n", f"start: {uptime()}\n"]
    sizes = [int(s) for s in args.calls.split(",")]
    reuse = args.reuse.split(",") if args.reuse else [None] * len(sizes)
    if len(reuse) != len(sizes):
        raise SystemExit("--reuse needs one database per --calls size")
    given = (args.month_calls or "").split(",")
    if len(given) == 1:
        given *= len(sizes)
    if len(given) != len(sizes):
        raise SystemExit("--month-calls: one value, or one per --calls size")
    month_calls = [int(m) if m.strip() else None for m in given]
    if args.min_free_gb < 8:
        raise SystemExit("--min-free-gb: at least 8 (the disk is shared)")
    for size, month, name in zip(sizes, month_calls, reuse, strict=True):
        kept = await one_size(args.dsn, size, month, args, out, name)
        if args.keep:
            out.append(f"\nkept: {kept}")
    out.append(f"\nend: {uptime()}")
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
