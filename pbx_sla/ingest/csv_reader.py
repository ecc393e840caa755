"""Streaming reader for Asterisk ``Master.csv`` (cdr_csv): constant memory, physical line numbers.

The file is read as bytes, one physical line at a time. Physical lines are joined into a record until its
double quotes balance (cdr_csv quotes every text field and doubles embedded quotes, so an odd count means
a quoted field, such as a caller name, continues on the next line). Each record is then decoded as UTF-8
on its own, so one bad byte costs one row, and parsed strictly with :mod:`csv`. Every record carries the
physical line it started on.

A record that never balances (a row cut in the middle of a quoted field) would swallow the rest of the
file; cdr_csv never writes a row longer than 1024 bytes, so a record is given up after
:data:`MAX_RECORD_BYTES` or :data:`MAX_RECORD_LINES`: its first line is reported and reading starts
again on the line after it.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_RECORD_BYTES = 8192
MAX_RECORD_LINES = 16


@dataclass(frozen=True)
class RawRecord:
    """One record: its fields, or the reason it could not be read."""

    line: int  # physical line (1-based) the record starts on
    fields: list[str] | None
    error: str | None = None


class _Feed:
    """An iterator handing :mod:`csv` exactly one prepared record per ``next`` call."""

    def __init__(self) -> None:
        self.text: str | None = None

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        text, self.text = self.text, None
        if text is None:
            raise StopIteration
        return text


def _physical_lines(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


def read_records(stream: BinaryIO) -> Iterator[RawRecord]:
    """Records of a cdr_csv file, in order, with the physical line each starts on. Blank lines are skipped."""
    feed = _Feed()
    reader = csv.reader(feed, strict=True)
    lines = _physical_lines(stream)
    pending: deque[tuple[int, bytes]] = deque()  # lines to re-read after giving up on a record
    number = 0

    def next_line() -> tuple[int, bytes] | None:
        nonlocal number
        if pending:
            return pending.popleft()
        raw = next(lines, None)
        if raw is None:
            return None
        number += 1
        return number, raw

    while True:
        item = next_line()
        if item is None:
            return
        start, raw = item
        if not raw.strip():
            continue
        parts = [item]
        size = len(raw)
        quotes = raw.count(b'"')
        while quotes % 2:
            if size > MAX_RECORD_BYTES or len(parts) >= MAX_RECORD_LINES:
                break
            more = next_line()
            if more is None:
                break
            parts.append(more)
            size += len(more[1])
            quotes += more[1].count(b'"')
        if quotes % 2:
            yield RawRecord(start, None, "unterminated quoted field (truncated row?)")
            pending.extendleft(reversed(parts[1:]))
            continue
        data = b"".join(p[1] for p in parts)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = data[exc.start : exc.start + 1].hex()
            yield RawRecord(start, None, f"not valid UTF-8 (byte 0x{bad} at column {exc.start + 1})")
            continue
        feed.text = text
        try:
            fields = next(reader)
        except csv.Error as exc:
            yield RawRecord(start, None, f"malformed CSV: {exc}")
            continue
        except StopIteration:  # pragma: no cover - the feed always holds a record here
            continue
        yield RawRecord(start, fields)
