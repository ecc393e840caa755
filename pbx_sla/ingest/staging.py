"""The import's parser: Master.csv records → staged leg rows as PostgreSQL COPY text, in batches split by
call bucket. Pure (no database, no event loop), so the child process that runs it
(:mod:`pbx_sla.ingest.parse_child`) starts without importing asyncpg or asyncio.

Each good record becomes one line of COPY text in the staging table's column order
(:data:`pbx_sla.store.calls.STAGE_COLUMNS`): the leg row of :func:`pbx_sla.domain.cdr.read_leg` (the
daemon's path for AMI events too), then the caller and dialled numbers in E.164. Bad records are
returned as ``(physical line, reason)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from zoneinfo import ZoneInfo

from pbx_sla.domain.calls import call_bucket
from pbx_sla.domain.cdr import CdrError, LegRow, LocalClock, foreign_layout, read_leg
from pbx_sla.domain.phone import e164_cache
from pbx_sla.ingest.csv_reader import BLOCK_RECORDS, read_blocks


@dataclass
class StagedBatch:
    payloads: list[bytes]  # staging COPY text, one per bucket (one in all when not split)
    counts: list[int]  # rows in each payload
    read: int  # records read for this batch, good and bad
    rejected: list[tuple[int, str]]  # (physical line, reason), in line order
    offset: int  # bytes of the file read so far
    recoded: list[int] = field(default_factory=list)  # lines of records with bytes that are not UTF-8
    #: the file is not in a cdr_csv layout (``"LINE: what it looks like"``): the parser stopped there
    foreign: str | None = None


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def stage_line(leg: LegRow, caller: str | None, dialled: str | None, plain: bool = False) -> str:
    """A staged row as one line of COPY text data (tab-separated; the empty string stands for NULL,
    see :func:`pbx_sla.store.calls.store_staging_text`).

    ``plain``: the caller knows no value holds a backslash, tab, CR or line feed (the row's block is
    :attr:`~pbx_sla.ingest.csv_reader.Block.plain`, the server name too), so the line is not checked."""
    (server, fingerprint, call_key, accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
     start, answer, end, duration, billsec, disposition, amaflags, uniqueid, userfield, peeraccount, linkedid,
     sequence, src_endpoint, dst_endpoint) = leg  # fmt: skip
    line = (
        f"{server}\t{fingerprint}\t{call_key}\t{accountcode}\t{src}\t{dst}\t{dcontext}\t{clid}\t{channel}\t"
        f"{dstchannel}\t{lastapp}\t{lastdata}\t{start}\t{'' if answer is None else answer}\t{end}\t{duration}\t"
        f"{billsec}\t{disposition}\t{amaflags}\t{uniqueid}\t{userfield}\t{peeraccount}\t{linkedid}\t"
        f"{'' if sequence is None else sequence}\t{src_endpoint or ''}\t{dst_endpoint or ''}\t{caller or ''}\t"
        f"{dialled or ''}\n"
    )
    if plain:
        return line
    if line.count("\t") != 27 or "\\" in line or line.count("\n") != 1 or "\r" in line:
        values = ("" if v is None else str(v).translate(_ESCAPES) for v in (*leg, caller, dialled))
        line = "\t".join(values) + "\n"
    return line


def staged_batches(
    stream: BinaryIO,
    server: str,
    tz: ZoneInfo,
    country_code: str | None,
    batch_size: int,
    buckets: int,
) -> Iterator[StagedBatch]:
    """The file's batches of about ``batch_size`` records, each as staging COPY text split into ``buckets``."""
    clock = LocalClock(tz)
    e164 = e164_cache(country_code)
    rows: list[list[str]] = [[] for _ in range(buckets)]
    read = 0
    rejected: list[tuple[int, str]] = []
    recoded: list[int] = []

    def batch() -> StagedBatch:
        rejected.sort()
        payloads = ["".join(part).encode() for part in rows]
        return StagedBatch(payloads, [len(part) for part in rows], read, rejected, stream.tell(), recoded)

    plain_server = not any(c in server for c in "\\\t\r\n")
    for block in read_blocks(stream, min(BLOCK_RECORDS, batch_size)):
        read += len(block.rows) + len(block.errors)
        rejected += block.errors
        recoded += block.recoded
        plain = block.plain and plain_server
        for i, (line, fields) in enumerate(zip(block.lines, block.rows, strict=True)):
            try:
                leg = read_leg(server, fields, clock)
            except CdrError as exc:
                layout = foreign_layout(fields)
                if layout is not None:  # one message for the file, not a misleading one per row
                    later = sum(1 for error_line, _ in block.errors if error_line > line)
                    read -= len(block.rows) - i + later  # the records before this one
                    rejected = [r for r in rejected if r[0] < line]
                    recoded = [r for r in recoded if r < line]
                    done = batch()
                    done.foreign = f"{line}: {layout}"
                    yield done
                    return
                rejected.append((line, str(exc)))
                continue
            staged = stage_line(leg, e164[leg.caller], e164[leg.dst], plain)
            rows[call_bucket(leg.call_key, buckets)].append(staged)
        if read >= batch_size:
            yield batch()
            rows = [[] for _ in range(buckets)]
            read = 0
            rejected = []
            recoded = []
    if read:
        yield batch()
