"""``cdr import``: Master.csv rows → leg rows → the daemon's sink, in batches, one transaction per batch.

Bad rows are reported as ``FILE:LINE: reason`` and skipped; good rows land. Re-importing a file, or
importing legs the daemon already stored from AMI, stores nothing twice (the sink's fingerprint key).

Speed: parsing (Python) and storing (PostgreSQL) overlap. A worker thread reads and parses the next
batch while the event loop stores the previous one; at most two batches are in memory, so memory stays
constant however large the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import asyncpg

from pbx_sla.domain.cdr import CdrError, LegRow, LocalClock, csv_leg_row
from pbx_sla.ingest.csv_reader import read_records
from pbx_sla.store.calls import CdrLegSink, StoreResult

#: rows per transaction: large enough that per-batch costs (lock, COPY set-up, commit) vanish
BATCH = 25_000


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


async def import_csv(
    conn: asyncpg.Connection,
    path: Path,
    server: str,
    tz: ZoneInfo,
    *,
    batch_size: int = BATCH,
    progress: Callable[[ImportSummary, int], None] | None = None,
    max_problems: int = 1000,
) -> ImportSummary:
    """Import one Master.csv file; ``progress(summary, bytes_read)`` is called after every batch."""
    summary = ImportSummary()
    sink = CdrLegSink(source="csv")

    async def store(rows: list[LegRow]) -> StoreResult:
        async with conn.transaction():
            return await sink.write_rows(conn, rows)

    with path.open("rb") as stream:
        batches = _batches(stream, server, tz, batch_size)
        parsed = await asyncio.to_thread(next, batches, None)
        while parsed is not None:
            batch = parsed
            writing = asyncio.create_task(store(batch.rows)) if batch.rows else None
            try:
                parsed = await asyncio.to_thread(next, batches, None)  # the next batch, while this one is stored
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
    if summary.rejected > len(summary.problems):
        summary.problems.append(f"... and {summary.rejected - len(summary.problems)} more rejected rows")
    return summary
