"""Benchmark: the `trunks` report for one month over a busy year of observations.

    .venv/bin/python bench/trunks_report.py [--trunks 50] [--servers 2] [--flap-minutes 60] [--dsn ADMIN_DSN]

Data: every trunk flaps (down a few minutes) every --flap-minutes all year; the daemon reconnects once a
day per server (one AMI session per day, each with a resync poll row per trunk). Time: the report function
(`trunk_availability`, the same code as `pbx-sla trunks`) for June and for December, median of 5 runs.
Baseline in the same run: the same report over a database holding only that month's rows.

Creates and drops its own databases on the server of --dsn (default: the machine's PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_sla.reports.period import Period, month_period  # noqa: E402
from pbx_sla.reports.trunks import trunk_availability  # noqa: E402
from pbx_sla.store import migrate  # noqa: E402

PRAGUE = ZoneInfo("Europe/Prague")
YEAR = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def with_db(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def generate(trunks: int, servers: int, flap_minutes: int, start: datetime, end: datetime, seed: int = 7):
    """(sessions, observations) rows for [start, end)."""
    rnd = random.Random(seed)
    sessions, obs = [], []
    names = [(f"pbx{s + 1}", f"trunk-{t:03d}") for s in range(servers) for t in range(trunks // servers)]
    day = start
    while day < end:
        for s in range(servers):
            server = f"pbx{s + 1}"
            login = day + timedelta(seconds=rnd.randint(0, 60))
            lost = day + timedelta(days=1) - timedelta(seconds=rnd.randint(30, 90))
            sessions.append((server, uuid.uuid4().hex, login, login + timedelta(seconds=1), lost, lost))
            for srv, trunk in names:
                if srv == server:
                    obs.append((server, trunk, login + timedelta(milliseconds=100), "contact", f"sip:{trunk}@h",
                                "Reachable", 1500, True))  # fmt: skip
        day += timedelta(days=1)
    for server, trunk in names:
        at = start + timedelta(minutes=rnd.randint(0, flap_minutes))
        while at < end:
            down = at + timedelta(seconds=rnd.randint(30, 600))
            obs.append((server, trunk, at, "contact", f"sip:{trunk}@h", "Unreachable", None, False))
            obs.append((server, trunk, down, "contact", f"sip:{trunk}@h", "Reachable", 1400, False))
            at = down + timedelta(minutes=flap_minutes + rnd.randint(-10, 10))
    return names, sessions, obs


async def load(conn: asyncpg.Connection, names, sessions, obs) -> None:
    await conn.execute("INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420')")
    await conn.executemany(
        "INSERT INTO trunks (server, name, availability_target, in_catalogue) VALUES ($1, $2, 0.999, true)", names
    )
    await conn.copy_records_to_table(
        "ami_sessions",
        records=sessions,
        columns=["server", "session_id", "login_at", "resynced_at", "last_seen_at", "lost_at"],
    )
    await conn.copy_records_to_table(
        "trunk_observations",
        records=obs,
        columns=["server", "trunk", "at", "source", "key", "status", "rtt_usec", "polled"],
    )
    await conn.execute("ANALYZE")


async def timed(conn: asyncpg.Connection, period: Period, runs: int = 5) -> tuple[float, int]:
    times, rows = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = await trunk_availability(conn, period)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(rows)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--trunks", type=int, default=50)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--flap-minutes", type=int, default=60)
    args = parser.parse_args()

    admin = await asyncpg.connect(args.dsn)
    results = {}
    months = {"June": month_period(2026, 6, PRAGUE), "December": month_period(2026, 12, PRAGUE)}
    try:
        for label, span in [("year", YEAR)] + [(f"only {m}", (p.start, p.end)) for m, p in months.items()]:
            name = f"pbx_sla_bench_trunks_{uuid.uuid4().hex[:8]}"
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                conn = await asyncpg.connect(with_db(args.dsn, name))
                try:
                    await migrate.upgrade(conn)
                    names, sessions, obs = generate(args.trunks, args.servers, args.flap_minutes, *span)
                    t0 = time.perf_counter()
                    await load(conn, names, sessions, obs)
                    load_s = time.perf_counter() - t0
                    for month, period in months.items():
                        if label.startswith("only") and month not in label:
                            continue
                        median, n = await timed(conn, period)
                        results[(label, month)] = (median, n, len(obs), len(sessions))
                    print(f"{label}: {len(obs)} observations, {len(sessions)} sessions loaded in {load_s:.1f} s")
                finally:
                    await conn.close()
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        version = await admin.fetchval("SHOW server_version")
    finally:
        await admin.close()
    print(f"PostgreSQL {version}")
    print("| data in database | month reported | trunks | observations in DB | sessions | median of 5 |")
    print("|---|---|---|---|---|---|")
    for (label, month), (median, n, nobs, nsess) in results.items():
        print(f"| {label} | {month} 2026 | {n} | {nobs} | {nsess} | {median * 1000:.0f} ms |")


if __name__ == "__main__":
    asyncio.run(main())
