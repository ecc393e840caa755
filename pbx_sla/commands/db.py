"""``pbx-sla db upgrade``."""

from __future__ import annotations

import argparse

from pbx_sla.config import Settings
from pbx_sla.store import migrate
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
