"""Migrations: in order, idempotent, serialised by the advisory lock, edits to applied files refused."""

from __future__ import annotations

import asyncio
from datetime import date

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


async def _database_before(conn: asyncpg.Connection, version: int) -> None:
    """The schema as it was before migration ``version``, with the catalogue's settings and server pbx1."""
    await migrate.upgrade(conn, [m for m in migrate.discover() if m.version < version])
    await conn.execute("INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420')")
    await conn.execute("INSERT INTO servers (name) VALUES ('pbx1')")


async def test_0025_recomputes_the_calls_an_interrupted_0024_import_left_pending(empty_dsn: str) -> None:
    """An import of the 0024 design could die after committing legs whose calls were only queued in
    calls_pending; 0025 recomputes those calls before dropping the queue."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await _database_before(conn, 25)
        fp = "00000000-0000-0000-0000-00000000000"
        legs = [  # fingerprint, start, end, billsec, disposition
            (f"{fp}1", "2026-03-10 08:00:00+00", "2026-03-10 08:00:20+00", 0, "BUSY"),
            (f"{fp}2", "2026-03-10 08:00:30+00", "2026-03-10 08:02:10+00", 95, "ANSWERED"),
        ]
        for fingerprint, start, end, billsec, disposition in legs:
            await conn.execute(
                """INSERT INTO cdr_legs (server, fingerprint, call_key, source, start_at, end_at, duration, billsec,
                                         disposition, linkedid)
                   VALUES ('pbx1', $1::uuid, '1773129600.7', 'csv', $2::text::timestamptz, $3::text::timestamptz,
                           $4 + 5, $4, $5, '1773129600.7')""",
                fingerprint,
                start,
                end,
                billsec,
                disposition,
            )
        batch = "11111111-1111-1111-1111-111111111111"
        await conn.execute(
            "INSERT INTO calls_pending (batch, server, call_key) VALUES ($1::uuid, 'pbx1', '1773129600.7')", batch
        )
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0

        await migrate.upgrade(conn)
        call = await conn.fetchrow("SELECT legs, disposition, billsec, day FROM calls WHERE call_key = '1773129600.7'")
        assert dict(call) == {"legs": 2, "disposition": "ANSWERED", "billsec": 95, "day": date(2026, 3, 10)}
        usage = await conn.fetchrow("SELECT calls, answered, busy, billsec FROM usage_daily")
        assert dict(usage) == {"calls": 1, "answered": 1, "busy": 0, "billsec": 95}
        assert await conn.fetchval("SELECT to_regclass('calls_pending')") is None
    finally:
        await conn.close()


_STAGE = """CREATE TEMP TABLE IF NOT EXISTS cdr_legs_stage (
    server text, fingerprint uuid, call_key text, accountcode text, src text, dst text, dcontext text, clid text,
    channel text, dstchannel text, lastapp text, lastdata text, start_epoch bigint, answer_epoch bigint,
    end_epoch bigint, duration integer, billsec integer, disposition text, amaflags text, uniqueid text,
    userfield text, peeraccount text, linkedid text, sequence integer, src_endpoint text, dst_endpoint text,
    caller_e164 text, dialled_e164 text) ON COMMIT DELETE ROWS"""


async def test_0026_lists_the_legs_of_existing_calls_and_later_legs_find_them(empty_dsn: str) -> None:
    """0026 fills calls.leg_fingerprints from the stored legs (the cdr_legs_call index then goes); a leg
    stored after the upgrade finds its call's older legs through that list."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await _database_before(conn, 26)
        fp = "00000000-0000-0000-0000-00000000000"
        legs = [  # fingerprint, start (epoch), billsec, disposition; 1773129600 = 2026-03-10 08:00:00Z
            (f"{fp}1", 1773129600, 0, "BUSY"),
            (f"{fp}2", 1773129630, 95, "ANSWERED"),
            (f"{fp}3", 1773129700, 30, "ANSWERED"),
        ]

        async def store(leg: tuple, *fresh: bool) -> None:
            fingerprint, start, billsec, disposition = leg
            async with conn.transaction():
                await conn.execute(_STAGE)
                await conn.execute(
                    """INSERT INTO cdr_legs_stage (server, fingerprint, call_key, start_epoch, end_epoch, duration,
                                                   billsec, disposition, linkedid)
                       VALUES ('pbx1', $1::uuid, 'k1', $2::bigint, $2::bigint + $3::int + 5, $3::int + 5, $3::int,
                               $4, 'k1')""",
                    fingerprint,
                    start,
                    billsec,
                    disposition,
                )
                placeholders = ", ".join(f"${i + 2}" for i in range(len(fresh)))
                await conn.fetchval(f"SELECT cdr_store_stage($1{', ' if fresh else ''}{placeholders})", "csv", *fresh)

        await store(legs[0])
        await store(legs[1])
        assert await conn.fetchval("SELECT legs FROM calls WHERE call_key = 'k1'") == 2

        await migrate.upgrade(conn)
        stored = await conn.fetchval("SELECT leg_fingerprints FROM calls WHERE call_key = 'k1'")
        assert sorted(str(f) for f in stored) == [legs[0][0], legs[1][0]]
        assert await conn.fetchval("SELECT to_regclass('cdr_legs_call')") is None

        await store(legs[2], True)
        call = await conn.fetchrow(
            "SELECT legs, disposition, billsec, leg_fingerprints FROM calls WHERE call_key = 'k1'"
        )
        assert (call["legs"], call["disposition"], call["billsec"]) == (3, "ANSWERED", 125)
        assert sorted(str(f) for f in call["leg_fingerprints"]) == [leg[0] for leg in legs]
        usage = await conn.fetchrow("SELECT calls, answered, busy, billsec FROM usage_daily")
        assert dict(usage) == {"calls": 1, "answered": 1, "busy": 0, "billsec": 125}
    finally:
        await conn.close()


async def _stage_leg(conn: asyncpg.Connection, server: str, fingerprint: str, start: int) -> None:
    """What a writer of any version does in its transaction: register the server, stage a leg of call
    'k1' (30 s answered), store it with cdr_store_stage('csv')."""
    await conn.execute("INSERT INTO servers (name) VALUES ($1) ON CONFLICT DO NOTHING", server)
    await conn.execute(_STAGE)
    await conn.execute(
        """INSERT INTO cdr_legs_stage (server, fingerprint, call_key, start_epoch, end_epoch, duration, billsec,
                                       disposition, linkedid)
           VALUES ($1, $2::uuid, 'k1', $3::bigint, $3::bigint + 35, 35, 30, 'ANSWERED', 'k1')""",
        server,
        fingerprint,
        start,
    )
    await conn.fetchval("SELECT cdr_store_stage('csv')")


async def test_0026_waits_for_writers_under_way_and_holds_new_ones_back(empty_dsn: str) -> None:
    """A writer of the previous version inside its transaction when the upgrade starts: 0026 waits for it
    to commit; a writer starting meanwhile waits for 0026 and then uses the new function. Without that
    the two deadlock, or the late writer stores a call without its leg list (review of 0026)."""
    conns = [await asyncpg.connect(empty_dsn) for _ in range(3)]
    migrator, early, late = conns
    try:
        await _database_before(migrator, 26)
        fp = "00000000-0000-0000-0000-00000000000"
        under_way = early.transaction()
        await under_way.start()
        await _stage_leg(early, "pbx1", f"{fp}1", 1773129600)

        upgrade = asyncio.create_task(migrate.upgrade(migrator))
        await asyncio.sleep(0.5)
        assert not upgrade.done()  # waits for the writer under way

        async def late_writer() -> None:
            async with late.transaction():
                await _stage_leg(late, "pbx2", f"{fp}2", 1773129700)

        second = asyncio.create_task(late_writer())
        await asyncio.sleep(0.5)
        assert not second.done()  # waits for the upgrade
        await under_way.commit()
        await asyncio.wait_for(upgrade, 30)
        await asyncio.wait_for(second, 30)

        async with early.transaction():
            await _stage_leg(early, "pbx1", f"{fp}3", 1773129800)  # a second leg of pbx1's call
        calls = {
            r["server"]: (r["legs"], r["billsec"], sorted(str(f) for f in r["leg_fingerprints"]))
            for r in await migrator.fetch("SELECT server, legs, billsec, leg_fingerprints FROM calls")
        }
        assert calls == {"pbx1": (2, 60, [f"{fp}1", f"{fp}3"]), "pbx2": (1, 30, [f"{fp}2"])}
        assert await migrator.fetchval("SELECT sum(calls) FROM usage_daily") == 2
    finally:
        for conn in conns:
            await conn.close()
