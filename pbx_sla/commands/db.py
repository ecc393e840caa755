"""``pbx-sla db upgrade``, ``pbx-sla db partitions`` and ``pbx-sla db qos-fill``."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime

from pbx_sla.config import Settings
from pbx_sla.errors import ConfigError
from pbx_sla.store import migrate, partitions
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.store.qos import fill_legs


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


async def qos_fill(args: argparse.Namespace, settings: Settings) -> int:
    """The QoS legs that hung up in the UTC month ``--month`` and were stored before sql/1710 get their MOS
    and their call's tenant (:func:`pbx_sla.store.qos.fill_legs`, under the call locks: the daemons' writes
    wait meanwhile); the reports give the same figures without it, faster with it (docs/qos.md)."""
    found = re.fullmatch(r"(\d{4})-(\d{2})", args.month)
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise ConfigError(f"--month: expected YYYY-MM, got {args.month!r}")
    year, month = int(found.group(1)), int(found.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    conn = await connect(await resolve_dsn(settings))
    try:
        filled = await fill_legs(conn, start, end)
    finally:
        await conn.close()
    print(f"qos_legs {args.month} (UTC): {filled} leg(s) given their MOS and/or call tenant")
    return 0
