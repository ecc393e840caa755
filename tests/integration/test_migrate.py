"""Migrations: in order, idempotent, serialised by the advisory lock, edits to applied files refused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from pbx_sla.errors import ConfigError
from pbx_sla.store import migrate


async def test_upgrade_twice_changes_nothing(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        first = await migrate.upgrade(conn)
        assert [m.version for m in first] == [m.version for m in migrate.discover()]
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        second = await migrate.upgrade(conn)
        assert second == []
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == tables
    finally:
        await conn.close()


async def test_two_upgrades_racing_apply_each_migration_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.upgrade(c) for c in conns))
        applied = sorted(m.version for r in results for m in r)
        assert applied == [m.version for m in migrate.discover()]
        rows = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert rows == len(applied)
    finally:
        for c in conns:
            await c.close()


async def test_lock_blocks_a_second_runner(empty_dsn: str) -> None:
    holder = await asyncpg.connect(empty_dsn)
    runner = await asyncpg.connect(empty_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrate.LOCK_KEY)
        task = asyncio.create_task(migrate.upgrade(runner))
        await asyncio.sleep(0.3)
        assert not task.done(), "upgrade must wait for the advisory lock"
        await holder.execute("SELECT pg_advisory_unlock($1)", migrate.LOCK_KEY)
        assert await asyncio.wait_for(task, 30)
    finally:
        await holder.close()
        await runner.close()


async def test_edited_applied_migration_is_refused(empty_dsn: str, tmp_path) -> None:
    (tmp_path / "0001_one.sql").write_text("CREATE TABLE one (x int);")
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn, migrate.discover(tmp_path))
        (tmp_path / "0001_one.sql").write_text("CREATE TABLE one (x bigint);")
        with pytest.raises(ConfigError, match=r"0001_one\.sql"):
            await migrate.upgrade(conn, migrate.discover(tmp_path))
    finally:
        await conn.close()


async def test_failed_migration_rolls_back_and_records_nothing(empty_dsn: str, tmp_path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (x int); SELECT nope FROM nowhere;")
    conn = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrate.upgrade(conn, migrate.discover(tmp_path))
        assert await conn.fetchval("SELECT array_agg(version) FROM schema_migrations") == [1]
        assert await conn.fetchval("SELECT to_regclass('half')") is None
    finally:
        await conn.close()


def test_badly_named_file_is_named(tmp_path) -> None:
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(ConfigError, match=r"1_x\.sql"):
        migrate.discover(tmp_path)
