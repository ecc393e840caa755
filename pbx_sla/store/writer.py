"""The durable batched writer: records in, idempotent batches out, nothing lost when PostgreSQL is away.

Collectors call :meth:`DurableWriter.submit` (never blocks, never raises). A background task takes the
oldest records, groups them by ``kind`` and writes each group in one transaction through the sink of
that kind. Records of one kind are written in submission order (kinds are independent).

* DB trouble (refused, broken pool, schema not migrated yet...): the batch stays queued and is retried
  with exponential backoff.
* Beyond ``max_memory`` queued records, new records go to disk instead: append-only JSON-lines *segment*
  files under ``spool_dir``, fsync'd, replayed oldest first once the memory queue is empty, deleted
  after a successful write. Records written to disk survive a restart: the next writer replays them.
* A *data* error (a value PostgreSQL or the sink refuses) costs one record, not the batch: the batch is
  retried record by record, each refused record is logged (kind and a short repr) and appended to
  ``dead-letter.jsonl`` in ``spool_dir``; the others land.
* :meth:`close` flushes everything to the DB, or to the spool when the DB does not answer in time.

Sinks are idempotent, so a batch written twice (crash or outage between write and bookkeeping) is
harmless: every record lands exactly once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg

from pbx_sla.log import get_logger
from pbx_sla.pipeline import Record, Sink
from pbx_sla.private_files import ensure_private_dir, open_private

log = get_logger(__name__)

#: errors that say "this data is refused", not "the database is away": retried record by record
DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    ValueError,
    TypeError,
    KeyError,
)
DEAD_LETTER = "dead-letter.jsonl"
_FIRST_SEGMENT = 10**12


class Backlog(NamedTuple):
    memory: int
    spooled: int

    @property
    def total(self) -> int:
        return self.memory + self.spooled


def _short(data: Any, limit: int = 200) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dump(record: Record) -> str:
    return json.dumps({"kind": record.kind, "data": record.data}, separators=(",", ":"), default=str)


def _append_lines(path: Path, lines: list[str], *, new: bool) -> None:
    """Append and fsync (blocking; run in a thread). A new file also fsyncs its directory entry."""
    with open_private(path, "a") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    if new:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class DurableWriter:
    """Batches records per kind into their sinks; spills to disk beyond ``max_memory``."""

    def __init__(
        self,
        dsn: str,
        sinks: Sequence[Sink],
        spool_dir: Path,
        *,
        batch_size: int = 1000,
        flush_interval: float = 0.2,
        max_memory: int = 100_000,
        segment_records: int = 50_000,
        max_backoff: float = 10.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
        pool_size: int = 2,
        pool_factory: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self._dsn = dsn
        self._sinks: dict[str, Sink] = {}
        for sink in sinks:
            if sink.kind in self._sinks:
                raise ValueError(f"two sinks for record kind {sink.kind!r}")
            self._sinks[sink.kind] = sink
        self._spool_dir = Path(spool_dir)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_memory = max_memory
        self._segment_records = segment_records
        self._max_backoff = max_backoff
        self._prepare = prepare
        self._prepared = prepare is None
        self._pool_size = pool_size
        self._pool_factory = pool_factory or self._create_pool
        self._chunk_kinds = max(1, min(len(self._sinks), 4))
        #: back-pressure marks (records in memory) while the database is up, see :attr:`congested`
        self.high_water = max(batch_size, max_memory // 4)
        self.low_water = self.high_water // 2
        self._pool: asyncpg.Pool | None = None

        self._head: deque[Record] = deque()  # oldest records, before anything on disk
        self._tail: list[Record] = []  # records newer than the spool, not yet on disk
        self._spooling = False
        self._segments: deque[Path] = deque()
        self._seg_counts: dict[Path, int] = {}
        self._replay: list[Record] | None = None  # loaded first segment
        self._replay_done = 0
        self._unknown_kinds: dict[str, int] = {}
        self._dead: set[int] = set()  # id() of queued records already moved to dead letters
        self._wake = asyncio.Event()
        self._close_event = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dead_letters = 0
        self.db_ok: bool | None = None
        self.last_error: str | None = None
        self._scan_spool()

    # -- public --------------------------------------------------------------------------------
    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._sinks)

    @property
    def backlog(self) -> Backlog:
        spooled = sum(self._seg_counts.values()) - self._replay_done
        return Backlog(len(self._head) + len(self._tail), spooled)

    @property
    def congested(self) -> bool:
        """The database is up but writes lag far behind: collectors should slow their reading down.

        Never true while the database is down (then records spill to disk instead: an outage must
        not stall the AMI connection).
        """
        return self.db_ok is True and len(self._head) >= self.high_water

    @property
    def relieved(self) -> bool:
        return self.db_ok is not True or len(self._head) <= self.low_water

    def submit(self, record: Record) -> None:
        """Queue one record; never blocks, never raises. Unknown kinds are logged and dropped."""
        try:
            if record.kind not in self._sinks:
                seen = self._unknown_kinds.get(record.kind, 0)
                self._unknown_kinds[record.kind] = seen + 1
                if seen == 0 or seen % 10_000 == 0:
                    log.error("record of unknown kind dropped", kind=record.kind, dropped=seen + 1)
                return
            if self._spooling:
                self._tail.append(record)
                return
            head = self._head
            head.append(record)
            if len(head) >= self._max_memory:
                self._spooling = True
                log.warning("write backlog above max_memory; spilling to disk", records=len(head))
            if len(head) == self._batch_size:
                self._wake.set()
        except Exception:  # never let storage trouble reach a collector
            log.exception("submit failed", kind=getattr(record, "kind", None))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="durable-writer")

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - the contract names it
        """Write everything out: to PostgreSQL if it answers within ``timeout``, else to the spool."""
        self._closing = True
        self._wake.set()
        self._close_event.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            except Exception:
                log.exception("writer task failed")
        await asyncio.to_thread(self._persist_leftovers)
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._pool.terminate()
            self._pool = None
        backlog = self.backlog
        log.info("writer closed", written=self.written, spooled=backlog.spooled, dead_letters=self.dead_letters)

    # -- spool files -----------------------------------------------------------------------------
    def _scan_spool(self) -> None:
        ensure_private_dir(self._spool_dir)
        for path in sorted(self._spool_dir.glob("*.jsonl")):
            if path.name == DEAD_LETTER or not path.stem.isdigit():
                continue
            with path.open("rb") as fh:
                count = sum(1 for line in fh if line.strip())
            if count == 0:
                path.unlink()
                continue
            self._segments.append(path)
            self._seg_counts[path] = count
        if self._segments:
            self._spooling = True
            log.info("spooled records found; they will be written first", records=self.backlog.spooled)

    def _segment_path(self, seq: int) -> Path:
        return self._spool_dir / f"{seq:020d}.jsonl"

    def _spill_target(self) -> tuple[Path, bool]:
        """The segment to append to: the newest one unless it is full or being replayed."""
        if self._segments:
            last = self._segments[-1]
            replaying = self._replay is not None and last == self._segments[0]
            if self._seg_counts[last] < self._segment_records and not replaying:
                return last, False
            return self._segment_path(int(last.stem) + 1), True
        return self._segment_path(_FIRST_SEGMENT), True

    async def _spill_tail(self) -> None:
        while self._tail:
            path, new = self._spill_target()
            room = self._segment_records - (0 if new else self._seg_counts[path])
            chunk, self._tail = self._tail[:room], self._tail[room:]
            lines = [_dump(r) for r in chunk]
            try:
                await asyncio.to_thread(_append_lines, path, lines, new=new)
            except OSError:
                self._tail[:0] = chunk
                log.exception("cannot write the spool; records kept in memory", spool=str(self._spool_dir))
                return
            if new:
                self._segments.append(path)
                self._seg_counts[path] = 0
            self._seg_counts[path] += len(chunk)

    def _persist_leftovers(self) -> None:
        """At close: memory → disk (head before every segment, tail after), so that nothing is lost."""
        if self._dead:
            self._head = deque(r for r in self._head if id(r) not in self._dead)
        if self._head:
            seq = int(self._segments[0].stem) - 1 if self._segments else _FIRST_SEGMENT
            path = self._segment_path(seq)
            _append_lines(path, [_dump(r) for r in self._head], new=True)
            self._segments.appendleft(path)
            self._seg_counts[path] = len(self._head)
            log.warning("database unavailable at close; records spooled", records=len(self._head), spool=str(path))
            self._head.clear()
        if self._tail:
            seq = int(self._segments[-1].stem) + 1 if self._segments else _FIRST_SEGMENT
            path = self._segment_path(seq)
            _append_lines(path, [_dump(r) for r in self._tail], new=True)
            self._segments.append(path)
            self._seg_counts[path] = len(self._tail)
            self._tail = []

    def _load_segment(self, path: Path) -> list[Record]:
        records: list[Record] = []
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    records.append(Record(item["kind"], item["data"]))
                except (ValueError, KeyError, TypeError):
                    # a torn last line after a crash, or a damaged file
                    log.error("unreadable spool line moved to dead letters", spool=f"{path}:{lineno}")
                    self._dead_letter("?", line.rstrip("\n"), "unreadable spool line")
        return records

    def _dead_letter(self, kind: str, data: Any, error: str) -> None:
        self.dead_letters += 1
        entry = {"at": time.time(), "kind": kind, "error": error, "data": data}
        try:
            with open_private(self._spool_dir / DEAD_LETTER, "a") as fh:
                fh.write(json.dumps(entry, default=str) + "\n")
        except OSError:
            log.exception("cannot write the dead-letter file", spool=str(self._spool_dir))

    # -- database ----------------------------------------------------------------------------------
    async def _create_pool(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._pool_size, timeout=10, command_timeout=60
        )

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await self._pool_factory()
        if not self._prepared:
            assert self._prepare is not None
            await self._prepare()
            self._prepared = True
        return self._pool

    async def _write_chunk(self, chunk: Sequence[Record]) -> None:
        """Write records grouped by kind, one transaction per group; raise on DB trouble."""
        groups: dict[str, list[Record]] = {}
        dead = self._dead
        for record in chunk:
            if dead and id(record) in dead:
                continue  # refused on an earlier attempt at this chunk: already in dead letters
            groups.setdefault(record.kind, []).append(record)
        pool = await self._get_pool()
        size = self._batch_size
        for kind, group in groups.items():
            sink = self._sinks.get(kind)
            if sink is None:
                self._dead_letter(kind, [r.data for r in group], "no sink for this kind")
                continue
            for start in range(0, len(group), size):
                records = group[start : start + size]
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        await sink.write(conn, [r.data for r in records])
                except DATA_ERRORS as exc:
                    log.warning(
                        "batch refused; retrying record by record", kind=kind, records=len(records), error=str(exc)
                    )
                    await self._write_one_by_one(pool, sink, records)
        self.written += len(chunk)

    async def _write_one_by_one(self, pool: asyncpg.Pool, sink: Sink, records: Sequence[Record]) -> None:
        for record in records:
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await sink.write(conn, [record.data])
            except DATA_ERRORS as exc:
                if self.dead_letters < 100 or self.dead_letters % 1000 == 0:  # a sink bug must not flood the log
                    log.error(
                        "record refused; moved to dead letters",
                        kind=record.kind,
                        record=_short(record.data),
                        error=f"{type(exc).__name__}: {exc}",
                        dead_letters=self.dead_letters + 1,
                    )
                self._dead_letter(record.kind, record.data, f"{type(exc).__name__}: {exc}")
                self._dead.add(id(record))

    def _done(self, chunk: Sequence[Record]) -> None:
        if self._dead:
            for record in chunk:
                self._dead.discard(id(record))

    async def _drain_once(self) -> bool:
        """Write one batch (memory first, then the oldest segment); False when there was nothing to do."""
        head = self._head
        if head:
            # about one batch per kind: records of several kinds interleave in the queue
            chunk = list(islice(head, self._batch_size * self._chunk_kinds))
            await self._write_chunk(chunk)
            for _ in range(len(chunk)):
                head.popleft()
            self._done(chunk)
            return True
        if self._segments:
            path = self._segments[0]
            if self._replay is None:
                self._replay = await asyncio.to_thread(self._load_segment, path)
                self._replay_done = 0
                self._seg_counts[path] = len(self._replay)
            if self._replay_done < len(self._replay):
                chunk = self._replay[self._replay_done : self._replay_done + self._batch_size * self._chunk_kinds]
                await self._write_chunk(chunk)
                self._replay_done += len(chunk)
                self._done(chunk)
                return True
            path.unlink(missing_ok=True)
            self._segments.popleft()
            del self._seg_counts[path]
            self._replay, self._replay_done = None, 0
            log.info("spool segment written and removed", segment=path.name, left=len(self._segments))
            return True
        if self._spooling:
            # spool drained: records not yet spilled go back to memory, in order
            self._head.extend(self._tail)
            self._tail = []
            self._spooling = len(self._head) >= self._max_memory
            return bool(self._head)
        return False

    def _idle(self) -> bool:
        return not self._head and not self._tail and not self._segments

    async def _pause(self, seconds: float, *, wake: bool) -> None:
        """Sleep; a full batch (``wake``) or :meth:`close` ends the sleep early."""
        if not wake and self._closing:  # retrying while closing: at most every 0.5 s, not in a tight loop
            await asyncio.sleep(min(seconds, 0.5))
            return
        event = self._wake if wake else self._close_event
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation when the event is set
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if self._closing and self._idle():
                return
            if delay:
                await self._pause(delay, wake=False)
            elif not self._closing:
                await self._pause(self._flush_interval, wake=True)
            self._wake.clear()
            if self._tail and (self._segments or self._head):
                await self._spill_tail()  # disk first: it must not wait for the database
            try:
                if self._pool is None or not self._prepared:
                    await self._get_pool()  # migrate as soon as the database answers, even with nothing queued
                while True:
                    if self._tail and (self._segments or self._head) and len(self._tail) >= self._batch_size:
                        await self._spill_tail()
                    if not await self._drain_once():
                        break
                    await asyncio.sleep(0)  # let the collectors run between batches
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(self._max_backoff, max(0.2, delay * 2))
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.db_ok is not False:
                    log.warning("database unavailable; records kept for retry", error=self.last_error)
                self.db_ok = False
                continue
            if self.db_ok is False:
                log.info("database available again", backlog=self.backlog.total)
            if self._pool is not None:
                self.db_ok = True
            delay = 0.0
