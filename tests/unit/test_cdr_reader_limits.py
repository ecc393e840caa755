"""Issue 13: a 100 MB CSV field made ``cdr import`` reach 329 MB RSS. A physical line longer than
MAX_LINE_BYTES is rejected with its line number, read in constant memory."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest

from pbx_sla.ingest import csv_reader
from pbx_sla.ingest.csv_reader import MAX_LINE_BYTES, physical_lines, read_records


def test_a_huge_field_is_rejected_with_its_line_number_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    with path.open("wb") as fh:
        fh.write(b'"a","1"\n"b","2"\n"c","')
        for _ in range(40):  # a 40 MB field, no newline in it
            fh.write(b"x" * (1 << 20))
        fh.write(b'"\n"d","4"\n')
    tracemalloc.start()
    try:
        with path.open("rb") as fh:
            got = [(r.line, r.fields, r.error) for r in read_records(fh)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [
        (1, ["a", "1"], None),
        (2, ["b", "2"], None),
        (3, None, f"line longer than {MAX_LINE_BYTES} bytes; rejected unread"),
        (4, ["d", "4"], None),
    ]
    assert peak < 8 << 20  # a few read chunks, not the 40 MB line


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_physical_lines_match_the_file_whatever_the_read_size(monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(csv_reader, "READ_CHUNK", chunk)
    data = b'"a"\r\n\n"b"\n' + b"y" * 50 + b'\n"c"\n"tail-without-newline"'
    lines = list(physical_lines(io.BytesIO(data), limit=40))
    assert lines == [
        (1, b'"a"\r\n'),
        (2, b"\n"),
        (3, b'"b"\n'),
        (4, b""),  # too long
        (5, b'"c"\n'),
        (6, b'"tail-without-newline"'),
    ]
    assert list(physical_lines(io.BytesIO(b"z" * 100), limit=40)) == [(1, b"")]
    assert list(physical_lines(io.BytesIO(b""), limit=40)) == []


def test_a_too_long_line_inside_a_quoted_multi_line_record_ends_it() -> None:
    data = b'"a","start of a quoted\n' + b"z" * (MAX_LINE_BYTES + 1) + b'\n"b","2"\n'
    got = [(r.line, r.fields, r.error) for r in read_records(io.BytesIO(data))]
    assert got[0][0] == 1 and got[0][1] is None and "unterminated" in got[0][2]
    assert got[1] == (2, None, f"line longer than {MAX_LINE_BYTES} bytes; rejected unread")
    assert got[2] == (3, ["b", "2"], None)
