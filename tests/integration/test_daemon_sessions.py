"""The ami_sessions sink: upsert by (server, session_id), several updates of one session in one batch,
replays and reordering change nothing, a known time never goes back to NULL."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from pbx_sla.ami.sessions import AmiSessionSink, close_dangling


def t(minute: int, second: int = 0) -> str:
    return datetime(2026, 11, 23, 10, minute, second, tzinfo=UTC).isoformat()


BASE = {"server": "pbx1", "session_id": "s1", "login_at": t(0)}
RESYNCED = {**BASE, "resynced_at": t(0, 2)}
SEEN = {**RESYNCED, "last_seen_at": t(5)}
LOST = {**SEEN, "lost_at": t(7), "lost_reason": "connection-lost"}


async def row(db: asyncpg.Connection) -> dict:
    return dict(await db.fetchrow("SELECT * FROM ami_sessions WHERE server = 'pbx1' AND session_id = 's1'"))


async def test_one_batch_with_every_step_of_a_session(db: asyncpg.Connection) -> None:
    async with db.transaction():
        await AmiSessionSink().write(db, [BASE, RESYNCED, SEEN, LOST])
    r = await row(db)
    assert r["resynced_at"].isoformat() == t(0, 2) and r["last_seen_at"].isoformat() == t(5)
    assert r["lost_at"].isoformat() == t(7) and r["lost_reason"] == "connection-lost"


async def test_replayed_and_reordered_batches_change_nothing(db: asyncpg.Connection) -> None:
    sink = AmiSessionSink()
    for batch in ([LOST], [BASE], [SEEN, RESYNCED], [LOST, BASE]):
        async with db.transaction():
            await sink.write(db, batch)
    r = await row(db)
    assert (r["login_at"].isoformat(), r["resynced_at"].isoformat(), r["lost_at"].isoformat()) == (t(0), t(0, 2), t(7))
    assert r["last_seen_at"].isoformat() == t(5) and r["lost_reason"] == "connection-lost"
    assert await db.fetchval("SELECT count(*) FROM ami_sessions") == 1


async def test_last_seen_only_moves_forward_and_dangling_sessions_close_there(db: asyncpg.Connection) -> None:
    sink = AmiSessionSink()
    async with db.transaction():
        await sink.write(db, [{**RESYNCED, "last_seen_at": t(9)}])
    async with db.transaction():
        await sink.write(db, [{**RESYNCED, "last_seen_at": t(6)}])  # an older heartbeat replayed late
    assert (await row(db))["last_seen_at"].isoformat() == t(9)
    assert await close_dangling(db, ["other"]) == 0
    assert await close_dangling(db, ["pbx1"]) == 1
    r = await row(db)
    assert r["lost_at"].isoformat() == t(9) and r["lost_reason"] == "daemon-crashed"
    coverage = await db.fetchrow("SELECT known_from, known_to, live FROM ami_coverage")
    assert (coverage["known_from"].isoformat(), coverage["known_to"].isoformat(), coverage["live"]) == (
        t(0, 2),
        t(9),
        False,
    )


async def test_a_time_without_offset_is_refused(db: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="offset"):
        await AmiSessionSink().write(db, [{**BASE, "login_at": "2026-11-23T10:00:00"}])
