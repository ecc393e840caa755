"""The streaming Master.csv reader: physical line numbers, quotes and newlines in caller names,
non-UTF-8 bytes, truncated rows."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.ingest.csv_reader import read_blocks, read_records


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


def test_bytes_that_are_not_utf8_are_read_as_cp1252_and_the_row_kept():
    data = '"a","Jiří"\n'.encode("cp1250") + b'"b","ok \xc3\xa9"\n' + b'"c","\x9d\xc3"\n'
    blocks = list(read_blocks(io.BytesIO(data)))
    got = records(data)
    assert [(r.line, r.fields) for r in got] == [
        (1, ["a", "Ji\u0159\u00ed".encode("cp1250").decode("cp1252")]),  # lossless: the bytes come back
        (2, ["b", "ok é"]),  # valid UTF-8 untouched
        (3, ["c", "\x9d\u00c3"]),  # 0x9D is undefined in CP1252: Latin-1's U+009D
    ]
    assert got[0].fields[1].encode("cp1252") == "Jiří".encode("cp1250")
    assert [line for b in blocks for line in b.recoded] == [1, 3]


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


def test_nul_byte_rejects_only_its_row():
    got = records(b'"a","x\x00y"\n"b","ok"\n')
    assert got[0].line == 1 and got[0].fields is None and "NUL" in got[0].error
    assert got[1].fields == ["b", "ok"]


def test_quote_inside_unquoted_field_does_not_swallow_the_next_line():
    # an even number of quotes, yet csv would continue the quoted field onto the next line: the block
    # falls back to one record at a time, as the reader always parsed
    got = records(b'ab"c,"d\n"q","w"\n')
    assert got[0].line == 1 and got[0].fields is None and "malformed" in got[0].error
    assert (got[1].line, got[1].fields) == (2, ["q", "w"])


def reference_records(data: bytes) -> list[tuple]:
    """The reader's contract, one physical line at a time and one record at a time (independent of
    read_blocks' batching): balanced quotes make a record; give up after 16 lines or 8192 bytes."""
    lines = data.splitlines(keepends=True)
    out, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        j, chunk = i, lines[i]
        while chunk.count(b'"') % 2 and len(chunk) <= 8192 and j - i + 1 < 16 and j + 1 < len(lines):
            j += 1
            chunk += lines[j]
        if chunk.count(b'"') % 2:
            out.append((i + 1, None))
            i += 1
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:  # byte by byte: UTF-8 where valid, else CP1252 (Latin-1 where undefined)
            text = _cp1252_where_not_utf8(chunk)
        try:
            fields = None if "\x00" in text else next(csv.reader([text], strict=True))
        except csv.Error:
            fields = None
        out.append((i + 1, fields))
        i = j + 1
    return out


def _cp1252_where_not_utf8(data: bytes) -> str:
    out, i = [], 0
    while i < len(data):
        for n in (4, 3, 2, 1):
            try:
                out.append(data[i : i + n].decode("utf-8"))
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            byte = data[i : i + 1]
            out.append(
                byte.decode("cp1252") if byte not in (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d") else chr(byte[0])
            )
            i += 1
    return "".join(out)


PIECES = [
    b'"a","b"\n',
    b'"c",""\r\n',
    b"\n",
    b'"x","caller ""q\n',
    b'z"" <1>"\n',
    b'ab"c,"d\n',
    b'"n\x00"\n',
    b'"\xff",""\n',
    b'"caf\xe9 \xc3\xa9 \xe2\x82",""\n',
    b'"a"x,"b"\n',
    b"1,2,3\n",
    b"   \n",
    b'"unterminated\n',
    b'"tab\there","b"\n',
    b'"back\\slash",""\n',
    b'"a","b"\r\n',
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60), st.integers(1, 7))
def test_blocks_give_what_one_record_at_a_time_gives(pieces, size):
    data = b"".join(pieces)
    got = [(r.line, r.fields) for r in read_records(io.BytesIO(data))]
    assert got == reference_records(data)
    blocks = list(read_blocks(io.BytesIO(data), size))
    flat = sorted(
        [(line, f) for b in blocks for line, f in zip(b.lines, b.rows, strict=True)]
        + [(line, None) for b in blocks for line, _ in b.errors],
        key=lambda x: x[0],
    )
    assert flat == got
    for block in blocks:  # a plain block promises rows that need no escaping as COPY text
        if block.plain:
            assert not any(c in f for row in block.rows for f in row for c in "\\\t\r\n")


def test_plain_blocks():
    """Blocks are plain unless a record holds a backslash, tab or CR, or spans lines."""
    data = b'"a","b"\n"c","d"\n'
    assert [b.plain for b in read_blocks(io.BytesIO(data))] == [True]
    for odd in (b'"t\tb","x"\n', b'"b\\s","x"\n', b'"crlf","x"\r\n', b'"two\nlines","x"\n'):
        assert [b.plain for b in read_blocks(io.BytesIO(data + odd))] == [False]
        assert [b.plain for b in read_blocks(io.BytesIO(data + odd), 2)] == [True, False]
