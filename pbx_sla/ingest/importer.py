"""``cdr import``: Master.csv rows → leg rows → the daemon's sink, in batches, one transaction per batch.

Bad rows are reported as ``FILE:LINE: reason`` and skipped; good rows land. Re-importing a file, or
importing legs the daemon already stored from AMI, stores nothing twice (the sink's fingerprint key).

Speed: parsing (Python) and storing (PostgreSQL) overlap. The next batch is read and parsed while the
event loop stores the previous one: in a child process for files larger than :data:`PROCESS_MIN_BYTES`
(a thread would share the GIL with the event loop, which encodes the COPY data, so the two would take
turns instead of running side by side), in a worker thread for small files (a process costs ~0.2 s to
start). Either way at most a few batches are in memory (the child waits while one parsed batch is
queued), so memory stays constant however large the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import asyncpg

from pbx_sla.domain.cdr import CdrError, LegRow, LocalClock, csv_leg_row
from pbx_sla.ingest.csv_reader import read_records
from pbx_sla.store.calls import CdrLegSink, StoreResult, insert_rows_deferred, refresh_batch, refresh_leftover

#: rows per transaction: large enough that per-batch costs (lock, COPY set-up, commit) vanish
BATCH = 10_000
#: files at least this large are parsed in a child process (about one batch of typical rows)
PROCESS_MIN_BYTES = 4 << 20


@dataclass
class ImportSummary:
    rows: int = 0  # records read (good and bad)
    imported: int = 0  # legs new to the database
    present: int = 0  # legs already stored (earlier import, AMI, or twice in this file)
    rejected: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    rows: list[LegRow]
    read: int  # records read for this batch, good and bad
    rejected: list[tuple[int, str]]  # (physical line, reason)
    offset: int  # bytes of the file read so far


def _batches(stream: BinaryIO, server: str, tz: ZoneInfo, batch_size: int) -> Iterator[_Batch]:
    clock = LocalClock(tz)
    batch = _Batch([], 0, [], 0)
    for record in read_records(stream):
        batch.read += 1
        if record.fields is None:
            batch.rejected.append((record.line, record.error or "unreadable"))
            continue
        try:
            batch.rows.append(csv_leg_row(server, record.fields, clock))
        except CdrError as exc:
            batch.rejected.append((record.line, str(exc)))
            continue
        if len(batch.rows) >= batch_size:
            batch.offset = stream.tell()
            yield batch
            batch = _Batch([], 0, [], 0)
    batch.offset = stream.tell()
    if batch.read:
        yield batch


class _ChildParser:
    """Batches of a file parsed by a child process (:mod:`pbx_sla.ingest.parse_child`)."""

    def __init__(self, path: Path, server: str, tz: ZoneInfo, batch_size: int) -> None:
        self.path = path
        args = [sys.executable, "-m", "pbx_sla.ingest.parse_child", str(path), server, tz.key, str(batch_size)]
        # the package's own root first, so the child imports this very code even when it is not installed
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, arguments as a list
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )

    def next(self) -> _Batch | None:
        """Blocking: the next batch, or ``None`` at the end of the file (run in a thread)."""
        assert self.process.stdout is not None
        header = self.process.stdout.read(8)
        size = int.from_bytes(header, "big") if len(header) == 8 else 0
        if size == 0:
            code = self.process.wait()
            if len(header) != 8 or code != 0:
                assert self.process.stderr is not None
                err = self.process.stderr.read().decode("utf-8", "replace").strip().splitlines()
                raise RuntimeError(f"parsing {self.path} failed (exit code {code}): {err[-1] if err else ''}")
            return None
        data = self.process.stdout.read(size)
        if len(data) != size:
            return self.next()  # truncated: the child died; report it as above
        batch: _Batch = pickle.loads(data)  # noqa: S301 - written by our own child process
        return batch

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


async def import_csv(
    conn: asyncpg.Connection,
    path: Path,
    server: str,
    tz: ZoneInfo,
    *,
    batch_size: int = BATCH,
    progress: Callable[[ImportSummary, int], None] | None = None,
    max_problems: int = 1000,
    parse_in_process: bool | None = None,
    refresh_conn: asyncpg.Connection | None = None,
) -> ImportSummary:
    """Import one Master.csv file; ``progress(summary, bytes_read)`` is called after every batch.

    ``refresh_conn``: a second connection to the same database. With it, batch N's calls are recomputed
    on it (:func:`pbx_sla.store.calls.refresh_batch`) while batch N+1's legs are stored on ``conn``
    (:func:`pbx_sla.store.calls.insert_rows_deferred`), so the two halves of the PostgreSQL work run on
    two cores; calls left pending by an earlier, interrupted import of this server are recomputed first.
    Without it, every batch is stored and its calls recomputed in one transaction (:func:`store_rows`).

    ``parse_in_process``: parse in a child process (``None``: when the file has at least
    :data:`PROCESS_MIN_BYTES`).
    """
    summary = ImportSummary()
    sink = CdrLegSink(source="csv")

    async def store(rows: list[LegRow]) -> StoreResult:
        if refresh_conn is None:
            async with conn.transaction():
                return await sink.write_rows(conn, rows)
        async with conn.transaction():
            stored = await insert_rows_deferred(conn, rows, sink.source)
        nonlocal refreshing
        if refreshing is not None:
            await refreshing  # one refresh at a time, in batch order
        refreshing = asyncio.create_task(refresh_batch(refresh_conn, stored))
        return stored.result

    refreshing: asyncio.Task[None] | None = None
    if refresh_conn is not None:
        await refresh_leftover(refresh_conn, server)

    if parse_in_process is None:
        parse_in_process = tz.key is not None and (await asyncio.to_thread(path.stat)).st_size >= PROCESS_MIN_BYTES
    try:
        with contextlib.ExitStack() as stack:
            if parse_in_process:
                child = _ChildParser(path, server, tz, batch_size)
                stack.callback(child.close)
                next_batch: Callable[[], _Batch | None] = child.next
            else:
                batches = _batches(stack.enter_context(path.open("rb")), server, tz, batch_size)

                def next_batch() -> _Batch | None:
                    return next(batches, None)

            parsed = await asyncio.to_thread(next_batch)
            while parsed is not None:
                batch = parsed
                writing = asyncio.create_task(store(batch.rows)) if batch.rows else None
                try:
                    parsed = await asyncio.to_thread(next_batch)  # the next batch, while this one is stored
                finally:
                    result = await writing if writing is not None else StoreResult(0, 0)
                summary.rows += batch.read
                summary.imported += result.inserted
                summary.present += result.present
                for line, reason in batch.rejected:
                    summary.rejected += 1
                    if len(summary.problems) < max_problems:
                        summary.problems.append(f"{path}:{line}: {reason}")
                if progress is not None:
                    progress(summary, batch.offset)
    finally:
        if refreshing is not None:
            await refreshing  # the last batch's calls (or the error of a failed refresh)
    if summary.rejected > len(summary.problems):
        summary.problems.append(f"... and {summary.rejected - len(summary.problems)} more rejected rows")
    return summary
