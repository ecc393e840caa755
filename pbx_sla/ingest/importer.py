"""``cdr import``: Master.csv records → staged leg rows → PostgreSQL, in batches, one transaction per
batch (per connection).

Bad rows are reported as ``FILE:LINE: reason`` and skipped; good rows land. Re-importing a file, or
importing legs the daemon already stored from AMI, stores nothing twice (the legs' fingerprint key).

Speed (docs/calls.md, "Import speed"). Three things run side by side:

* the parser (:func:`pbx_sla.ingest.staging.staged_batches`) reads a batch, turns each record into a
  staged row (validation, UTC epochs, fingerprint, E.164 numbers) and writes the batch as COPY text,
  already in the staging table's column order, one payload per call bucket
  (:func:`pbx_sla.domain.calls.call_bucket`). It runs in a child process for files larger than
  :data:`PROCESS_MIN_BYTES` (a thread would share the GIL with the event loop), in a worker thread for
  small files (a process costs ~0.1 s to start);
* with two connections, each stores its bucket's payload of the batch (:func:`store_staging_text`, which
  takes only that bucket's lock), so PostgreSQL works on two cores;
* meanwhile the parser reads the next batch.

The event loop only moves bytes: PostgreSQL parses the payload itself (COPY). At most a few batches
are in memory (the child waits while one parsed batch is queued), so memory stays constant however
large the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from pbx_sla.domain.calls import CALL_BUCKETS
from pbx_sla.ingest.staging import StagedBatch, staged_batches
from pbx_sla.store.calls import StoreResult, store_staging_text

#: rows per transaction: large enough that per-batch costs (lock, COPY set-up, commit) vanish
BATCH = 10_000
#: files at least this large are parsed in a child process (about one batch of typical rows)
PROCESS_MIN_BYTES = 4 << 20
#: parsed batches read ahead from the child process (each a few MB)
PREFETCH = 3


@dataclass
class ImportSummary:
    rows: int = 0  # records read (good and bad)
    imported: int = 0  # legs new to the database
    present: int = 0  # legs already stored (earlier import, AMI, or twice in this file)
    rejected: int = 0
    problems: list[str] = field(default_factory=list)
    recoded: int = 0  # records kept whose bytes were not all UTF-8 (read as CP1252)
    recoded_first: int | None = None  # the line of the first of them
    foreign: str | None = None  # "FILE:LINE: layout": not a cdr_csv file; the import stopped there


class _ChildParser:
    """Batches of a file parsed by a child process (:mod:`pbx_sla.ingest.parse_child`)."""

    def __init__(
        self, path: Path, server: str, tz: ZoneInfo, country_code: str | None, batch_size: int, buckets: int
    ) -> None:
        self.path = path
        args = [
            sys.executable,
            "-P",  # not the working directory first: a pbx_sla folder there must not be what the child runs
            "-m",
            "pbx_sla.ingest.parse_child",
            str(path),
            server,
            tz.key,
            country_code or "",
            str(batch_size),
            str(buckets),
        ]
        # the package's own root first, so the child imports this very code even when it is not installed
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, arguments as a list
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )

    def next(self) -> StagedBatch | None:
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
        batch: StagedBatch = pickle.loads(data)  # noqa: S301 - written by our own child process
        return batch

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


class _Prefetch:
    """Batches from a blocking source (the child parser's pipe), read by a thread up to ``depth`` ahead,
    so the parser keeps running while both connections store (memory: ``depth`` batches at most)."""

    def __init__(self, source: Callable[[], StagedBatch | None], depth: int) -> None:
        self.queue: queue.Queue[StagedBatch | BaseException | None] = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, args=(source,), name="cdr-import-reader", daemon=True)
        self.thread.start()

    def _run(self, source: Callable[[], StagedBatch | None]) -> None:
        try:
            while (item := source()) is not None:
                self.queue.put(item)
            self.queue.put(None)
        except BaseException as exc:
            self.queue.put(exc)

    def next(self) -> StagedBatch | None:
        """Blocking: the next batch, ``None`` at the end; the source's error is raised here."""
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """After the source was stopped: let the thread finish (it may wait on a full queue)."""
        while self.thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.05)
        self.thread.join()


async def _store(
    conns: Sequence[asyncpg.Connection], server: str, batch: StagedBatch, fresh: list[bool]
) -> StoreResult:
    """One batch: on one connection under every bucket lock, or each bucket's payload on its connection.

    ``fresh[i]``: connection i's previous batch held only new legs, so this one is tried as all new too
    (:func:`pbx_sla.store.calls.store_staging_text`); updated from this batch's result."""
    split = len(conns) > 1
    results = await asyncio.gather(
        *(
            store_staging_text(conn, server, i if split else None, payload, count, fresh=fresh[i])
            for i, (conn, payload, count) in enumerate(zip(conns, batch.payloads, batch.counts, strict=True))
        ),
        return_exceptions=True,  # let every transaction finish before raising
    )
    stored: list[StoreResult] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        stored.append(result)
    for i, r in enumerate(stored):
        if r.inserted or r.present:
            fresh[i] = r.present == 0
    return StoreResult(sum(r.inserted for r in stored), sum(r.present for r in stored))


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
    second_conn: asyncpg.Connection | None = None,
) -> ImportSummary:
    """Import one Master.csv file; ``progress(summary, bytes_read)`` is called after every batch.

    ``second_conn``: another connection to the same database. With it, each batch is split into the
    two call buckets (:data:`pbx_sla.domain.calls.CALL_BUCKETS`) and each connection stores one, in
    parallel; each of its transactions is complete on its own (legs, their calls, the rollup), so an
    interrupted import leaves whole halves of batches, and running it again completes it.

    ``parse_in_process``: parse in a child process (``None``: when the file has at least
    :data:`PROCESS_MIN_BYTES`).
    """
    conns = [conn] if second_conn is None else [conn, second_conn]
    if len(conns) > 1 and len(conns) != CALL_BUCKETS:  # pragma: no cover - a constant
        raise ValueError(f"an import stores on 1 or {CALL_BUCKETS} connections")
    buckets = len(conns)
    fresh = [True] * buckets  # per connection: try the next batch as all new (its previous one was)
    summary = ImportSummary()
    # read once: the parser normalises numbers with it (a change during an import applies to the next one)
    country_code = await conn.fetchval("SELECT country_code FROM catalogue_settings")

    if parse_in_process is None:
        parse_in_process = tz.key is not None and (await asyncio.to_thread(path.stat)).st_size >= PROCESS_MIN_BYTES
    with contextlib.ExitStack() as stack:
        if parse_in_process:
            child = _ChildParser(path, server, tz, country_code, batch_size, buckets)
            prefetch = _Prefetch(child.next, PREFETCH)

            def stop() -> None:
                child.close()  # first: the reader thread then sees the end of the pipe
                prefetch.close()

            stack.callback(stop)
            next_batch: Callable[[], StagedBatch | None] = prefetch.next
        else:
            batches = staged_batches(
                stack.enter_context(path.open("rb")), server, tz, country_code, batch_size, buckets
            )

            def next_batch() -> StagedBatch | None:
                return next(batches, None)

        parsed = await asyncio.to_thread(next_batch)
        while parsed is not None:
            batch = parsed
            writing = asyncio.create_task(_store(conns, server, batch, fresh)) if sum(batch.counts) else None
            try:
                parsed = await asyncio.to_thread(next_batch)  # the next batch, while this one is stored
            finally:
                result = await writing if writing is not None else StoreResult(0, 0)
            summary.rows += batch.read
            summary.imported += result.inserted
            summary.present += result.present
            if batch.recoded:
                summary.recoded += len(batch.recoded)
                if summary.recoded_first is None:
                    summary.recoded_first = batch.recoded[0]
            for line, reason in batch.rejected:
                summary.rejected += 1
                if len(summary.problems) < max_problems:
                    summary.problems.append(f"{path}:{line}: {reason}")
            if progress is not None:
                progress(summary, batch.offset)
            if batch.foreign is not None:
                summary.foreign = f"{path}:{batch.foreign}"
                break
    if summary.rejected > len(summary.problems):
        summary.problems.append(f"... and {summary.rejected - len(summary.problems)} more rejected rows")
    return summary
