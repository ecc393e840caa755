"""Migration runner for ``sql/NNNN_name.sql``: in order, one transaction each, serialised by an advisory lock.

Two daemons starting together both call :func:`upgrade`; the second waits for the lock, then finds
nothing left to do. Applied files are recorded with a checksum; an applied file that was edited
afterwards is refused rather than silently diverging.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from pbx_sla.errors import ConfigError
from pbx_sla.log import get_logger

log = get_logger(__name__)

#: pg_advisory_lock key: 'pbx-sla migrate' folded into a bigint
LOCK_KEY = int.from_bytes(hashlib.sha256(b"pbx-sla migrate").digest()[:8], "big", signed=True)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def sql_dir() -> Path:
    env = os.environ.get("PBX_SLA_SQL_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "sql"


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    if not directory.is_dir():
        raise ConfigError(f"migrations directory {directory} not found (set PBX_SLA_SQL_DIR)")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ConfigError(f"{path}: migration files are named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise ConfigError(f"{path}: version {version} also used by {found[version].path.name}")
        found[version] = Migration(version, m.group(2), path, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def upgrade(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply pending migrations on a dedicated (non-pooled) connection; return the ones applied."""
    migrations = discover() if migrations is None else migrations
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        for mig in migrations:
            if mig.version in done:
                if done[mig.version]["checksum"] != mig.checksum:
                    raise ConfigError(
                        f"{mig.path}: already applied as version {mig.version} but its content changed; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
            log.info("migration applied", version=mig.version, name=mig.name)
            applied_now.append(mig)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now
