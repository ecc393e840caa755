"""The daemon (a real process) while its PostgreSQL goes away: every record lands once it is back, and a
``kill -9`` during the outage loses at most about a second of records (issue 13: it lost the whole outage)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pbx_sla.ami.fake import FakeAmi

from .harness import SECRET, DaemonProcess, Producer, report, stored, until, write_config

RATE = 500  # event pairs a second: 1,000 records a second


@pytest.fixture
async def ami():
    server = await FakeAmi(secret=SECRET).start()
    yield server
    await server.close()


async def test_database_outage_every_record_lands_once(private_pg, ami: FakeAmi, tmp_path: Path) -> None:
    dsn = private_pg.dsn
    daemon = await DaemonProcess(write_config(tmp_path / "pbx-sla.toml", ami.port), tmp_path / "data", dsn,
                                 tmp_path / "daemon.log").start()  # fmt: skip
    try:
        await until(lambda: ami.logins >= 1, 30, "daemon logged in")
        producer = Producer(ami, RATE).start()
        await until(lambda: _some_stored(dsn), 30, "records stored before the outage")
        await asyncio.to_thread(private_pg.stop)
        await asyncio.sleep(8)  # 8 s outage under load
        during = daemon.status().get("writer", {})
        await asyncio.to_thread(private_pg.start)
        await asyncio.sleep(2)
        sent = await producer.stop()
        await until(lambda: _all_stored(dsn, sent), 60, "every record stored after the outage")
        obs, legs = await stored(dsn)
        assert await daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.returncode is None:
            await daemon.kill()
    line = report("db-outage", expected_pairs=sent, observations=obs, cdr_legs=legs,
                  spooled_during_outage=during.get("spooled"), memory_during_outage=during.get("memory"))  # fmt: skip
    assert (obs, legs) == (sent, sent), line
    assert during.get("database") == "down" and during.get("spooled", 0) > 0, line
    assert during.get("memory", 10**9) < 3 * RATE * 2, line  # on disk, not waiting in memory


async def _some_stored(dsn: str) -> bool:
    return sum(await stored(dsn)) > 0


async def _all_stored(dsn: str, sent: int) -> bool:
    return await stored(dsn) == (sent, sent)


async def test_kill_9_while_the_database_is_down_loses_at_most_about_a_second(
    private_pg, ami: FakeAmi, tmp_path: Path
) -> None:
    dsn = private_pg.dsn
    config = write_config(tmp_path / "pbx-sla.toml", ami.port)
    daemon = await DaemonProcess(config, tmp_path / "data", dsn, tmp_path / "daemon.log").start()
    try:
        await until(lambda: ami.logins >= 1, 30, "daemon logged in")
        producer = Producer(ami, RATE).start()
        await until(lambda: _some_stored(dsn), 30, "records stored before the outage")
        await asyncio.to_thread(private_pg.stop)
        await asyncio.sleep(10)  # 10 s outage under load, then SIGKILL
        before_kill = daemon.status().get("writer", {})
        sent = producer.sent
        killed_at = time.monotonic()
        await daemon.kill()
        await producer.stop()  # what it writes between the kill and noticing it cannot be stored: not counted
    finally:
        if daemon.proc and daemon.proc.returncode is None:
            await daemon.kill()
    await asyncio.to_thread(private_pg.start)
    again = await DaemonProcess(config, tmp_path / "data", dsn, tmp_path / "daemon.log").start()
    try:
        # the restarted daemon replays the spool; wait until the count stops moving
        last, still = (-1, -1), 0
        while still < 3:
            await asyncio.sleep(1)
            now = await stored(dsn)
            still = still + 1 if now == last and not again.status().get("writer", {}).get("spooled") else 0
            last = now
            assert time.monotonic() - killed_at < 90, "replay did not settle"
        obs, legs = last
        assert await again.stop() == 0
    finally:
        if again.proc and again.proc.returncode is None:
            await again.kill()
    lost = (sent - obs, sent - legs)
    line = report("kill-9-db-down", expected_pairs=sent, observations=obs, cdr_legs=legs,
                  lost_observations=lost[0], lost_cdr_legs=lost[1], rate_per_s=2 * RATE,
                  spooled_at_kill=before_kill.get("spooled"), memory_at_kill=before_kill.get("memory"))  # fmt: skip
    assert obs <= sent and legs <= sent, line  # nothing invented
    # at most about a second of events (spill_after 1 s, spill every 0.25 s, plus what sat in socket buffers)
    assert max(lost) <= 1.5 * RATE, line
