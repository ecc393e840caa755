"""``cdr import``: Master.csv rows → legs → the daemon's sink, in batches, one transaction per batch.

Bad rows are reported as ``FILE:LINE: reason`` and skipped; good rows land. Re-importing a file, or
importing legs the daemon already stored from AMI, stores nothing twice (the sink's fingerprint key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from pbx_sla.domain.cdr import CdrError, CdrLeg, leg_from_csv
from pbx_sla.ingest.csv_reader import read_records
from pbx_sla.store.calls import CdrLegSink

BATCH = 5000


@dataclass
class ImportSummary:
    rows: int = 0  # records read (good and bad)
    imported: int = 0  # legs new to the database
    present: int = 0  # legs already stored (earlier import, AMI, or twice in this file)
    rejected: int = 0
    problems: list[str] = field(default_factory=list)


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
    batch: list[CdrLeg] = []

    def reject(line: int, reason: str) -> None:
        summary.rejected += 1
        if len(summary.problems) < max_problems:
            summary.problems.append(f"{path}:{line}: {reason}")

    async def flush(stream) -> None:
        if not batch:
            return
        async with conn.transaction():
            result = await sink.write_legs(conn, batch)
        summary.imported += result.inserted
        summary.present += result.present
        batch.clear()
        if progress is not None:
            progress(summary, stream.tell())

    with path.open("rb") as stream:
        for record in read_records(stream):
            summary.rows += 1
            if record.fields is None:
                reject(record.line, record.error or "unreadable")
                continue
            try:
                batch.append(leg_from_csv(server, record.fields, tz))
            except CdrError as exc:
                reject(record.line, str(exc))
                continue
            if len(batch) >= batch_size:
                await flush(stream)
        await flush(stream)
    if summary.rejected > len(summary.problems):
        summary.problems.append(f"... and {summary.rejected - len(summary.problems)} more rejected rows")
    return summary
