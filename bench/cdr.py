"""Benchmark: Master.csv import rate and the `usage` query over many calls.

    .venv/bin/python bench/cdr.py [--rows 200000] [--calls 10000000] [--tenants 500] [--servers 1] [--dsn ADMIN_DSN]

1. import: generate a Master.csv (21 columns, 1-3 legs per call) and import it with the same code as
   `pbx-sla cdr import` (parse, fingerprint, normalise, insert legs, recompute calls and the rollup).
   Baseline in the same run: a raw COPY of the same file into a table of text columns.
2. usage: write N calls across T tenants straight into `calls` with generate_series, build
   `usage_daily` from them, then time the report's query for one month (plus EXPLAIN ANALYZE).
   Baseline: the naive aggregate over the raw `calls` table for the same month. Then `usage --server pbx1`
   (the per-server view, counted from `calls`) alternating with the fleet report, 5 rounds; with
   `--servers N` the calls are spread over pbx1..pbxN.

Creates and drops its own databases on the server of --dsn (default: the machine's PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_sla.ingest.importer import import_csv  # noqa: E402
from pbx_sla.reports.period import month_period  # noqa: E402
from pbx_sla.reports.usage import _DAILY_OF_SERVERS, usage_rows  # noqa: E402
from pbx_sla.store import migrate  # noqa: E402

PRAGUE = ZoneInfo("Europe/Prague")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a local process (Linux /proc), None when not readable (a remote server)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now(pids: list[int]) -> tuple[list[float | None], float, float]:
    """CPU so far of the given PostgreSQL backends, of this process's finished children, of this process."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return [cpu_seconds(p) for p in pids], children.ru_utime + children.ru_stime, time.process_time()


def cpu_text(before: tuple, after: tuple) -> str:
    backends = [None if a is None or b is None else b - a for a, b in zip(before[0], after[0], strict=True)]
    shown = "n/a" if None in backends else " + ".join(f"{x:.2f}" for x in backends)  # type: ignore[str-format]
    return f"backends {shown} s, parser (child) {after[1] - before[1]:.2f} s, importer {after[2] - before[2]:.2f} s"


_LOOP = (
    "import time\nt = time.process_time()\ntotal = 0\n"
    "for i in range(5_000_000):\n    total += i % 7\nprint(time.process_time() - t)"
)


def machine_speed() -> tuple[float, float]:
    """CPU seconds of a fixed pure-Python loop in a child process: alone, and the slower of two run at
    once (best of 2 each). This VM's speed drifts from minute to minute, and at some moments its two
    cores are much slower when both are busy than when one is: the second figure shows such moments,
    which are when the import (three busy processes) slows down."""

    def run(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", _LOOP], stdout=subprocess.PIPE) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)

    return min(run(1) for _ in range(2)), min(run(2) for _ in range(2))


def with_db(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def write_csv(path: Path, rows: int, seed: int = 1) -> int:
    rnd = random.Random(seed)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    n = c = 0
    with path.open("w", encoding="utf-8") as f:
        while n < rows:
            start = t0 + timedelta(seconds=rnd.randint(0, 30 * 86400))
            for s in range(rnd.randint(1, 3)):
                if n >= rows:
                    break
                st = start + timedelta(seconds=20 * s)
                bill = rnd.randint(0, 300)
                end = st + timedelta(seconds=bill + 5)
                disp = "ANSWERED" if bill else rnd.choice(["BUSY", "NO ANSWER", "FAILED"])
                ans = (st + timedelta(seconds=5)).astimezone(PRAGUE).strftime("%Y-%m-%d %H:%M:%S") if bill else ""
                f.write(
                    f'"t{rnd.randint(0, 499)}","77700{rnd.randint(1000, 9999)}","22100{rnd.randint(1000, 9999)}",'
                    f'"from-trunk","""Caller {c}"" <777000001>","PJSIP/trunk-a-{c:08x}","PJSIP/agent-{n:08x}",'
                    f'"Dial","PJSIP/agent,30","{st.astimezone(PRAGUE):%Y-%m-%d %H:%M:%S}",'
                    f'{chr(34) + ans + chr(34) if ans else ""},"{end.astimezone(PRAGUE):%Y-%m-%d %H:%M:%S}",'
                    f'{bill + 5},{bill},"{disp}","DOCUMENTATION","{c}.{s}","","","{c}.0",{s}\n'
                )
                n += 1
            c += 1
    return n


async def seed(conn: asyncpg.Connection, tenants: int) -> None:
    await conn.execute("INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420')")
    await conn.execute("INSERT INTO calendars (name, always, hours) VALUES ('always', true, '{}')")
    await conn.execute(
        """INSERT INTO tiers (name, price_per_year, currency, max_calls_per_day, max_employees, calendar, queue,
                              priority, out_of_hours, answer_target_seconds)
           VALUES ('t1', 25000, 'CZK', 100, 20, 'always', 'q', 1, 'closed', 30),
                  ('t2', 46000, 'CZK', 500, 50, 'always', 'q', 1, 'closed', 30),
                  ('t4', 190000, 'CZK', NULL, NULL, 'always', 'q', 1, 'closed', 30)"""
    )
    await conn.execute(
        """INSERT INTO tenants (id, name, tier, employees, contract_start)
           SELECT 't' || i, 'tenant ' || i, (ARRAY['t1', 't2', 't4'])[1 + i % 3], i % 60, '2025-01-01'
           FROM generate_series(0, $1 - 1) i""",
        tenants,
    )
    await conn.execute(
        "INSERT INTO tenant_accountcodes (accountcode, tenant_id) SELECT id, id FROM tenants",
    )


async def bench_import(admin_dsn: str, rows: int, out: list[str]) -> None:
    name = f"bench_cdr_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(with_db(admin_dsn, name))
        await migrate.upgrade(conn)
        await seed(conn, 500)
        path = ROOT / ".cache" / f"bench-master-{rows}.csv"
        path.parent.mkdir(exist_ok=True)
        t = time.perf_counter()
        written = write_csv(path, rows)
        gen = time.perf_counter() - t
        await conn.execute("CREATE UNLOGGED TABLE raw_copy (" + ", ".join(f"c{i} text" for i in range(21)) + ")")
        t = time.perf_counter()
        with path.open("rb") as f:
            await conn.copy_to_table("raw_copy", source=f, format="csv")
        copy_s = time.perf_counter() - t
        conn2 = await asyncpg.connect(with_db(admin_dsn, name))  # as `cdr import`: one call bucket stored on each
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in (conn, conn2)]
        speed = machine_speed()
        t, cpu0 = time.perf_counter(), cpu_now(pids)
        summary = await import_csv(conn, path, "pbx1", PRAGUE, second_conn=conn2)
        imp_s, cpu1 = time.perf_counter() - t, cpu_now(pids)
        t = time.perf_counter()
        again = await import_csv(conn, path, "pbx1", PRAGUE, second_conn=conn2)
        re_s, cpu2 = time.perf_counter() - t, cpu_now(pids)
        calls = await conn.fetchval("SELECT count(*) FROM calls")
        await conn2.close()
        await conn.close()
        out += [
            f"## Master.csv import ({written:,} rows, {calls:,} calls, {path.stat().st_size / 1e6:.1f} MB)",
            "",
            "| step | seconds | rows/s |",
            "|---|---|---|",
            f"| baseline: raw COPY into 21 text columns | {copy_s:.2f} | {written / copy_s:,.0f} |",
            f"| `cdr import` (first time: {summary.imported:,} legs stored) | {imp_s:.2f} | {written / imp_s:,.0f} |",
            f"| `cdr import` again (all {again.present:,} already present) | {re_s:.2f} | {written / re_s:,.0f} |",
            "",
            f"CPU, first import: {cpu_text(cpu0, cpu1)}; re-import: {cpu_text(cpu1, cpu2)}",
            "",
            f"Machine speed just before the import (`machine_speed()`, a fixed Python loop): {speed[0]:.3f} CPU-s"
            f" alone, {speed[1]:.3f} CPU-s with two at once",
            "",
            f"(generating the file took {gen:.1f} s; rejected rows: {summary.rejected})",
            "",
        ]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def rollup_usage_daily(conn: asyncpg.Connection) -> None:
    """The daily rollup of calls written straight into ``calls`` (bypassing the import that keeps it)."""
    await conn.execute(
        """INSERT INTO usage_daily (tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec)
           SELECT tenant_id, day, count(*), count(*) FILTER (WHERE disposition = 'ANSWERED'),
                  count(*) FILTER (WHERE disposition = 'BUSY'), count(*) FILTER (WHERE disposition = 'NO ANSWER'),
                  count(*) FILTER (WHERE disposition = 'FAILED'),
                  count(*) FILTER (WHERE disposition = 'CONGESTION'), sum(billsec)
           FROM calls GROUP BY tenant_id, day"""
    )


async def load_calls(conn: asyncpg.Connection, calls: int, tenants: int, servers: int = 1) -> None:
    """``calls`` calls over 2026-01-01 .. 2026-06-30 straight into ``calls`` (1 in 20 unattributed, the rest
    spread over the ``tenants`` of :func:`seed`; round robin over ``servers`` PBXs pbx1..pbxN), then
    ``usage_daily`` built from them (also bench/web.py)."""
    # calls spread over 2026-01-01 .. 2026-06-30 (181 days); 1 in 20 unattributed
    await conn.execute(
        """INSERT INTO calls (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                              direction, tenant_id, attributed_by)
           SELECT 'pbx' || (1 + i % $3), i::text, i::text, 1, s, s + interval '2 minutes',
                  (s AT TIME ZONE 'Europe/Prague')::date,
                  (ARRAY['ANSWERED','ANSWERED','ANSWERED','BUSY','NO ANSWER','FAILED'])[1 + i % 6],
                  CASE WHEN i % 6 < 3 THEN i % 300 ELSE 0 END, 'inbound',
                  CASE WHEN i % 20 = 0 THEN NULL ELSE 't' || (i * 7919 % $2) END,
                  CASE WHEN i % 20 = 0 THEN NULL ELSE 'accountcode' END
           FROM generate_series(1::bigint, $1::bigint) i,
                LATERAL (SELECT timestamptz '2026-01-01 00:00+01' + (i * 181.0 * 86400 / $1) * interval '1 second'
                         AS s) x""",
        calls,
        tenants,
        servers,
    )
    await rollup_usage_daily(conn)
    await conn.execute("VACUUM ANALYZE calls")
    await conn.execute("VACUUM ANALYZE usage_daily")


async def bench_usage(admin_dsn: str, calls: int, tenants: int, out: list[str], servers: int = 1) -> None:
    name = f"bench_usage_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(with_db(admin_dsn, name))
        await migrate.upgrade(conn)
        await seed(conn, tenants)
        t = time.perf_counter()
        await load_calls(conn, calls, tenants, servers)
        load_s = time.perf_counter() - t
        period = month_period(2026, 3, PRAGUE)
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            rows = await usage_rows(conn, period)
            timings.append(time.perf_counter() - t)
        t = time.perf_counter()
        naive = await conn.fetch(
            """SELECT tenant_id, day, count(*), count(*) FILTER (WHERE disposition = 'ANSWERED'), sum(billsec)
               FROM calls WHERE started_at >= $1 AND started_at < $2 GROUP BY tenant_id, day""",
            period.start,
            period.end,
        )
        naive_s = time.perf_counter() - t
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT tenant_id, day, calls, answered, busy, no_answer, failed, congestion,"
            " billsec FROM usage_daily WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR tenant_id = $3)"
            " AND calls > 0",
            date(2026, 3, 1),
            date(2026, 3, 31),
            None,
        )
        month_calls = sum(r.outcomes.calls for r in rows)
        # the per-server view (``usage --server pbx1``) alternating with the fleet report, same run
        fleet_s, server_s = [], []
        for _ in range(5):
            t = time.perf_counter()
            await usage_rows(conn, period)
            fleet_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            mine = await usage_rows(conn, period, servers=["pbx1"])
            server_s.append(time.perf_counter() - t)
        server_calls = sum(r.outcomes.calls for r in mine)
        server_plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + _DAILY_OF_SERVERS,
            date(2026, 3, 1),
            date(2026, 3, 31),
            None,
            ["pbx1"],
            period.start - timedelta(days=2),
            period.end + timedelta(days=2),
        )
        await conn.close()
        out += [
            f"## `usage --period 2026-03` over {calls:,} calls, {tenants} tenants ({month_calls:,} calls in March)",
            "",
            "| query | seconds |",
            "|---|---|",
            f"| baseline: naive GROUP BY over `calls` for the month ({len(naive):,} groups) | {naive_s:.3f} |",
            f"| `usage` report (rollup read + figures for {len(rows)} rows), best of 5 | {min(timings):.3f} |",
            f"| `usage` report, worst of 5 | {max(timings):.3f} |",
            f"| `usage --server pbx1` ({server_calls:,} of the month's calls, {servers} server(s)), alternating "
            f"with the fleet report: best / median / worst of 5 | {min(server_s):.3f} / "
            f"{sorted(server_s)[2]:.3f} / {max(server_s):.3f} |",
            f"| fleet `usage` in those same rounds: best / median / worst of 5 | {min(fleet_s):.3f} / "
            f"{sorted(fleet_s)[2]:.3f} / {max(fleet_s):.3f} |",
            "",
            f"(loading the calls and building the rollup took {load_s:.0f} s)",
            "",
            "EXPLAIN (ANALYZE, BUFFERS) of the report's query:",
            "",
            "```",
            *[r[0] for r in plan],
            "```",
            "",
            "EXPLAIN (ANALYZE, BUFFERS) of the per-server query (`--server pbx1`):",
            "",
            "```",
            *[r[0] for r in server_plan],
            "```",
            "",
        ]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--calls", type=int, default=10_000_000)
    p.add_argument("--tenants", type=int, default=500)
    p.add_argument("--servers", type=int, default=1, help="spread the usage benchmark's calls over N servers")
    p.add_argument("--skip-import", action="store_true")
    p.add_argument("--skip-usage", action="store_true")
    args = p.parse_args()
    out: list[str] = []
    if not args.skip_import:
        await bench_import(args.dsn, args.rows, out)
    if not args.skip_usage:
        await bench_usage(args.dsn, args.calls, args.tenants, out, args.servers)
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
