"""Issue 13: the data directory is 0700 and its files 0600 (catalogue cache, spool segments, dead letters,
status.json, the classic AGI spool); wider modes left by older versions are narrowed at start."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import stat
from pathlib import Path

import pytest

from pbx_sla.agi import classic
from pbx_sla.log import setup_logging
from pbx_sla.pipeline import Record
from pbx_sla.private_files import tighten_data_dir
from pbx_sla.service import write_status
from pbx_sla.store.catalogue_watch import CatalogueWatch
from pbx_sla.store.writer import DEAD_LETTER, DurableWriter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _wide_umask():
    setup_logging("info", json=True, stream=io.StringIO())
    old = os.umask(0o022)  # the usual umask, under which files were 0644 and directories 0755
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class RefusingSink:
    kind = "a"

    async def write(self, conn, items) -> None:
        raise ValueError("refused")


async def test_spool_segments_dead_letters_and_the_spool_dir_are_private(tmp_path: Path) -> None:
    async def down():
        raise ConnectionRefusedError("down")

    spool = tmp_path / "data" / "spool"
    writer = DurableWriter("postgresql://unused", [RefusingSink()], spool, pool_factory=down, max_backoff=0.05)
    writer.start()
    for n in range(10):
        writer.submit(Record("a", {"n": n}))
    await writer.close(timeout=0.2)  # database down: everything goes to a segment
    (segment,) = [p for p in spool.glob("*.jsonl")]
    assert mode(spool) == 0o700 and mode(segment) == 0o600
    writer._dead_letter("a", {"n": 1}, "test")
    assert mode(spool / DEAD_LETTER) == 0o600


def test_status_json_is_private(tmp_path: Path) -> None:
    write_status(tmp_path / "status.json", {"pid": 1})
    assert mode(tmp_path / "status.json") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_catalogue_cache_is_private(tmp_path: Path) -> None:
    watch = CatalogueWatch(data_dir=tmp_path / "data")
    watch._write_cache(1, "0" * 64, {"tenants": []})
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "catalogue-cache.json") == 0o600


def test_the_classic_agi_spool_is_private(tmp_path: Path) -> None:
    classic.spool(tmp_path, [{"uniqueid": "1.1"}])
    directory = tmp_path / "classic-agi-spool"
    (file,) = directory.glob("*.json")
    assert mode(directory) == 0o700 and mode(file) == 0o600


def test_wider_modes_are_narrowed_at_start_but_not_postgres(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "spool").mkdir(parents=True)
    (data / "postgres").mkdir()
    for name in ("catalogue-cache.json", "status.json", "spool/00000000001000000000.jsonl", "spool/dead-letter.jsonl"):
        (data / name).write_text("{}")
        os.chmod(data / name, 0o644)
    os.chmod(data, 0o755)
    os.chmod(data / "spool", 0o755)
    os.chmod(data / "postgres", 0o750)
    (data / "postgres" / "PG_VERSION").write_text("16")
    os.chmod(data / "postgres" / "PG_VERSION", 0o644)
    changed = tighten_data_dir(data)
    assert mode(data) == 0o700 and mode(data / "spool") == 0o700
    for name in ("catalogue-cache.json", "status.json", "spool/00000000001000000000.jsonl", "spool/dead-letter.jsonl"):
        assert mode(data / name) == 0o600, name
    assert mode(data / "postgres") == 0o750 and mode(data / "postgres" / "PG_VERSION") == 0o644
    assert len(changed) == 6 and (str(data), "0755", "0700") in changed
    assert tighten_data_dir(data) == []  # idempotent


def test_a_shared_setgid_data_dir_keeps_group_read_and_a_group_writable_classic_spool(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o2775)
    (data / "catalogue-cache.json").write_text("{}")
    os.chmod(data / "catalogue-cache.json", 0o666)
    tighten_data_dir(data)
    assert mode(data) == 0o2750 and mode(data / "catalogue-cache.json") == 0o640
    classic.spool(data, [{"uniqueid": "1.1"}])
    (file,) = (data / "classic-agi-spool").glob("*.json")
    assert mode(data / "classic-agi-spool") == 0o2770 and mode(file) == 0o640


async def test_the_daemon_narrows_the_data_dir_at_start_and_says_so(tmp_path: Path) -> None:
    """A daemon started against an unreachable database still tightens its data directory first."""
    from pbx_sla.config import Secret, Settings
    from pbx_sla.service import Daemon

    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    (data / "catalogue-cache.json").write_text("not json")
    os.chmod(data / "catalogue-cache.json", 0o644)
    stream = io.StringIO()
    setup_logging("info", json=True, stream=stream)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = Secret("postgresql://nobody@127.0.0.1:1/none")
    settings = Settings(config_file=None, dsn=dsn, data_dir=data, agi_port=port)
    daemon = Daemon(settings, writer_options={"max_backoff": 0.05})
    task = asyncio.create_task(daemon.run())
    for _ in range(200):
        if daemon.state == "running":
            break
        await asyncio.sleep(0.02)
    daemon.stop_event.set()
    assert await asyncio.wait_for(task, 30) == 0
    assert mode(data) == 0o700 and mode(data / "catalogue-cache.json") == 0o600
    assert mode(data / "status.json") == 0o600
    assert "modes of the data directory tightened" in stream.getvalue()
