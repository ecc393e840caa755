"""DurableWriter without PostgreSQL: a fake pool whose transactions commit or roll back, a sink that can be
made unreachable or made to refuse a value. Ordering, batching, spill to disk, replay, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import asyncpg
import pytest

from pbx_sla.log import setup_logging
from pbx_sla.pipeline import Record
from pbx_sla.store.writer import DEAD_LETTER, DurableWriter


@pytest.fixture(autouse=True)
def _logging():
    setup_logging("info", json=True, stream=io.StringIO())


class FakeConn:
    def __init__(self, db: FakeDb) -> None:
        self.db = db
        self.staged: list = []

    @contextlib.asynccontextmanager
    async def transaction(self):
        self.staged = []
        yield
        self.db.rows.extend(self.staged)  # commit only when the block did not raise


class FakeDb:
    """The 'database': committed rows, an up/down switch, batch sizes seen."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int]] = []
        self.up = True
        self.batches: list[int] = []
        self.pools = 0

    async def pool(self):
        if not self.up:
            raise ConnectionRefusedError("database down")
        self.pools += 1
        db = self

        class Pool:
            @contextlib.asynccontextmanager
            async def acquire(self):
                if not db.up:
                    raise ConnectionRefusedError("database down")
                yield FakeConn(db)

            async def close(self):
                return None

        return Pool()


class ListSink:
    def __init__(self, kind: str, db: FakeDb, refuse: set[int] | None = None) -> None:
        self.kind, self.db, self.refuse = kind, db, refuse or set()

    async def write(self, conn: FakeConn, items) -> None:
        if not self.db.up:
            raise ConnectionResetError("connection lost")
        self.db.batches.append(len(items))
        for item in items:
            if item["n"] in self.refuse:
                raise asyncpg.DataError("invalid input syntax")
            conn.staged.append((self.kind, item["n"]))


def make(db: FakeDb, spool: Path, **kw) -> DurableWriter:
    sinks = [ListSink("a", db, kw.pop("refuse", None)), ListSink("b", db)]
    options = {"batch_size": 100, "flush_interval": 0.01, "max_backoff": 0.05, **kw}
    return DurableWriter("postgresql://unused", sinks, spool, pool_factory=db.pool, **options)


async def until(predicate, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def segments(spool: Path) -> list[Path]:
    return sorted(p for p in spool.glob("*.jsonl") if p.name != DEAD_LETTER)


async def test_batches_per_kind_in_submission_order(tmp_path: Path) -> None:
    db = FakeDb()
    writer = make(db, tmp_path)
    writer.start()
    expected = []
    for n in range(1050):
        kind = "a" if n % 3 else "b"
        writer.submit(Record(kind, {"n": n}))
        expected.append((kind, n))
    await writer.close(5)
    assert sorted(db.rows, key=lambda r: r[1]) == expected
    for kind in "ab":  # per kind, in submission order
        assert [n for k, n in db.rows if k == kind] == [n for k, n in expected if k == kind]
    assert max(db.batches) <= 100 and len(db.batches) < 40  # batched, not row by row
    assert writer.backlog.total == 0 and writer.written == 1050
    assert segments(tmp_path) == []


async def test_unknown_kind_is_dropped_at_submit_and_logged(tmp_path: Path, caplog) -> None:
    db = FakeDb()
    writer = make(db, tmp_path)
    writer.submit(Record("nope", {"n": 1}))
    writer.submit(Record("a", {"n": 2}))
    assert writer.backlog.memory == 1
    writer.start()
    await writer.close(5)
    assert db.rows == [("a", 2)]
    assert "unknown kind" in caplog.text and "nope" in caplog.text


async def test_outage_keeps_records_spills_beyond_max_memory_and_replays_in_order(tmp_path: Path) -> None:
    db = FakeDb()
    db.up = False
    writer = make(db, tmp_path, max_memory=300, segment_records=250)
    writer.start()
    for n in range(1000):
        writer.submit(Record("a", {"n": n}))
        if n % 100 == 0:
            await asyncio.sleep(0.02)
    await until(lambda: writer.backlog.spooled == 700)
    assert writer.backlog.memory == 300
    files = segments(tmp_path)
    assert len(files) == 3  # 250 + 250 + 200, JSON lines
    first = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert first[0] == {"kind": "a", "data": {"n": 300}} and len(first) == 250
    assert db.rows == []
    db.up = True
    await until(lambda: writer.backlog.total == 0 and not segments(tmp_path))  # written, then removed
    assert [n for _, n in db.rows] == list(range(1000))
    # the spool is drained: new records go through memory again
    writer.submit(Record("a", {"n": 1000}))
    await writer.close(5)
    assert db.rows[-1] == ("a", 1000) and segments(tmp_path) == []


async def test_close_with_the_database_down_spools_everything_and_a_new_writer_replays_it(tmp_path: Path) -> None:
    db = FakeDb()
    db.up = False
    writer = make(db, tmp_path, max_memory=50, segment_records=40)
    writer.start()
    for n in range(120):
        writer.submit(Record("a" if n % 2 else "b", {"n": n}))
    await asyncio.sleep(0.1)
    await writer.close(0.3)
    assert writer.backlog == (0, 120)
    assert db.rows == []
    db.up = True
    again = make(db, tmp_path)
    assert again.backlog.spooled == 120  # found at start
    again.start()
    again.submit(Record("a", {"n": 120}))  # new records come after the replayed ones
    await again.close(5)
    assert sorted(n for _, n in db.rows) == list(range(121))  # each exactly once
    assert [n for k, n in db.rows if k == "a"] == [*range(1, 121, 2), 120]  # in order per kind
    assert [n for k, n in db.rows if k == "b"] == list(range(0, 120, 2))
    assert segments(tmp_path) == []


async def test_a_refused_record_goes_to_dead_letters_and_the_rest_lands(tmp_path: Path, caplog) -> None:
    db = FakeDb()
    writer = make(db, tmp_path, refuse={7})
    writer.start()
    for n in range(20):
        writer.submit(Record("a", {"n": n}))
    await writer.close(5)
    assert [n for _, n in db.rows] == [n for n in range(20) if n != 7]
    dead = [json.loads(line) for line in (tmp_path / DEAD_LETTER).read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["kind"] == "a" and dead[0]["data"] == {"n": 7}
    assert "DataError" in dead[0]["error"]
    assert writer.dead_letters == 1
    assert "record refused" in caplog.text and "'n': 7" in caplog.text


async def test_a_torn_spool_line_is_set_aside_and_the_rest_replayed(tmp_path: Path) -> None:
    seg = tmp_path / f"{10**12:020d}.jsonl"
    seg.write_text('{"kind":"a","data":{"n":1}}\n{"kind":"a","data":{"n":2}}\n{"kind":"a","da')
    db = FakeDb()
    writer = make(db, tmp_path)
    writer.start()
    await writer.close(5)
    assert db.rows == [("a", 1), ("a", 2)]
    assert "unreadable" in (tmp_path / DEAD_LETTER).read_text()
    assert segments(tmp_path) == []


async def test_prepare_runs_once_before_any_write_and_is_retried(tmp_path: Path) -> None:
    db = FakeDb()
    calls = []

    async def prepare():
        calls.append(db.up)
        if len(calls) < 3:
            raise OSError("not yet")

    sinks = [ListSink("a", db)]
    writer = DurableWriter(
        "postgresql://unused",
        sinks,
        tmp_path,
        pool_factory=db.pool,
        prepare=prepare,
        flush_interval=0.01,
        max_backoff=0.05,
    )
    writer.start()
    writer.submit(Record("a", {"n": 1}))
    await writer.close(5)
    assert len(calls) == 3 and db.rows == [("a", 1)]


def test_two_sinks_for_one_kind_are_refused(tmp_path: Path) -> None:
    db = FakeDb()
    with pytest.raises(ValueError, match="two sinks"):
        DurableWriter("x", [ListSink("a", db), ListSink("a", db)], tmp_path)
