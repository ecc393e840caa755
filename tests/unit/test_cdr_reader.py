"""The streaming Master.csv reader: physical line numbers, quotes and newlines in caller names,
non-UTF-8 bytes, truncated rows."""

from __future__ import annotations

import io

from pbx_sla.ingest.csv_reader import read_records


def records(data: bytes):
    return list(read_records(io.BytesIO(data)))


def test_line_numbers_are_physical_with_newlines_in_quoted_fields():
    data = (
        b'"a","1"\n'
        b'"b","caller ""The\nBoss"" <1>"\n'  # two physical lines
        b"\n"  # blank line: skipped, still counted
        b'"c","3"\n'
    )
    got = records(data)
    assert [(r.line, r.fields) for r in got] == [
        (1, ["a", "1"]),
        (2, ["b", 'caller "The\nBoss" <1>']),
        (5, ["c", "3"]),
    ]


def test_non_utf8_row_is_reported_and_the_next_row_read():
    got = records(b'"a","Ji\xf8\xed"\n"b","ok"\n')
    assert got[0].fields is None and got[0].line == 1 and "UTF-8" in got[0].error
    assert got[1].fields == ["b", "ok"] and got[1].line == 2


def test_unterminated_quote_gives_up_and_resyncs():
    good = b'"x","y"\n'
    data = b'"a","trunc\n' + good * 40
    got = records(data)
    assert got[0].line == 1 and got[0].fields is None and "unterminated" in got[0].error
    assert [r.line for r in got[1:]] == list(range(2, 42))
    assert all(r.fields == ["x", "y"] for r in got[1:])


def test_truncated_last_line_without_newline():
    got = records(b'"a","b"\n"c","d')
    assert got[0].fields == ["a", "b"]
    assert got[1].line == 2 and got[1].fields is None


def test_malformed_quoting_is_reported():
    got = records(b'"a"x,"b"\n"c","d"\n')
    assert got[0].fields is None and "malformed" in got[0].error
    assert got[1].fields == ["c", "d"]


def test_crlf_lines():
    assert [r.fields for r in records(b'"a","b"\r\n"c",""\r\n')] == [["a", "b"], ["c", ""]]
