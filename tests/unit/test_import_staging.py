"""What the import's parser sends to PostgreSQL: each good row of the file as one line of COPY text whose
values, once unescaped as PostgreSQL does, are the leg row's values, whatever the fields hold (tabs,
backslashes, line breaks, CRLF files), and with or without the plain-block shortcut."""

from __future__ import annotations

import csv
import io
import random
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.domain.cdr import CdrError, LocalClock, read_leg
from pbx_sla.domain.phone import normalise
from pbx_sla.ingest.staging import staged_batches
from pbx_sla.store.calls import STAGE_COLUMNS

PRAGUE = ZoneInfo("Europe/Prague")
ODD = ["", "plain", "tab\there", "back\\slash", "two\nlines", "cr\rhere", 'say "hi"', "end\\"]


def unescape_copy_text(line: str) -> list[str | None]:
    """PostgreSQL's reading of one COPY text line (written here from its documentation, with NULL as the
    empty string as the import declares it)."""
    values: list[str | None] = []
    for raw in line.split("\t"):
        out, i = [], 0
        while i < len(raw):
            if raw[i] == "\\":
                nxt = raw[i + 1]
                out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[nxt])
                i += 2
            else:
                out.append(raw[i])
                i += 1
        values.append("".join(out) or None)
    return values


def csv_line(fields: list[str], crlf: bool) -> str:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n" if crlf else "\n").writerow(fields)
    return buf.getvalue()


def row(rnd: random.Random, i: int) -> list[str]:
    odd = lambda: rnd.choice(ODD)  # noqa: E731
    start = f"2026-03-{1 + i % 28:02d} 1{i % 10}:0{i % 6}:1{i % 10}"
    return [
        odd(), "777000001", rnd.choice(["221000111", "s"]), odd(), f'"Caller {i}" <777000001>',
        f"PJSIP/trunk-a-{i:08x}", rnd.choice(["", f"PJSIP/agent-{i:08x}"]), "Dial", odd(), start, "", start,
        "0", "0", "NO ANSWER", "DOCUMENTATION", f"{i}.1", odd(), "", f"{i}.0", str(i % 3),
    ]  # fmt: skip


def as_text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 40), st.booleans(), st.integers(1, 9))
def test_staged_lines_unescape_to_the_leg_rows(seed, n, crlf, batch):
    rnd = random.Random(seed)
    rows = [row(rnd, i) for i in range(n)]
    if rnd.random() < 0.5:  # a whole file of ordinary rows: the plain shortcut is taken
        for r in rows:
            r[3] = r[8] = r[17] = r[0] = "plain"
    data = "".join(csv_line(r, crlf) for r in rows).encode()
    expected = []
    for r in rows:
        try:
            leg = read_leg("pbx1", r, LocalClock(PRAGUE))
        except CdrError:
            continue
        caller, dialled = normalise(leg[4] or leg[7], "420"), normalise(leg[5], "420")
        expected.append([as_text(v) for v in (*leg, caller, dialled)])

    got = []
    for b in staged_batches(io.BytesIO(data), "pbx1", PRAGUE, "420", batch, 1):
        text = b.payloads[0].decode()
        lines = text.split("\n")
        assert lines[-1] == "" and len(lines) - 1 == b.counts[0]  # one line per row, no raw line feed
        got += [unescape_copy_text(line) for line in lines[:-1]]
    assert all(len(values) == len(STAGE_COLUMNS) for values in got)
    assert got == expected
