"""The daemon's replay of the classic AGI script's spool: records written by the script's own ``spool()``
land in ``support_calls`` once, their files are deleted only after the commit, the database away keeps
them, a bad file is set aside, and ``features.support.start`` runs the replay."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from polling import eventually

from pbx_sla.agi import classic
from pbx_sla.agi.classic_spool import db_writer, read_batch, replay_forever, replay_once, spool_directory
from pbx_sla.config import Secret, Settings
from pbx_sla.features import ServiceContext

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DOWN = "postgresql://nobody@127.0.0.1:1/none"


@pytest.fixture(scope="module")
def script():
    """The classic AGI script's module: its own ``spool()`` writes the files."""
    return classic


def record(n: int, **over) -> dict:
    """A classic script record (the fields record_data writes), one per n."""
    data = {
        "uniqueid": f"1795454100.{n}", "linkedid": f"1795454100.{n}", "server": "pbx1",
        "caller": f"+42077700000{n}", "caller_e164": f"+42077700000{n}", "caller_name": "Jana",
        "channel": f"PJSIP/anonymous-{n:08x}", "dialled": "+420221000111", "tenant": "acme",
        "requester": "Jana Novakova", "authorised": True, "in_hours": True, "tier": "tier3", "action": "queue",
        "reason": "authorised-number", "queue": "support-premium", "priority": 5,
        "decided_at": (T0 + timedelta(seconds=n)).isoformat(), "latency_ms": 1.5 + n, "pin_attempts": 0,
        "via": "classic",
    }  # fmt: skip
    data.update(over)
    return data


async def stored(db: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    return {r["uniqueid"]: r for r in await db.fetch("SELECT * FROM support_calls")}


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def test_replay_stores_spooled_records_once_and_deletes_their_files(script, db_dsn, db, tmp_path):
    directory = spool_directory(tmp_path)
    script.spool(tmp_path, [record(1), record(2), record(3, action="closed", queue=None, reason="out-of-hours")])
    (directory / "100-1.json").write_text("{not json", encoding="utf-8")
    (directory / "101-1.json").write_text("[1, 2]", encoding="utf-8")
    (directory / ".102-1.tmp").write_text("{}", encoding="utf-8")  # a file being written: untouched

    assert await replay_once(directory, db_writer(db_dsn)) == 3
    rows = await stored(db)
    assert set(rows) == {"1795454100.1", "1795454100.2", "1795454100.3"}
    r = rows["1795454100.3"]
    assert (r["server"], r["tenant_id"], r["action"], r["reason"], r["queue"], r["via"]) == (
        "pbx1", "acme", "closed", "out-of-hours", None, "classic")  # fmt: skip
    assert r["decided_at"] == T0 + timedelta(seconds=3) and r["latency_ms"] == 4.5
    assert files(directory) == [".102-1.tmp", "100-1.bad", "101-1.bad"]

    # spooled again (a classic call that also stored it, a replay after a crash): still one row each
    script.spool(tmp_path, [record(1), record(2, action="general")])
    assert await replay_once(directory, db_writer(db_dsn)) == 2
    rows = await stored(db)
    assert len(rows) == 3 and rows["1795454100.2"]["action"] == "queue"  # the first record wins
    assert await replay_once(directory, db_writer(db_dsn)) == 0


async def test_database_away_keeps_every_file(script, tmp_path):
    script.spool(tmp_path, [record(1), record(2)])
    before = files(spool_directory(tmp_path))
    with pytest.raises((OSError, asyncpg.PostgresError, asyncio.TimeoutError)):
        await replay_once(spool_directory(tmp_path), db_writer(DOWN, timeout=2))
    assert files(spool_directory(tmp_path)) == before and len(before) == 2


async def test_a_refused_record_is_set_aside_the_others_stored(script, db_dsn, db, tmp_path):
    script.spool(tmp_path, [record(1), record(2, decided_at="yesterday"), record(3, latency_ms="fast")])
    directory = spool_directory(tmp_path)
    refused = sorted(directory.glob("*.json"))[1:]
    assert await replay_once(directory, db_writer(db_dsn)) == 1
    assert set(await stored(db)) == {"1795454100.1"}
    assert files(directory) == sorted(p.with_suffix(".bad").name for p in refused)


async def test_batches_are_bounded_and_oldest_first(script, db_dsn, db, tmp_path):
    script.spool(tmp_path, [record(n) for n in range(7)])
    good, bad = read_batch(spool_directory(tmp_path), limit=3)
    assert [d["uniqueid"] for _, d in good] == [f"1795454100.{n}" for n in range(3)] and bad == []
    assert await replay_once(spool_directory(tmp_path), db_writer(db_dsn), limit=3) == 3
    assert len(files(spool_directory(tmp_path))) == 4


async def test_periodic_replay_retries_until_the_database_answers(script, db_dsn, db, tmp_path):
    real = db_writer(db_dsn)
    calls = {"n": 0}

    async def flaky(items):
        calls["n"] += 1
        if calls["n"] <= 2:  # the database is away for the first two rounds
            raise ConnectionRefusedError("down")
        await real(items)

    script.spool(tmp_path, [record(1)])
    task = asyncio.create_task(replay_forever(spool_directory(tmp_path), flaky, interval=0.1))
    try:
        await eventually(lambda: db.fetchval("SELECT count(*) = 1 FROM support_calls"))
        assert calls["n"] >= 3
        script.spool(tmp_path, [record(2)])  # a later spooled record: the next round
        await eventually(lambda: db.fetchval("SELECT count(*) = 2 FROM support_calls"))
        await eventually(lambda: files(spool_directory(tmp_path)) == [])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_start_replays_the_spool(script, db_dsn, db, tmp_path):
    from pbx_sla.features import support

    data_dir = tmp_path / "data"
    script.spool(data_dir, [record(1), record(2)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(config_file=None, dsn=Secret(db_dsn), data_dir=data_dir, agi_port=port)

    class NoCatalogue:
        current = None

    ctx = ServiceContext(settings=settings, dsn=db_dsn, submit=lambda r: None, catalogue=NoCatalogue())
    tasks = await support.start(ctx)
    try:
        assert {t.get_name() for t in tasks} == {"fastagi", "classic-agi-spool"}
        await eventually(lambda: db.fetchval("SELECT count(*) = 2 FROM support_calls"))
        await eventually(lambda: files(spool_directory(data_dir)) == [])
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_spool_files_are_what_the_replay_reads(script, tmp_path):
    script.spool(tmp_path, [record(1)])
    [path] = spool_directory(tmp_path).glob("*.json")
    assert json.loads(path.read_text(encoding="utf-8")) == record(1)
