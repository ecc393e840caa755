"""Migration runner for the SQL shipped in package ``pbx_sla.sql`` (the repository's ``sql/`` directory).

Two kinds of file (docs/schema.md):

* ``NNNN_name.sql``, versioned: tables, indexes, constraints, roles. Applied once each, in order, one
  transaction each, recorded in ``schema_migrations`` with a checksum; an applied file that was edited
  afterwards is refused rather than silently diverging.
* ``repeatable/name.sql``: functions and views as ``CREATE OR REPLACE``, one file per rule. After the
  versioned files, all of them are re-applied in name order, one transaction each, whenever one of them
  changed (checksums in ``schema_repeatables``) or a versioned file was applied in this run (it may have
  dropped and recreated a table, and so a view on it).

After them, the month partitions of the history tables that are due are made
(:func:`pbx_sla.store.partitions.maintain`).

Two daemons starting together both call :func:`upgrade`; an advisory lock serialises them: the second
waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import asyncpg

from pbx_sla.errors import ConfigError
from pbx_sla.log import get_logger
from pbx_sla.store import partitions

log = get_logger(__name__)

#: pg_advisory_lock key: 'pbx-sla migrate' folded into a bigint
LOCK_KEY = int.from_bytes(hashlib.sha256(b"pbx-sla migrate").digest()[:8], "big", signed=True)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REPEATABLE_NAME = re.compile(r"^([a-z0-9_]+)\.sql$")
#: the folder of repeatable files inside the migrations directory
REPEATABLE_DIR = "repeatable"

PRE_SQUASH = (
    "this database was migrated by a development build of pbx-sla from before the schema was squashed into "
    "one baseline (no released version used that history), so it cannot be upgraded in place. Nothing is lost "
    "by recreating it: create an empty database (for example `dropdb NAME && createdb NAME`, or remove the "
    "embedded server's data directory), run `pbx-sla db upgrade`, then `pbx-sla contracts apply` your catalogue "
    "and `pbx-sla cdr import` your Master.csv files again"
)


@dataclass(frozen=True)
class SqlFile:
    """One file of SQL, identified by its name and checksummed."""

    name: str
    path: Path | Traversable
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Migration(SqlFile):
    """A versioned file: applied once."""

    version: int = field(kw_only=True)


class Repeatable(SqlFile):
    """A repeatable file (functions, views): all are re-applied when any of them changes."""


@dataclass(frozen=True)
class Schema:
    """Everything one upgrade applies."""

    migrations: list[Migration]
    repeatables: list[Repeatable]


def sql_dir() -> Path | Traversable:
    """The migrations: ``PBX_SLA_SQL_DIR`` when set, else the package data ``pbx_sla.sql``."""
    env = os.environ.get("PBX_SLA_SQL_DIR")
    if env:
        return Path(env)
    try:
        return resources.files("pbx_sla.sql")
    except ModuleNotFoundError as exc:  # an editable install made before sql/ became package data
        raise ConfigError(
            "package pbx_sla.sql (the migrations) not found: reinstall pbx-sla (`pip install -e .` in a "
            "checkout) or set PBX_SLA_SQL_DIR"
        ) from exc


def discover(directory: Path | Traversable | None = None) -> list[Migration]:
    """The versioned files of ``directory`` in order; a misnamed file or a reused version is an error."""
    directory = sql_dir() if directory is None else directory
    if not directory.is_dir():
        raise ConfigError(f"migrations directory {directory} not found (set PBX_SLA_SQL_DIR)")
    found: dict[int, Migration] = {}
    for path in sorted((p for p in directory.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        m = _NAME.match(path.name)
        if not m:
            raise ConfigError(f"{path}: migration files are named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise ConfigError(f"{path}: version {version} also used by {found[version].path.name}")
        found[version] = Migration(m.group(2), path, path.read_text(encoding="utf-8"), version=version)
    return [found[v] for v in sorted(found)]


def discover_repeatables(directory: Path | Traversable | None = None) -> list[Repeatable]:
    """The files of ``directory/repeatable`` in name order (none when the folder is absent)."""
    directory = sql_dir() if directory is None else directory
    folder = directory / REPEATABLE_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        m = _REPEATABLE_NAME.match(path.name)
        if not m:
            raise ConfigError(f"{path}: repeatable files are named name.sql (lower case, digits, _)")
        found.append(Repeatable(m.group(1), path, path.read_text(encoding="utf-8")))
    return found


def load(directory: Path | Traversable | None = None) -> Schema:
    """The versioned and repeatable files of ``directory`` (default :func:`sql_dir`)."""
    directory = sql_dir() if directory is None else directory
    return Schema(discover(directory), discover_repeatables(directory))


async def upgrade(conn: asyncpg.Connection, schema: Schema | list[Migration] | None = None) -> list[Migration]:
    """Apply pending migrations, then the repeatables when needed, on a dedicated (non-pooled) connection.

    Returns the versioned migrations applied now. ``schema`` defaults to :func:`load`; a plain list means
    those versioned files and no repeatables.
    """
    if schema is None:
        schema = load()
    elif isinstance(schema, list):
        schema = Schema(schema, [])
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await _bookkeeping(conn)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        for mig in schema.migrations:
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
        await _apply_repeatables(conn, schema.repeatables, force=bool(applied_now))
        await partitions.maintain(conn)  # this month's and the next months' partitions (sql/1703)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now


async def _bookkeeping(conn: asyncpg.Connection) -> None:
    """Create the runner's tables on a fresh database; refuse one the pre-squash history migrated.

    Both tables are created in one transaction, so ``schema_migrations`` without ``schema_repeatables``
    can only be the work of the runner from before the baseline.
    """
    async with conn.transaction():
        if await conn.fetchval(
            "SELECT to_regclass('schema_migrations') IS NOT NULL AND to_regclass('schema_repeatables') IS NULL"
        ):
            raise ConfigError(PRE_SQUASH)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now());
               CREATE TABLE IF NOT EXISTS schema_repeatables (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )


async def _apply_repeatables(conn: asyncpg.Connection, repeatables: list[Repeatable], *, force: bool) -> None:
    """Re-apply every repeatable file when one changed (or ``force``); forget the rows of removed files."""
    recorded = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_repeatables")}
    current = {r.name: r.checksum for r in repeatables}
    gone = sorted(set(recorded) - set(current))
    if gone:
        # what they created stays until a versioned migration drops it (docs/schema.md)
        await conn.execute("DELETE FROM schema_repeatables WHERE name = ANY($1::text[])", gone)
        log.info("repeatable files removed", names=gone)
    if not force and recorded.keys() >= current.keys() and all(recorded[n] == c for n, c in current.items()):
        return
    for rep in repeatables:
        async with conn.transaction():
            await conn.execute(rep.sql)
            await conn.execute(
                """INSERT INTO schema_repeatables (name, checksum) VALUES ($1, $2)
                   ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()""",
                rep.name,
                rep.checksum,
            )
    log.info("repeatable files applied", count=len(repeatables))
