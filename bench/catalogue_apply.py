"""Benchmark: parse + apply a large generated catalogue (N tenants, 3 requesters each, 1 PIN per tenant),
first apply, no-change re-apply, and the cost of one scrypt PIN hash (baseline).

Usage: .venv/bin/python bench/catalogue_apply.py DSN_OF_AN_EMPTY_DB [N]
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg

from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.pins import hash_pin
from pbx_sla.store import migrate
from pbx_sla.store.catalogue import apply_catalogue


def generate(n: int) -> dict:
    data = {
        "timezone": "Europe/Prague",
        "country_code": "420",
        "calendars": {"always": {"hours": "24/7"}},
        "tiers": {
            "t1": {
                "price_per_year": "1000",
                "currency": "CZK",
                "calendar": "always",
                "queue": "q",
                "answer_target_seconds": 30,
            }
        },
        "trunks": [{"name": "trunk-a", "server": "pbx1"}],
        "tenants": [],
    }
    for i in range(n):
        data["tenants"].append(
            {
                "id": f"t{i}",
                "name": f"Tenant {i}",
                "tier": "t1",
                "employees": 5,
                "contract_start": "2026-01-01",
                "accountcodes": [f"ac{i}"],
                "dids": [f"+42022{i:07d}"],
                "trunks": ["trunk-a"],
                "requesters": [
                    {"name": "A", "phones": [f"+42077{i:07d}"], "pin": "4711"},
                    {"name": "B", "phones": [f"+42060{i:07d}"]},
                    {"name": "C", "phones": [f"+42073{i:07d}"]},
                ],
            }
        )
    return data


async def main(dsn: str, n: int) -> None:
    t = time.perf_counter()
    for _ in range(5):
        hash_pin("4711")
    print(f"baseline: one scrypt PIN hash {1000 * (time.perf_counter() - t) / 5:.1f} ms")
    data = generate(n)
    t = time.perf_counter()
    cat = parse_catalogue(data, "bench")
    print(f"parse {n} tenants ({3 * n} requesters, {n} PINs): {time.perf_counter() - t:.2f} s")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.upgrade(conn)
        for label in ("first apply", "re-apply (no change)"):
            t = time.perf_counter()
            changes = await apply_catalogue(conn, cat, "bench")
            print(
                f"{label}: {time.perf_counter() - t:.2f} s, {len(changes.added)} added, {len(changes.changed)} changed"
            )
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000))
