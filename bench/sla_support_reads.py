"""Benchmark: the `sla` report for the Prague month 2026-11 and the statements it runs, in a database kept by
bench/partitions.py (with its catalogue document applied), with the code of a given checkout: above all the
support-request reads of cdr_legs (pbx_sla/store/requests.py: ``queue_member_endpoints``,
``agi_failure_facts``, ``staff_calls``) that sql/1740 indexes.

    .venv/bin/python bench/sla_support_reads.py --db NAME [--code DIR] [--runs 3] [--migrate] [--dsn ADMIN_DSN]

``--code DIR``: import ``pbx_sla`` from that checkout (e.g. a ``git worktree`` of the commit before a change).
``--migrate``: first bring the database to that code's schema (``migrate.upgrade``, timed: for sql/1740 the
index builds). Judged as of 2026-12-01T12:00Z. Two cases, each ``--runs`` times after a warm-up:

* **nothing kept**: ``support_kept_tenants`` emptied before each report (as after a late fact or a catalogue
  change: the report derives every tenant's support requests from its whole history);
* **kept**: the report after one that kept them (the steady state the daemon's ``support_kept`` task keeps);
* **catalogue change** (``--cases`` with ``catalogue``): before each report a new catalogue revision that
  changes one tenant's requesters (``t7``'s requester gains, then loses, a second number; applied with the
  code measured, not timed): before sql/1770 every tenant is derived again, since only that tenant.

``--cases``: comma-separated, of ``nothing``, ``kept``, ``catalogue`` (default ``nothing,kept``).

Prints the report's median and worst, each statement's median over the runs (asyncpg's query logger, the
slowest first), a digest of the report's JSON (the same for two versions that compute the same report), the
EXPLAIN ANALYZE of the three support reads of the last run, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SUPPORT_READS = {
    "queue_member_endpoints": ("dst_endpoint", "lastapp = 'Queue'"),
    "agi_failure_facts": ("DISTINCT ON (l.server, l.uniqueid)",),
    "staff_calls": ("src_endpoint = ANY($1::text[])",),
}


def support_read(sql: str) -> str | None:
    for name, marks in SUPPORT_READS.items():
        if all(m in sql for m in marks):
            return name
    return None


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True)
    p.add_argument("--code", type=Path, default=ROOT)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--migrate", action="store_true")
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/")
    p.add_argument("--cases", default="nothing,kept")
    args = p.parse_args()
    cases = {"nothing": "nothing kept", "kept": "kept", "catalogue": "catalogue change"}
    wanted = [cases[c] for c in args.cases.split(",")]
    sys.path.insert(0, str(args.code.resolve()))
    import asyncpg

    from pbx_sla.reports.period import month_period
    from pbx_sla.reports.sla import sla_report
    from pbx_sla.store import migrate
    from pbx_sla.store.catalogue import apply_catalogue, load_catalogue

    conn = await asyncpg.connect(args.dsn + args.db, server_settings={"jit": "off"})  # as bench/partitions.py
    print(f"code {args.code}, database {args.db}, {time.strftime('%H:%M:%SZ', time.gmtime())}, "
          f"load {os.getloadavg()}")  # fmt: skip
    if args.migrate:
        t = time.perf_counter()
        await migrate.upgrade(conn)
        print(f"migrate.upgrade: {time.perf_counter() - t:.1f} s")
    if await conn.fetchval("SELECT count(*) FROM catalogue_revisions") == 0:
        raise SystemExit("no catalogue document: run bench/partitions.py on the database first")
    period = month_period(2026, 11, ZoneInfo("Europe/Prague"))
    logged: list[Any] = []

    def log(q: Any) -> None:
        logged.append(q)

    async def revise(run: int) -> None:
        """A catalogue revision changing only t7's requesters (a second number on even runs, none on odd)."""
        import dataclasses

        cat = await load_catalogue(conn)
        t7 = cat.tenants["t7"]
        first = t7.requesters[0]
        phones = (first.phones[0], "+420799000007") if run % 2 == 0 else first.phones[:1]
        requesters = (dataclasses.replace(first, phones=phones), *t7.requesters[1:])
        tenants = {**cat.tenants, "t7": dataclasses.replace(t7, requesters=requesters)}
        await apply_catalogue(conn, dataclasses.replace(cat, tenants=tenants), f"bench catalogue change {run}")

    for case in wanted:
        times: list[float] = []
        statements: dict[str, list[float]] = defaultdict(list)
        digest = ""
        last: list[Any] = []
        for run in range(args.runs + 1):
            if case == "nothing kept":
                await conn.execute("DELETE FROM support_kept_tenants")
            elif case == "catalogue change":
                await revise(run)
            logged.clear()
            conn.add_query_logger(log)
            t = time.perf_counter()
            report = await sla_report(conn, period, now=NOW)
            took = time.perf_counter() - t
            conn.remove_query_logger(log)
            digest = hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()[:16]
            if run == 0:
                continue  # warm-up
            times.append(took)
            kept = await conn.fetch("SELECT revision_id, count(*) AS n FROM support_kept_tenants GROUP BY 1 ORDER BY 1")
            print(f"  run {run}: {took:.3f} s; kept tenants by revision {[tuple(r) for r in kept]}", flush=True)
            per: dict[str, float] = defaultdict(float)
            for q in logged:
                per[support_read(q.query) or " ".join(q.query.split())[:90]] += q.elapsed
            for k, v in per.items():
                statements[k].append(v)
            last = list(logged)
        print(f"\n## {case}: sla median {statistics.median(times):.3f} s, worst {max(times):.3f} s "
              f"({args.runs} runs after a warm-up; report digest {digest}; load {os.getloadavg()})")  # fmt: skip
        for k, v in sorted(statements.items(), key=lambda kv: -statistics.median(kv[1]))[:8]:
            print(f"  {statistics.median(v):7.3f} s  {k}")
        for q in last:
            name = support_read(q.query)
            if name is None:
                continue
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q.query, *q.args)
            lines = [r[0] for r in plan]
            scans = sorted({ln.strip().split(" on ")[0].lstrip("-> ").strip() for ln in lines if " on " in ln
                            and ("Scan" in ln)})  # fmt: skip
            print(f"  EXPLAIN ANALYZE {name}: {lines[-1].strip()}; {lines[0].strip()[:100]}; nodes: {scans}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
