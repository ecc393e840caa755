"""Benchmark: the `sla` report's voice-quality part alone (``reports.qos.tenant_figures``: every catalogue
tenant's figures over its calls' trunk legs) for the Prague month 2026-11, in a database kept by
bench/partitions.py (which applies the catalogue document it needs), with the code of a given checkout.

    .venv/bin/python bench/sla_qos.py --db NAME [--code DIR] [--runs 5] [--dsn ADMIN_DSN]

``--code DIR``: import ``pbx_sla`` from that checkout instead of this one (e.g. a ``git worktree`` of the commit
before a change), so two versions can be timed one after the other on the same data. Prints the median and
worst of ``--runs`` after one warm-up, the legs and tenants counted, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", required=True)
    p.add_argument("--code", type=Path, default=ROOT)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/")
    args = p.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    import asyncpg

    from pbx_sla.reports.period import month_period
    from pbx_sla.reports.qos import tenant_figures
    from pbx_sla.store.catalogue import load_catalogue

    conn = await asyncpg.connect(args.dsn + args.db, server_settings={"jit": "off"})  # as bench/partitions.py
    period = month_period(2026, 11, ZoneInfo("Europe/Prague"))
    cat = await load_catalogue(conn)
    if cat is None:
        raise SystemExit("no catalogue document: run bench/partitions.py on the database first")
    result = await tenant_figures(conn, period, cat)  # warm-up
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        await tenant_figures(conn, period, cat)
        times.append(time.perf_counter() - t)
    await conn.close()
    legs = sum(f.legs_measured for f, _ in result.values())
    # the same figures from both versions: a digest of every tenant's exact figures (counts, p95s, poor legs)
    # and of its means to 9 significant digits (float sums may add in another order)
    exact = sorted((t, f.legs_measured, f.packets_received, f.packets_lost, f.jitter_ms_p95, f.rtt_ms_p95,
                    f.poor_calls) for t, (f, _) in result.items())  # fmt: skip
    means = sorted(
        (t, f"{f.mos_mean:.9g}", f"{f.jitter_ms_mean:.9g}") for t, (f, _) in result.items() if f.legs_measured
    )
    digest = hashlib.sha256(repr((exact, means)).encode()).hexdigest()[:16]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    med, worst = statistics.median(times), max(times)
    print(f"{args.db} code {args.code}: tenant_figures median {med:.3f} s, worst {worst:.3f} s ({args.runs} runs; "
          f"{len(result)} tenants, {legs:,} legs measured; figures digest {digest}); load {load}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
