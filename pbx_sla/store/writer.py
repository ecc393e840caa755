"""The durable batched writer: records in, idempotent batches out, nothing lost when PostgreSQL is away.

Collectors call :meth:`DurableWriter.submit` (never blocks, never raises). A background task takes the
oldest records, groups them by ``kind`` and writes each group in one transaction through the sink of
that kind. Records of one kind are written in submission order (kinds are independent).

* DB trouble (refused, broken pool, schema not migrated yet...): the batch stays queued and is retried
  with exponential backoff.
* Records go to disk instead of waiting in memory when the database is down, when a write has been under
  way for more than ``spill_after`` seconds (a database that hangs), or beyond ``max_memory`` queued
  records: append-only JSON-lines *segment* files under ``spool_dir``, fsync'd every ``spill_interval``,
  replayed oldest first once the memory queue is empty, deleted after a successful write. Records written
  to disk survive a restart (the next writer replays them), so a ``kill -9`` during an outage loses at
  most the records of the last ``spill_interval`` plus one fsync (about a second; measured by
  tests/faults). A segment write cut short (disk full, crash) is truncated back to its last whole record,
  at once or at the next start.
* The disk refuses the spool too (full, read-only): records stay in memory up to ``max_memory``, then
  :attr:`full` is true and the collectors stop reading AMI (back-pressure) until the spool or the
  database takes records again. Nothing queued is dropped; :attr:`spool_error` says why.
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
from pbx_sla.pipeline import DbConnection, Record, Sink
from pbx_sla.private_files import PRIVATE_FILE, ensure_private_dir, file_mode, open_private

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
    """Append and fsync (blocking; run in a thread). A new file also fsyncs its directory entry.

    A write cut short (disk full) is undone: the file is cut back to its size before the call (a new
    file is removed), so no torn record stays on disk; the OSError is raised.
    """
    data = memoryview(("\n".join(lines) + "\n").encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        try:
            os.fchmod(fd, file_mode(path.parent))
            while data:  # unbuffered: nothing is left to be written after an error (and the cut below)
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            if new and size == 0:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
    finally:
        os.close(fd)
    if new:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _repair_torn_tail(path: Path) -> bool:
    """Cut a segment back to its last complete line (a crash or a full disk during an append); True if cut."""
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return False
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return False
        keep, at = 0, size
        while at > 0:  # scan back for the last newline, 64 KiB at a time
            step = min(at, 65536)
            fh.seek(at - step)
            block = fh.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = at - step + nl + 1
                break
            at -= step
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return True


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
        spill_after: float = 1.0,
        spill_interval: float = 0.25,
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
        self._spill_after = spill_after
        self._spill_interval = spill_interval
        self._prepare = prepare
        self._prepared = prepare is None
        self._pool_size = pool_size
        self._pool_factory = pool_factory or self._create_pool
        self._chunk_kinds = max(1, min(len(self._sinks), 4))
        #: records written per database round of :meth:`_drain_once`: about one batch per kind (records of several
        #: kinds interleave in the queue). The writer wakes when that many are queued, else every
        #: ``flush_interval``: not at ``batch_size`` records of any kind, which made a mix with one kind more (the
        #: QoS legs) write more often, each time one transaction per kind
        self._chunk_size = batch_size * self._chunk_kinds
        self._prepare_connection = [
            prepare for sink in self._sinks.values() if (prepare := getattr(sink, "prepare_connection", None))
        ]
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
        self._replay_path: Path | None = None  # the segment _replay was loaded from
        self._replay_done = 0
        self._spool_lock = asyncio.Lock()  # segment files and the tail: the spiller and the drain take turns
        self._writing_since: float | None = None  # monotonic start of the database attempt under way
        self._in_flight = 0  # records taken from the tail by a spill under way (still only in memory)
        self._unknown_kinds: dict[str, int] = {}
        self._dead: set[int] = set()  # id() of queued records already moved to dead letters
        self._wake = asyncio.Event()
        self._close_event = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._spiller: asyncio.Task[None] | None = None
        self.written = 0
        self.dead_letters = 0
        self.db_ok: bool | None = None
        self.last_error: str | None = None
        #: why the spool cannot be written right now (disk full...), None when it can
        self.spool_error: str | None = None
        self.torn_repaired = 0
        self.backpressure_episodes = 0
        self._full_logged = False
        self._scan_spool()

    # -- public --------------------------------------------------------------------------------
    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._sinks)

    @property
    def backlog(self) -> Backlog:
        spooled = sum(self._seg_counts.values()) - self._replay_done
        return Backlog(self._in_memory(), spooled)

    @property
    def full(self) -> bool:
        """``max_memory`` records in memory and the spool refuses more: collectors must stop reading."""
        return self.spool_error is not None and self._in_memory() >= self._max_memory

    def _in_memory(self) -> int:
        return len(self._head) + len(self._tail) + self._in_flight

    @property
    def congested(self) -> bool:
        """Writes lag far behind (the database is up but slow) or memory is :attr:`full`: collectors
        should stop reading for a while.

        Not true merely because the database is down (records spill to disk instead: an outage must
        not stall the AMI connection).
        """
        return (self.db_ok is True and len(self._head) >= self.high_water) or self.full

    @property
    def relieved(self) -> bool:
        if self.spool_error is not None and self._in_memory() >= self._max_memory * 0.9:
            return False
        return self.db_ok is not True or len(self._head) <= self.low_water

    @property
    def state(self) -> str:
        """One word for ``status``: ok | spooling | full (back-pressure)."""
        if self.full:
            return "full"
        return "spooling" if self._spooling else "ok"

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
                if not self._full_logged and self.full:
                    self._full_logged = True
                    self.backpressure_episodes += 1
                    log.error(
                        "write backlog full: max_memory records in memory and the spool cannot be written; "
                        "AMI reading paused until records can be stored (back-pressure, nothing dropped)",
                        records=len(self._head) + len(self._tail),
                        spool_error=self.spool_error,
                    )
                return
            head = self._head
            head.append(record)
            if len(head) >= self._max_memory:
                self._spooling = True
                log.warning("write backlog above max_memory; spilling to disk", records=len(head))
            if len(head) == self._chunk_size:
                self._wake.set()
        except Exception:  # never let storage trouble reach a collector
            log.exception("submit failed", kind=getattr(record, "kind", None))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="durable-writer")
            self._spiller = asyncio.create_task(self._spill_loop(), name="durable-writer-spill")

    async def _stop_spiller(self) -> None:
        """Cancel the spill task between two spills (never inside one: its records would be in neither place)."""
        spiller, self._spiller = self._spiller, None
        if spiller is None:
            return
        async with self._spool_lock:
            spiller.cancel()
        await asyncio.gather(spiller, return_exceptions=True)

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
        await self._stop_spiller()
        try:
            await asyncio.to_thread(self._persist_leftovers)
        except OSError as exc:
            lost = len(self._head) + len(self._tail)
            log.error(
                "database and spool both unavailable at close: records in memory are LOST",
                records=lost,
                error=f"{type(exc).__name__}: {exc}",
                spool=str(self._spool_dir),
            )
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
            if _repair_torn_tail(path):
                self.torn_repaired += 1
                log.warning("spool segment ended inside a record (crash or full disk); cut back", segment=path.name)
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
            replaying = self._replay is not None and last == self._replay_path
            if self._seg_counts[last] < self._segment_records and not replaying:
                return last, False
            return self._segment_path(int(last.stem) + 1), True
        return self._segment_path(_FIRST_SEGMENT), True

    async def _spill_tail(self) -> None:
        async with self._spool_lock:
            while self._tail:
                path, new = self._spill_target()
                room = self._segment_records - (0 if new else self._seg_counts[path])
                chunk, self._tail = self._tail[:room], self._tail[room:]
                lines = [_dump(r) for r in chunk]
                self._in_flight = len(chunk)
                try:
                    await asyncio.to_thread(_append_lines, path, lines, new=new)
                except OSError as exc:
                    self._tail[:0] = chunk
                    self._spool_failed(exc)
                    return
                finally:
                    self._in_flight = 0
                if new:
                    self._segments.append(path)
                    self._seg_counts[path] = 0
                self._seg_counts[path] += len(chunk)
                self._spool_ok()

    async def _spill_head(self) -> None:
        """The database is down: the oldest records in memory go to a segment before every other one.

        The head is taken in one step after the lock is held and only while no database write is under way
        (a write holds a chunk of the head until it pops it); records submitted meanwhile go to the tail.
        """
        async with self._spool_lock:
            if not self._head or self._replay is not None or self._writing_since is not None:
                return
            records = [r for r in self._head if id(r) not in self._dead] if self._dead else list(self._head)
            self._head.clear()
            self._dead.clear()
            self._spooling = True
            seq = int(self._segments[0].stem) - 1 if self._segments else _FIRST_SEGMENT
            path = self._segment_path(seq)
            self._in_flight = len(records)
            try:
                await asyncio.to_thread(_append_lines, path, [_dump(r) for r in records], new=True)
            except OSError as exc:
                self._head.extendleft(reversed(records))
                self._spool_failed(exc)
                return
            finally:
                self._in_flight = 0
            self._segments.appendleft(path)
            self._seg_counts[path] = len(records)
            self._spool_ok()

    def _spool_failed(self, exc: OSError) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if self.spool_error != error:
            log.error(
                "cannot write the spool; records kept in memory (up to max_memory, then AMI reading pauses)",
                spool=str(self._spool_dir),
                error=error,
                in_memory=len(self._head) + len(self._tail),
            )
        self.spool_error = error

    def _spool_ok(self) -> None:
        if self.spool_error is not None:
            log.info("spool writable again", spool=str(self._spool_dir), in_memory=len(self._head) + len(self._tail))
            self.spool_error = None
        if self._full_logged and not self.full:
            self._full_logged = False
            log.info("write backlog below max_memory again; AMI reading resumes")

    def _should_spool(self) -> bool:
        """Records must not wait in memory: the database is down or a write hangs."""
        if self.db_ok is False:
            return True
        since = self._writing_since
        return since is not None and time.monotonic() - since > self._spill_after

    async def _spill_loop(self) -> None:
        """Every ``spill_interval``: while records cannot reach the database, put them on disk."""
        while True:
            await asyncio.sleep(self._spill_interval)
            try:
                if not self._spooling and self._should_spool() and (self._head or self._tail):
                    self._spooling = True
                    log.warning(
                        "database not answering; new records go to the spool on disk",
                        in_memory=len(self._head),
                        error=self.last_error,
                    )
                if self._tail:  # only ever filled while spooling
                    await self._spill_tail()
                if self._head and self.db_ok is False and self._writing_since is None:
                    await self._spill_head()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("spool writer failed; retrying")

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
        """Write records grouped by kind, one transaction per group (all on one connection of the pool: each
        acquire costs a reset round trip at release); raise on DB trouble."""
        groups: dict[str, list[Record]] = {}
        dead = self._dead
        for record in chunk:
            if dead and id(record) in dead:
                continue  # refused on an earlier attempt at this chunk: already in dead letters
            groups.setdefault(record.kind, []).append(record)
        pool = await self._get_pool()
        size = self._batch_size
        async with pool.acquire() as conn:
            for prepare in self._prepare_connection:  # once per connection (a sink's staging table...)
                await prepare(conn)
            for kind, group in groups.items():
                sink = self._sinks.get(kind)
                if sink is None:
                    self._dead_letter(kind, [r.data for r in group], "no sink for this kind")
                    continue
                for start in range(0, len(group), size):
                    records = group[start : start + size]
                    try:
                        async with conn.transaction():
                            await sink.write(conn, [r.data for r in records])
                    except DATA_ERRORS as exc:
                        log.warning(
                            "batch refused; retrying record by record", kind=kind, records=len(records), error=str(exc)
                        )
                        await self._write_one_by_one(conn, sink, records)
        self.written += len(chunk)
        if self.db_ok is not True:
            if self.db_ok is False:
                log.info("database available again", backlog=self.backlog.total)
            self.db_ok = True

    async def _write_one_by_one(self, conn: DbConnection, sink: Sink, records: Sequence[Record]) -> None:
        for record in records:
            try:
                async with conn.transaction():
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
            chunk = list(islice(head, self._chunk_size))
            await self._write_chunk(chunk)
            for _ in range(len(chunk)):
                head.popleft()
            self._done(chunk)
            return True
        if self._segments:
            if self._replay is None:
                async with self._spool_lock:  # no append to, nor segment before, this one while it is read
                    if not self._segments:
                        return True
                    # read under the lock: a spill of the head may have put a segment first meanwhile
                    first = self._replay_path = self._segments[0]
                    self._replay = await asyncio.to_thread(self._load_segment, first)
                    self._replay_done = 0
                    self._seg_counts[first] = len(self._replay)
            replayed = self._replay_path
            assert replayed is not None
            if self._replay_done < len(self._replay):
                chunk = self._replay[self._replay_done : self._replay_done + self._chunk_size]
                await self._write_chunk(chunk)
                self._replay_done += len(chunk)
                self._done(chunk)
                return True
            async with self._spool_lock:
                replayed.unlink(missing_ok=True)
                self._segments.remove(replayed)
                del self._seg_counts[replayed]
                self._replay, self._replay_done, self._replay_path = None, 0, None
            log.info("spool segment written and removed", segment=replayed.name, left=len(self._segments))
            return True
        if self._spooling:
            async with self._spool_lock:
                if self._segments:
                    return True  # a spill made a segment meanwhile: replay it first
                # spool drained: records not yet spilled go back to memory, in order
                self._head.extend(self._tail)
                self._tail = []
                self._spooling = len(self._head) >= self._max_memory  # the database just took writes
                if not self._spooling and self.spool_error is not None:
                    # nothing needs the spool any more: its last error is history, not the current state
                    log.info("spool no longer needed; records go through memory again", last_error=self.spool_error)
                    self.spool_error = None
                    self._full_logged = False
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
            # (the spill task puts records on disk meanwhile: it must not wait for the database)
            try:
                self._writing_since = time.monotonic()
                if self._pool is None or not self._prepared:
                    await self._get_pool()  # migrate as soon as the database answers, even with nothing queued
                while True:
                    if not await self._drain_once():
                        break
                    self._writing_since = time.monotonic()
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
            finally:
                self._writing_since = None
            if self.db_ok is False:
                log.info("database available again", backlog=self.backlog.total)
            if self._pool is not None:
                self.db_ok = True
            delay = 0.0
