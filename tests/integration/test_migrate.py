"""Migrations: in order, idempotent, serialised by the advisory lock, edits to applied files refused;
repeatable files re-applied when one changes or a versioned file was applied; a pre-squash database refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from polling import eventually

from pbx_sla.errors import ConfigError
from pbx_sla.store import migrate


async def test_upgrade_twice_changes_nothing(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        first = await migrate.upgrade(conn)
        assert [m.version for m in first] == [m.version for m in migrate.discover()]
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        repeatables = await conn.fetch("SELECT name, checksum, applied_at FROM schema_repeatables ORDER BY name")
        assert [r["name"] for r in repeatables] == [r.name for r in migrate.discover_repeatables()]
        second = await migrate.upgrade(conn)
        assert second == []
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == tables
        # nothing changed: the repeatables were not applied again
        assert (
            await conn.fetch("SELECT name, checksum, applied_at FROM schema_repeatables ORDER BY name") == repeatables
        )
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
        repeatables = await conns[0].fetchval("SELECT count(*) FROM schema_repeatables")
        assert repeatables == len(migrate.discover_repeatables())
    finally:
        for c in conns:
            await c.close()


async def test_lock_blocks_a_second_runner(empty_dsn: str) -> None:
    holder = await asyncpg.connect(empty_dsn)
    runner = await asyncpg.connect(empty_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrate.LOCK_KEY)
        task = asyncio.create_task(migrate.upgrade(runner))
        waiting = "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        await eventually(lambda: holder.fetchval(waiting), what="upgrade waiting for the advisory lock")
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


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


_TABLE = "CREATE TABLE t (x int NOT NULL); INSERT INTO t VALUES (1), (2), (3);"
_VIEW = "CREATE OR REPLACE VIEW t_sum AS SELECT sum(x) AS s FROM t;"


async def test_a_changed_repeatable_is_applied_again(empty_dsn: str, tmp_path: Path) -> None:
    folder = _write(tmp_path, {"0001_t.sql": _TABLE, "repeatable/t_sum.sql": _VIEW})
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn, migrate.load(folder))
        assert await conn.fetchval("SELECT s FROM t_sum") == 6
        _write(folder, {"repeatable/t_sum.sql": "CREATE OR REPLACE VIEW t_sum AS SELECT sum(x) * 10 AS s FROM t;"})
        assert await migrate.upgrade(conn, migrate.load(folder)) == []
        assert await conn.fetchval("SELECT s FROM t_sum") == 60
        checksum = await conn.fetchval("SELECT checksum FROM schema_repeatables WHERE name = 't_sum'")
        assert checksum == migrate.discover_repeatables(folder)[0].checksum
    finally:
        await conn.close()


async def test_a_versioned_migration_that_recreates_a_table_gets_its_views_back(empty_dsn: str, tmp_path) -> None:
    """The repeatables are re-applied after any versioned file, unchanged or not: a migration may drop
    the views on a table it replaces (CASCADE) and count on the runner to restore them."""
    folder = _write(tmp_path, {"0001_t.sql": _TABLE, "repeatable/t_sum.sql": _VIEW})
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn, migrate.load(folder))
        _write(
            folder,
            {"0002_t_bigint.sql": "DROP TABLE t CASCADE; CREATE TABLE t (x bigint NOT NULL); INSERT INTO t VALUES (5)"},
        )
        assert [m.version for m in await migrate.upgrade(conn, migrate.load(folder))] == [2]
        assert await conn.fetchval("SELECT s FROM t_sum") == 5
    finally:
        await conn.close()


async def test_a_failing_repeatable_rolls_back_and_is_tried_again(empty_dsn: str, tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {"0001_t.sql": _TABLE, "repeatable/a_sum.sql": _VIEW, "repeatable/b_bad.sql": "CREATE VIEW b AS SELECT nope;"},
    )
    conn = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrate.upgrade(conn, migrate.load(folder))
        # the versioned file and the good repeatable stay applied; the bad one recorded nothing
        assert await conn.fetchval("SELECT array_agg(version) FROM schema_migrations") == [1]
        assert await conn.fetchval("SELECT array_agg(name) FROM schema_repeatables") == ["a_sum"]
        assert await conn.fetchval("SELECT to_regclass('b')") is None
        _write(folder, {"repeatable/b_bad.sql": "CREATE OR REPLACE VIEW b AS SELECT s + 1 AS s FROM t_sum;"})
        assert await migrate.upgrade(conn, migrate.load(folder)) == []
        assert await conn.fetchval("SELECT s FROM b") == 7
    finally:
        await conn.close()


async def test_a_removed_repeatable_is_forgotten(empty_dsn: str, tmp_path: Path) -> None:
    folder = _write(tmp_path, {"0001_t.sql": _TABLE, "repeatable/t_sum.sql": _VIEW})
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn, migrate.load(folder))
        (folder / "repeatable" / "t_sum.sql").unlink()
        _write(folder, {"0002_drop_view.sql": "DROP VIEW t_sum;"})
        await migrate.upgrade(conn, migrate.load(folder))
        assert await conn.fetchval("SELECT count(*) FROM schema_repeatables") == 0
        assert await conn.fetchval("SELECT to_regclass('t_sum')") is None
    finally:
        await conn.close()


async def test_a_database_of_the_pre_squash_history_is_refused(empty_dsn: str) -> None:
    """The runner before the baseline kept only schema_migrations (versions 1-40 of other files): such a
    database is refused with what to do, and left as it was."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await conn.execute(
            """CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                   checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
               INSERT INTO schema_migrations (version, name, checksum)
               VALUES (1, 'catalogue', 'x'), (10, 'ami_sessions', 'y'), (26, 'calls_leg_fingerprints', 'z');
               CREATE TABLE servers (name text PRIMARY KEY)"""
        )
        with pytest.raises(ConfigError, match=r"before the schema was squashed.*pbx-sla db upgrade"):
            await migrate.upgrade(conn)
        assert await conn.fetchval("SELECT to_regclass('schema_repeatables')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 3
        assert await conn.fetchval("SELECT to_regclass('calls')") is None
        # and the lock was released: another session can take it at once
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", migrate.LOCK_KEY)
    finally:
        await conn.close()


def test_badly_named_repeatable_is_named(tmp_path: Path) -> None:
    _write(tmp_path, {"repeatable/Bad-Name.sql": ""})
    with pytest.raises(ConfigError, match=r"Bad-Name\.sql"):
        migrate.discover_repeatables(tmp_path)


def test_the_migrations_are_read_from_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PBX_SLA_SQL_DIR the files come from package pbx_sla.sql (importlib.resources), which the
    wheel carries too (tests/integration/test_wheel.py)."""
    monkeypatch.delenv("PBX_SLA_SQL_DIR", raising=False)
    assert Path(str(migrate.sql_dir())) == Path(__file__).resolve().parents[2] / "sql"
    assert [m.name for m in migrate.discover()][:1] == ["catalogue"]
