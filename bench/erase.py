"""Benchmark: ``pbx-sla erase --number`` over a long partitioned history (issue 17: erasure at scale).

    .venv/bin/python bench/partitions.py --calls 2000000 --retention-legs 0 --load-only   # prints DB name
    .venv/bin/python bench/erase.py --db bench_part_xxxxxxxx [--runs 3] [--dsn ADMIN_DSN]

Erasure finds a number by a substring search of free-text columns, which no index serves, so it reads every
row of every personal table once (``pbx_sla.store.erasure``), in one transaction holding the call locks (the
daemon's writes wait meanwhile: its durable writer keeps them). This measures, on a database loaded by
``bench/partitions.py`` (one leg per call; callers ``+420777NNNNNN``, one million distinct numbers, so each
number has calls/1,000,000 calls and legs):

* **the scan alone** (the baseline, same run): each table's candidate ``SELECT`` exactly as erasure runs it,
  without the Python decisions, the updates or the locks: the floor of any erasure that reads every row;
* ``erase_number(dry_run=True)`` and ``erase_number()`` for a different caller number each run (the real one
  then holds the locks for its whole time: that is the daemon's write stall);
* the tables' sizes on disk, so the time can be read per GB.

One untimed scan comes first, so the timed passes all read from the same cache (on this machine's 23 GiB a
history of a few GB stays in memory: the figures are CPU-bound; a larger one is read from disk by each pass).

Each run's number is new, so the real erasure always has rows to change. Times are wall-clock (the machine
is shared: the load is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_sla.domain.erasure import shortest_form, target  # noqa: E402
from pbx_sla.store.erasure import TABLES, candidates, erase_number  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def scan_alone(conn: asyncpg.Connection, e164: str, cc: str) -> tuple[float, int]:
    """Every table's candidate SELECT, as erasure runs it (pbx_sla.store.erasure.candidates)."""
    t = target(e164, cc, "erased:x")
    needle = shortest_form(t)
    rows = 0
    t0 = time.perf_counter()
    for spec in TABLES:
        found = await candidates(conn, spec, e164, needle)
        rows += len(found)
    return time.perf_counter() - t0, rows


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--db", required=True, help="a database loaded by bench/partitions.py --load-only")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--first-number", type=int, default=4242, help="the first caller's index (0..999999)")
    args = p.parse_args()
    dsn = args.dsn.rsplit("/", 1)[0] + "/" + args.db
    conn = await asyncpg.connect(dsn, server_settings={"jit": "off"})
    cc = await conn.fetchval("SELECT country_code FROM catalogue_settings")
    size_sql = "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree($1) WHERE isleaf"
    sizes = {spec.table: int(await conn.fetchval(size_sql, spec.table)) for spec in TABLES}
    legs = await conn.fetchval("SELECT count(*) FROM cdr_legs")
    total_gb = sum(sizes.values()) / 1e9
    print(f"# bench/erase.py, {datetime.now(UTC):%Y-%m-%d %H:%MZ}, database {args.db}, load {load()}")
    print(f"cdr_legs rows: {legs:,}; personal tables on disk: {total_gb:.2f} GB")
    print("  " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items()))
    # one untimed pass first, so that every timed pass reads the tables from the same (warm) cache; a history
    # larger than the memory is read from disk by every pass alike
    await scan_alone(conn, f"+420777{args.first_number:06d}", cc)
    scans, dries, reals = [], [], []
    for run in range(args.runs):
        e164 = f"+420777{args.first_number + run:06d}"
        s, found = await scan_alone(conn, e164, cc)
        t0 = time.perf_counter()
        dry = await erase_number(conn, e164, dry_run=True)
        d = time.perf_counter() - t0
        t0 = time.perf_counter()
        real = await erase_number(conn, e164)
        r = time.perf_counter() - t0
        assert dry["tables"] == real["tables"], "the dry run reported other changes than the erasure made"
        touched = {t["table"]: t["rows"] for t in real["tables"] if t["rows"]}
        print(f"run {run + 1} {e164}: scan alone {s:.2f} s ({found} candidate rows), dry run {d:.2f} s, "
              f"erase {r:.2f} s (call locks held), rows changed {touched}; load {load()}")  # fmt: skip
        scans.append(s)
        dries.append(d)
        reals.append(r)
    med = statistics.median
    print(f"median: scan alone {med(scans):.2f} s, dry run {med(dries):.2f} s, erase {med(reals):.2f} s "
          f"({total_gb / med(reals):.2f} GB/s of personal tables); erase / scan alone "
          f"{med(reals) / med(scans):.2f}; per million legs {med(reals) / (legs / 1e6):.2f} s")  # fmt: skip
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
