"""``pbx-sla db upgrade`` and ``pbx-sla db partitions``."""

from __future__ import annotations

import argparse

from pbx_sla.config import Settings
from pbx_sla.store import migrate, partitions
from pbx_sla.store.pool import connect, resolve_dsn


async def upgrade(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(await resolve_dsn(settings))
    try:
        applied = await migrate.upgrade(conn)
        version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    finally:
        await conn.close()
    if applied:
        print(f"applied {len(applied)} migration(s): " + ", ".join(f"{m.version:04d}_{m.name}" for m in applied))
    print(f"schema at version {version}")
    return 0


async def partitions_command(args: argparse.Namespace, settings: Settings) -> int:
    """The month partitions due now (this month and the next ones), and those of rows waiting in a DEFAULT
    partition, moved out of it (pbx_sla/store/partitions.py)."""
    conn = await connect(await resolve_dsn(settings))
    try:
        made = await partitions.maintain(conn)
        waiting = {
            parent: int(await conn.fetchval(f"SELECT count(*) FROM {parent}_default"))
            for parent, _ in await partitions.partitioned(conn)
        }
    finally:
        await conn.close()
    for parent in sorted(made):
        print(f"{parent}: {made[parent]} partition(s) made, {waiting[parent]} row(s) in {parent}_default")
    if not made:
        print("no partitioned tables (run 'pbx-sla db upgrade')")
    return 0
