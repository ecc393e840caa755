"""Streaming reader for Asterisk ``Master.csv`` (cdr_csv): constant memory, physical line numbers.

The file is read as bytes, one physical line at a time. Physical lines are joined into a record until its
double quotes balance (cdr_csv quotes every text field and doubles embedded quotes, so an odd count means
a quoted field, such as a caller name, continues on the next line). Each record is then decoded on its
own, as UTF-8 with any byte that is not UTF-8 read as CP1252 (:func:`pbx_sla.domain.text.decode_text`:
nothing lost, the record kept, its line listed in :attr:`Block.recoded`), and parsed strictly with
:mod:`csv`. Every record carries the physical line it started on. A record holding a NUL byte is
rejected (PostgreSQL text cannot hold one).

A record that never balances (a row cut in the middle of a quoted field) would swallow the rest of the
file; cdr_csv never writes a row longer than 1024 bytes, so a record is given up after
:data:`MAX_RECORD_BYTES` or :data:`MAX_RECORD_LINES`: its first line is reported and reading starts
again on the line after it. A single physical line longer than :data:`MAX_LINE_BYTES` is rejected with
its line number without ever being held whole in memory (a 100 MB field made ``cdr import`` reach 329 MB).

Speed (``cdr import`` reads hundreds of thousands of rows a second): records come in blocks
(:func:`read_blocks`). A block's one-line records are decoded in one pass and parsed by a single
:func:`csv.reader` over the block's list of lines, so the per-record work stays in C. One physical line
per record is checked with ``reader.line_num``; a line the reader would continue onto the next one (a
quote opened inside an unquoted field) makes the block fall back to parsing each record on its own,
which gives exactly what :func:`read_records` always gave.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from pbx_sla.domain.text import decode_text

MAX_RECORD_BYTES = 8192
MAX_RECORD_LINES = 16
#: a physical line longer than this is rejected unread (cdr_csv rows are under 1 KiB)
MAX_LINE_BYTES = 65536
#: bytes read at a time
READ_CHUNK = 1 << 20
#: what :func:`physical_lines` yields for a line longer than :data:`MAX_LINE_BYTES` (a real line is never empty)
TOO_LONG = b""
#: records per block of :func:`read_blocks`
BLOCK_RECORDS = 2048


@dataclass(frozen=True)
class RawRecord:
    """One record: its fields, or the reason it could not be read."""

    line: int  # physical line (1-based) the record starts on
    fields: list[str] | None
    error: str | None = None


@dataclass
class Block:
    """Consecutive records of a file: the good ones (``lines[i]`` is where ``rows[i]`` starts) and the
    rejected ones as ``(line, reason)``; both in file order."""

    lines: list[int] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: no field of any row holds a backslash, tab, carriage return or line feed (the block's bytes hold no
    #: backslash, tab or CR, and every record is one line): the rows need no escaping as COPY text
    plain: bool = False
    #: lines of records (good or rejected later) holding bytes that are not UTF-8, read as CP1252
    recoded: list[int] = field(default_factory=list)


class _Misaligned(Exception):
    """A record that :mod:`csv` continued onto the next list element."""


def _decode(data: bytes) -> tuple[str, bool]:
    """The text of a record and whether it held bytes that are not UTF-8, or ValueError with the reason
    it is rejected."""
    text, recoded = decode_text(data)
    if "\x00" in text:
        raise ValueError(f"contains a NUL byte (column {text.index(chr(0)) + 1})")
    return text, recoded


def _parse_one(text: str) -> list[str] | str:
    """One record on its own: its fields, or the reason it is malformed."""
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return f"malformed CSV: {exc}"


def _parse_all(texts: list[str]) -> tuple[list[list[str] | str], bool]:
    """Every record of ``texts`` (one per element): fields, or the reason it is malformed; and whether
    any is malformed."""
    out: list[list[str] | str] = []
    reader = csv.reader(texts, strict=True)
    bad = False
    try:
        while True:
            try:
                out.extend(reader)
                if reader.line_num != len(out):
                    raise _Misaligned
                return out, bad
            except csv.Error as exc:
                bad = True
                out.append(f"malformed CSV: {exc}")
                if reader.line_num != len(out):
                    raise _Misaligned from None
    except _Misaligned:
        out = [_parse_one(text) for text in texts]
        return out, any(isinstance(x, str) for x in out)


def physical_lines(stream: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """``(number, line)`` like ``enumerate(stream, 1)``, but a line longer than ``limit`` is skipped in
    constant memory and yielded as :data:`TOO_LONG`."""
    number = 1
    carry = b""
    skipping = False  # inside a line that is too long: drop bytes up to its end
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            break
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                continue
            yield number, TOO_LONG
            number += 1
            skipping = False
            chunk = chunk[end + 1 :]
        lines = (carry + chunk if carry else chunk).split(b"\n")
        carry = lines.pop()
        for line in lines:
            if len(line) > limit:
                yield number, TOO_LONG
            else:
                yield number, line + b"\n"
            number += 1
        if len(carry) > limit:
            carry = b""
            skipping = True
    if skipping or len(carry) > limit:
        yield number, TOO_LONG
    elif carry:
        yield number, carry


def read_blocks(stream: BinaryIO, size: int = BLOCK_RECORDS) -> Iterator[Block]:
    """The records of a cdr_csv file in blocks of about ``size``; blank lines are skipped."""
    source: Iterator[tuple[int, bytes]] = physical_lines(stream)
    too_long = f"line longer than {MAX_LINE_BYTES} bytes; rejected unread"
    while True:
        starts: list[int] = []
        raws: list[bytes] = []  # one element per record (several physical lines joined for a few)
        errors: list[tuple[int, str]] = []
        one_line = True  # every record of the block is one physical line
        ended = True
        while True:
            # the common case (a whole record on one line) stays in this loop
            for start, raw in source:
                quotes = raw.count(b'"')
                if quotes & 1:
                    break
                if raw.isspace():
                    continue
                if not raw:  # TOO_LONG
                    errors.append((start, too_long))
                    continue
                starts.append(start)
                raws.append(raw)
                if len(starts) >= size:
                    ended = False
                    break
            else:
                break  # end of file
            if not ended:
                break
            # a record continued on the next lines (a quoted newline), or cut short
            parts = [(start, raw)]
            length = len(raw)
            while quotes & 1 and length <= MAX_RECORD_BYTES and len(parts) < MAX_RECORD_LINES:
                more = next(source, None)
                if more is None:
                    break
                if not more[1]:  # TOO_LONG: not part of this record
                    source = itertools.chain([more], source)
                    break
                parts.append(more)
                length += len(more[1])
                quotes += more[1].count(b'"')
            if quotes & 1:
                errors.append((start, "unterminated quoted field (truncated row?)"))
                source = itertools.chain(parts[1:], source)  # read them again as records of their own
            else:
                starts.append(start)
                raws.append(b"".join(p[1] for p in parts))
                one_line = False
            if len(starts) + len(errors) >= size:
                ended = False
                break
        if starts or errors:
            yield _block(starts, raws, errors, one_line)
        if ended:
            return


def _block(starts: list[int], raws: list[bytes], errors: list[tuple[int, str]], one_line: bool) -> Block:
    texts: list[str] = []
    joined = b"".join(raws)
    plain = one_line and b"\\" not in joined and b"\t" not in joined and b"\r" not in joined
    try:
        if b"\x00" not in joined:
            texts = [raw.decode("utf-8") for raw in raws]
    except UnicodeDecodeError:
        texts = []
    recoded: list[int] = []
    if len(texts) != len(raws):  # a byte that is not UTF-8, or a NUL, somewhere: decode record by record
        good_starts, texts = [], []
        for start, raw in zip(starts, raws, strict=True):
            try:
                text, was_recoded = _decode(raw)
            except ValueError as exc:
                errors.append((start, str(exc)))
                continue
            texts.append(text)
            good_starts.append(start)
            if was_recoded:
                recoded.append(start)
        starts = good_starts
    parsed, bad = _parse_all(texts)
    if not bad:
        block = Block(starts, parsed, errors)  # type: ignore[arg-type]  # no reasons among them
    else:
        block = Block(errors=errors)
        for start, fields in zip(starts, parsed, strict=True):
            if isinstance(fields, str):
                errors.append((start, fields))
            else:
                block.lines.append(start)
                block.rows.append(fields)
    errors.sort()
    block.plain = plain
    block.recoded = recoded
    return block


def read_records(stream: BinaryIO) -> Iterator[RawRecord]:
    """Records of a cdr_csv file, in order, with the physical line each starts on. Blank lines are skipped."""
    for block in read_blocks(stream):
        records = [RawRecord(line, fields) for line, fields in zip(block.lines, block.rows, strict=True)]
        records += [RawRecord(line, None, reason) for line, reason in block.errors]
        records.sort(key=lambda r: r.line)
        yield from records
