"""The import's parser: Master.csv records → staged leg rows as PostgreSQL COPY text, in batches split by
call bucket. Pure (no database, no event loop), so the child process that runs it
(:mod:`pbx_sla.ingest.parse_child`) starts without importing asyncpg or asyncio.

Each good record becomes one line of COPY text in the staging table's column order
(:data:`pbx_sla.store.calls.STAGE_COLUMNS`): the leg row of :func:`pbx_sla.domain.cdr.csv_leg_row`, then
the caller and dialled numbers in E.164. Bad records are returned as ``(physical line, reason)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO
from zoneinfo import ZoneInfo

from pbx_sla.domain.calls import call_bucket
from pbx_sla.domain.cdr import CdrError, LocalClock, csv_leg_row, row_caller
from pbx_sla.domain.phone import normalise
from pbx_sla.ingest.csv_reader import BLOCK_RECORDS, read_blocks

#: distinct numbers kept normalised by the parser before its cache starts again
E164_CACHE_SIZE = 1 << 17


@dataclass
class StagedBatch:
    payloads: list[bytes]  # staging COPY text, one per bucket (one in all when not split)
    counts: list[int]  # rows in each payload
    read: int  # records read for this batch, good and bad
    rejected: list[tuple[int, str]]  # (physical line, reason), in line order
    offset: int  # bytes of the file read so far


class E164Cache(dict[str, str | None]):
    """Number → E.164 with the catalogue's country code, memoised (callers and DIDs repeat): a lookup is
    a plain dict access; :meth:`__missing__` normalises a number seen for the first time."""

    def __init__(self, country_code: str | None) -> None:
        super().__init__()
        self.cc = country_code

    def __missing__(self, number: str) -> str | None:
        if len(self) >= E164_CACHE_SIZE:
            self.clear()
        value = self[number] = normalise(number, self.cc) if self.cc else None
        return value


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def stage_line(leg: tuple, caller: str | None, dialled: str | None, plain: bool = False) -> str:
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
    e164 = E164Cache(country_code)
    rows: list[list[str]] = [[] for _ in range(buckets)]
    read = 0
    rejected: list[tuple[int, str]] = []

    def batch() -> StagedBatch:
        rejected.sort()
        payloads = ["".join(part).encode() for part in rows]
        return StagedBatch(payloads, [len(part) for part in rows], read, rejected, stream.tell())

    plain_server = not any(c in server for c in "\\\t\r\n")
    for block in read_blocks(stream, min(BLOCK_RECORDS, batch_size)):
        read += len(block.rows) + len(block.errors)
        rejected += block.errors
        plain = block.plain and plain_server
        for line, fields in zip(block.lines, block.rows, strict=True):
            try:
                leg = csv_leg_row(server, fields, clock)
            except CdrError as exc:
                rejected.append((line, str(exc)))
                continue
            staged = stage_line(leg, e164[row_caller(leg)], e164[leg[5]], plain)  # leg[5]: dst, the dialled number
            rows[call_bucket(leg[2], buckets)].append(staged)  # leg[2]: the call key
        if read >= batch_size:
            yield batch()
            rows = [[] for _ in range(buckets)]
            read = 0
            rejected = []
    if read:
        yield batch()
