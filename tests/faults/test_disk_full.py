"""The daemon (a real process) with its database down and its data directory on a full disk (a 3 MB tmpfs
mounted for the test): memory stops at ``max_memory`` by back-pressure, no torn segment stays, status.json
stays current, and every record lands once the database is back (issue 13: RSS grew to 393 MB, a torn
segment stayed on disk, status said "daemon hung" for minutes after everything drained)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbx_sla.ami.fake import FakeAmi

from .harness import SECRET, DaemonProcess, Producer, report, stored, until, write_config

RATE = 500  # event pairs a second
MAX_MEMORY = 5000


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "data"
    mount.mkdir(mode=0o700)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def ami():
    server = await FakeAmi(secret=SECRET).start()
    yield server
    await server.close()


def age(status: dict) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(status["updated_at"])).total_seconds()


async def test_disk_full_with_the_database_down(private_pg, ami: FakeAmi, small_disk: Path, tmp_path: Path) -> None:
    dsn = private_pg.dsn
    config = write_config(tmp_path / "pbx-sla.toml", ami.port, max_memory=MAX_MEMORY)
    daemon = await DaemonProcess(config, small_disk, dsn, tmp_path / "daemon.log").start()
    peak_rss = 0
    try:
        await until(lambda: ami.logins >= 1, 30, "daemon logged in")
        producer = Producer(ami, RATE).start()
        await until(lambda: _some_stored(dsn), 30, "records stored before the outage")
        rss_before = daemon.rss_kib()
        await asyncio.to_thread(private_pg.stop)
        await until(lambda: daemon.status().get("writer", {}).get("state") == "full", 60, "writer full")
        full_since = asyncio.get_running_loop().time()
        await asyncio.sleep(1)
        events_before = daemon.status()["servers"][0]["events"]
        for _ in range(30):  # 6 s with a full disk and the database down
            peak_rss = max(peak_rss, daemon.rss_kib())
            await asyncio.sleep(0.2)
        held = daemon.status()
        held_age = age(held)
        torn = [p.name for p in (small_disk / "spool").glob("0*.jsonl") if not p.read_bytes().endswith(b"\n")]
        spool_bytes = sum(p.stat().st_size for p in (small_disk / "spool").glob("*.jsonl"))
        read_while_held = held["servers"][0]["events"] - events_before
        await asyncio.to_thread(private_pg.start)
        drained_at = None
        await until(lambda: _all_stored(dsn, producer.sent), 90, "every record stored after the outage")
        sent = await producer.stop()
        await until(lambda: _all_stored(dsn, sent), 60, "the last records stored")
        drained_at = asyncio.get_running_loop().time()
        await until(lambda: _settled(daemon.status()), 10, "status says database up, state ok, nothing spooled")
        settled_after = asyncio.get_running_loop().time() - drained_at
        after = daemon.status()
        obs, legs = await stored(dsn)
        assert await daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.returncode is None:
            await daemon.kill()
    writer = held.get("writer", {})
    line = report("disk-full-db-down", expected_pairs=sent, observations=obs, cdr_legs=legs,
                  rss_before_kib=rss_before, peak_rss_while_full_kib=peak_rss, max_memory=MAX_MEMORY,
                  memory_while_full=writer.get("memory"), spool_bytes=spool_bytes, torn_segments=len(torn),
                  events_read_while_full=read_while_held, status_age_while_full_s=round(held_age, 1),
                  status_settled_after_drain_s=round(settled_after, 1),
                  full_for_s=round(drained_at - full_since, 1))  # fmt: skip
    assert (obs, legs) == (sent, sent), line  # nothing lost, nothing twice
    assert writer.get("state") == "full" and "No space left" in (writer.get("spool_error") or ""), line
    assert writer.get("memory", 10**9) <= MAX_MEMORY + 2 * 1000, line  # one AMI read past the mark at most
    assert held["servers"][0]["reading_paused"] is True, line
    assert read_while_held < 1000, line  # the daemon stopped reading AMI (at most one read's worth)
    assert held_age < 6, line  # status.json kept current on the full disk
    assert torn == [], line
    assert peak_rss - rss_before < 60 * 1024, line  # 5,000 records, not an unbounded queue
    assert after["writer"]["database"] == "up" and after["writer"]["state"] == "ok", line
    assert "back-pressure" in daemon.log_text()


async def _some_stored(dsn: str) -> bool:
    return sum(await stored(dsn)) > 0


async def _all_stored(dsn: str, sent: int) -> bool:
    return await stored(dsn) == (sent, sent)


def _settled(status: dict) -> bool:
    writer = status.get("writer", {})
    return (
        writer.get("database") == "up"
        and writer.get("state") == "ok"
        and writer.get("spooled") == 0
        and writer.get("memory", 1) < 1000
        and age(status) < 5
    )
