"""One CDR leg, from an AMI ``Cdr`` event or a ``Master.csv`` (cdr_csv) row: the one way a leg is read.

Both sources describe the same ``struct ast_cdr``. An AMI event is first laid out as a cdr_csv row with
every optional column (:func:`ami_row`); then one function, :func:`read_leg`, validates and normalises
the row into a :class:`LegRow` (UTC epoch seconds, fingerprint, call key, endpoints). The daemon and
``cdr import`` both call it, so the same leg delivered over AMI and imported again from Master.csv
gives the same row and is stored once. Pure: no I/O.

Times. Asterisk writes CDR times as the server's *local* wall-clock time (``YYYY-MM-DD HH:MM:SS``,
cdr_csv with ``usegmtime = no``, and cdr_manager). :class:`LocalClock` reads them in the server's zone.
Around DST changes a local time can be ambiguous (the repeated autumn hour) or not exist (the skipped
spring hour); the fold rule (:func:`nearest_reading`): the start takes ``fold=0`` (the first occurrence;
a skipped time is read with the offset in force before the change, as ``zoneinfo`` does); the end takes
whichever reading is nearest to ``start + duration``, the answer whichever is nearest to
``end - billsec``. So a call that spans the autumn change keeps its real length.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from pbx_sla.domain.calls import call_key

#: best first (ANSWERED, then BUSY, NO ANSWER, FAILED, CONGESTION)
DISPOSITIONS = ("ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CONGESTION")
DISPOSITION_RANK = {d: i for i, d in enumerate(DISPOSITIONS)}

#: the fields of ``struct ast_cdr`` in cdr_csv's column order (cdr/cdr_csv.c, build_csv_record)
CSV_BASE = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
#: appended by ``loguniqueid = yes`` and ``loguserfield = yes``
CSV_IDS = ("uniqueid", "userfield")
#: appended by ``newcdrcolumns = yes``
CSV_NEW = ("peeraccount", "linkedid", "sequence")
#: the 21-column layout (every option on); an AMI ``Cdr`` event is laid out this way
CSV_FULL = CSV_BASE + CSV_IDS + CSV_NEW

#: AMI ``Cdr`` header, lower-cased → field. cdr_manager's own headers, plus the usual ``[mappings]`` of
#: the channel variables it does not send by itself; matched case-insensitively (``linkedid => Linkedid``
#: and ``linkedid => LinkedID`` both work).
AMI_FIELDS = {
    "accountcode": "accountcode",
    "source": "src",
    "destination": "dst",
    "destinationcontext": "dcontext",
    "callerid": "clid",
    "channel": "channel",
    "destinationchannel": "dstchannel",
    "lastapplication": "lastapp",
    "lastdata": "lastdata",
    "starttime": "start",
    "answertime": "answer",
    "endtime": "end",
    "duration": "duration",
    "billableseconds": "billsec",
    "disposition": "disposition",
    "amaflags": "amaflags",
    "uniqueid": "uniqueid",
    "userfield": "userfield",
    "peeraccount": "peeraccount",
    "linkedid": "linkedid",
    "sequence": "sequence",
}
_AMI_REQUIRED = (("StartTime", "start"), ("EndTime", "end"), ("Disposition", "disposition"))
_FULL_INDEX = {name: i for i, name in enumerate(CSV_FULL)}

_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
#: an Asterisk uniqueid: optional ``systemname-`` then ``epoch.counter``
_UNIQUEID = re.compile(r"^(?:[^\s,]+-)?\d+\.\d+$")
#: channel name suffix: ``-0000001a`` plus ``;1``/``;2`` on Local channels
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]+(?:;\d+)?$")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class CdrError(ValueError):
    """A CDR that cannot be read; ``field`` names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field '{field}': {message}")
        self.field = field


class LegRow(NamedTuple):
    """One CDR record (one leg of a call), read and normalised; the storage form of a leg.

    Field order is the staging table's column order (:data:`pbx_sla.store.calls.STAGE_COLUMNS`); times are
    UTC epoch seconds. A tuple, so that the import can write it as COPY text without conversion.
    """

    server: str
    fingerprint: str  # 32 hex digits (the leg's identity, see fingerprint_hex)
    call_key: str  # what groups legs into a call (pbx_sla.domain.calls.call_key)
    accountcode: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: int
    answer: int | None
    end: int
    duration: int
    billsec: int
    disposition: str
    amaflags: str
    uniqueid: str
    userfield: str
    peeraccount: str
    linkedid: str
    sequence: int | None
    src_endpoint: str | None
    dst_endpoint: str | None

    @property
    def caller(self) -> str:
        """What the caller is attributed by: ``src``, else the caller ID."""
        return self.src or self.clid


#: the fields of a leg row, in order
LEG_ROW_FIELDS = LegRow._fields
_new_leg_row = functools.partial(tuple.__new__, LegRow)  # LegRow(...) without the generated __new__'s cost


def fingerprint_hex(
    server: str,
    uniqueid: str,
    sequence: str,
    channel: str,
    dstchannel: str,
    dst: str,
    dcontext: str,
    start: str,
    answer: str,
    end: str,
    duration: int,
    billsec: int,
    disposition: str,
) -> str:
    """The leg's identity as 32 hex digits (MD5), the same whichever source delivered it and whichever
    time zone it is read in.

    The times are the *local text* Asterisk wrote (stripped), not instants: reading a file again under
    another zone gives the same legs, and the store then sees that their times differ
    (:func:`pbx_sla.store.calls.store_staging_text`). ``sequence`` (Asterisk's per-record counter, the
    empty string when the source has no such column) tells apart legs that are otherwise equal, such as
    the parallel legs of a ring group in an export whose channel names were pseudonymised. ``linkedid``
    is left out: it groups legs, it does not tell them apart.
    """
    text = "\x1f".join(
        (
            server,
            uniqueid,
            sequence,
            channel,
            dstchannel,
            dst,
            dcontext,
            start,
            answer,
            end,
            str(duration),
            str(billsec),
            disposition,
        )
    )
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def endpoint(channel: str) -> str | None:
    """``PJSIP/trunk-a-00000001`` → ``trunk-a``; ``Local/100@ctx-0000002a;1`` → ``100@ctx``; empty → None."""
    slash = channel.find("/")
    if slash < 0:
        return None
    head, dash, tail = channel.rpartition("-")
    if dash and tail and len(head) > slash and _HEX_DIGITS.issuperset(tail):
        return head[slash + 1 :] or None  # the usual Tech/name-<hex>: what the pattern below removes
    return _CHANNEL_SUFFIX.sub("", channel[slash + 1 :]) or None


def _int(field: str, text: str, *, optional: bool = False) -> int | None:
    if text.isdigit() and text.isascii():  # the usual case, without strip() and the checks below
        return int(text)
    text = text.strip()
    if not text and optional:
        return None
    try:
        value = int(text)
    except ValueError:
        raise CdrError(field, f"expected an integer, got {text!r}") from None
    if value < 0:
        raise CdrError(field, f"must not be negative, got {value}")
    return value


# --- local times ---------------------------------------------------------------------------------------


def _local_time(field: str, text: str, tz: ZoneInfo, *, required: bool) -> tuple[datetime, datetime] | None:
    """Both readings (fold 0, fold 1) of a local time; None when empty and not required."""
    text = text.strip()
    if not text:
        if required:
            raise CdrError(field, "is empty")
        return None
    m = _TIME.match(text)
    if not m:
        raise CdrError(field, f"expected 'YYYY-MM-DD HH:MM:SS', got {text!r}")
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise CdrError(field, f"not a valid time {text!r}: {exc}") from None
    return naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)


#: ``":MM:SS"`` → seconds into the hour, for every valid minute and second (the fast path's validation)
_MMSS = {f":{m:02d}:{sec:02d}": m * 60 + sec for m in range(60) for sec in range(60)}


class LocalClock:
    """A server's local wall-clock text → UTC epoch seconds, both DST readings (fold 0, fold 1).

    Fast for bulk import: the epoch of each local *hour* is computed once with ``zoneinfo`` and cached when
    the zone's offset does not change inside that hour (for either fold); a time in a cached hour is then
    that epoch plus minutes and seconds. Hours with a change inside them, and any text not in the exact
    ``YYYY-MM-DD HH:MM:SS`` shape, take the full path (which validates and words the error) every time.
    The cache is bounded. One clock per zone; the daemon keeps one per server zone.
    """

    MAX_HOURS = 200_000

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._hours: dict[str, tuple[int, int]] = {}

    def readings(self, field: str, text: str, *, required: bool = True) -> tuple[int, int] | None:
        hour = self._hours.get(text[:13])
        offset = _MMSS.get(text[13:])  # exactly ":MM:SS" with valid minutes and seconds, else None
        if hour is not None and offset is not None:
            return hour[0] + offset, hour[1] + offset
        return self._slow(field, text, required)

    def _slow(self, field: str, text: str, required: bool) -> tuple[int, int] | None:
        options = _local_time(field, text, self.tz, required=required)
        if options is None:
            return None
        first, second = options
        key = text[:13]
        if len(text) == 19 and key not in self._hours and len(self._hours) < self.MAX_HOURS:
            bounds = [(t.replace(minute=0, second=0), t.replace(minute=59, second=59)) for t in options]
            if all(lo.utcoffset() == hi.utcoffset() for lo, hi in bounds):
                self._hours[key] = (int(bounds[0][0].timestamp()), int(bounds[1][0].timestamp()))
        return int(first.timestamp()), int(second.timestamp())


def nearest_reading(readings: tuple[int, int], expected: int) -> int:
    """The fold rule: of a local time's two readings, the one nearest to the instant it is expected at
    (the first, ``fold=0``, on a tie)."""
    first, second = readings
    return first if first == second or abs(first - expected) <= abs(second - expected) else second


# --- layouts -------------------------------------------------------------------------------------------


def csv_layout(row: Sequence[str]) -> tuple[str, ...]:
    """Field names for a Master.csv row by its length (cdr_csv's options decide which columns exist).

    16: base; 17: + uniqueid (``loguniqueid``) or userfield (``loguserfield``), told apart by the shape
    of an Asterisk uniqueid; 18: + both; 19, 20, 21: the same + ``peeraccount, linkedid, sequence``
    (``newcdrcolumns``). Any other length raises CdrError.
    """
    n = len(row)
    base = len(CSV_BASE)
    extra_new = n - base >= 3 and _looks_like_new_columns(row)
    middle_len = n - base - (3 if extra_new else 0)
    if middle_len == 2:
        middle: tuple[str, ...] = CSV_IDS
    elif middle_len == 1:
        middle = ("uniqueid",) if _UNIQUEID.match(row[base].strip()) else ("userfield",)
    elif middle_len == 0:
        middle = ()
    else:
        raise CdrError("row", f"expected 16 to 21 fields (cdr_csv), got {n}")
    return CSV_BASE + middle + (CSV_NEW if extra_new else ())


def foreign_layout(row: Sequence[str]) -> str | None:
    """What a row that cdr_csv's layouts cannot read looks like instead, when it is recognisable: the name
    of a layout pbx-sla does not read (cdr_custom's default ``Master.csv``: caller ID first, 19 fields), or
    a description of where its disposition sits; None when the row is just bad."""
    if (
        len(row) == 19
        and _TIME.match(row[8].strip())
        and _TIME.match(row[10].strip())
        and row[13].strip().upper() in DISPOSITION_RANK
        and row[11].strip().isdigit()
        and row[12].strip().isdigit()
    ):
        return "cdr_custom's default Master.csv layout (clid, src, dst, ... accountcode, uniqueid, userfield, sequence)"
    if len(row) > 14 and row[14].strip().upper() in DISPOSITION_RANK:
        return None
    columns = [i + 1 for i, value in enumerate(row) if value.strip().upper() in DISPOSITION_RANK]
    if columns:
        return f"a layout with the disposition in column {columns[0]} of {len(row)} (cdr_csv has it in column 15)"
    return None


def _looks_like_new_columns(row: Sequence[str]) -> bool:
    """``newcdrcolumns`` ends a row with an integer sequence; 21 fields always mean it."""
    if len(row) == 21:
        return True
    if len(row) in (19, 20):
        return row[-1].strip().isdigit()
    return False


Positions = tuple[int | None, int | None, int | None, int | None, int | None]


@functools.lru_cache(maxsize=64)
def _positions(names: tuple[str, ...]) -> Positions:
    """Where uniqueid, userfield, peeraccount, linkedid, sequence sit in a row of this layout."""
    where = {name: i for i, name in enumerate(names)}
    return tuple(where.get(n) for n in ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence"))  # type: ignore[return-value]


_FULL_POSITIONS = _positions(CSV_FULL)


def ami_row(event: Mapping[str, object]) -> list[str]:
    """An AMI ``Cdr`` event laid out as a 21-column cdr_csv row (:data:`CSV_FULL`); headers are matched
    case-insensitively, absent ones give empty fields. CdrError names a missing time or disposition."""
    row = [""] * len(CSV_FULL)
    seen = set()
    for header, value in event.items():
        name = AMI_FIELDS.get(header.lower())
        if name is not None and value is not None:
            row[_FULL_INDEX[name]] = str(value)
            seen.add(name)
    for header, name in _AMI_REQUIRED:
        if name not in seen:
            raise CdrError(header, "missing from the Cdr event")
    return row


# --- the one leg path ------------------------------------------------------------------------------------


def read_leg(server: str, row: Sequence[str], clock: LocalClock) -> LegRow:
    """A leg from a row in a cdr_csv layout (a Master.csv record, or :func:`ami_row` of an AMI event).

    Validation order, and so which error a bad row reports: duration, billsec, disposition, start, end,
    answer, end before start, sequence. Every value in its usual shape (plain digits, an upper-case
    disposition, a ``YYYY-MM-DD HH:MM:SS`` time in an hour the clock has seen, a ``Tech/name-<hex>``
    channel) takes a shortcut inside :func:`_int`, :meth:`LocalClock.readings` and :func:`endpoint`;
    anything else takes the general path, which validates and words the error.
    """
    if len(row) == 21:
        i_uniqueid, i_userfield, i_peer, i_linkedid, i_sequence = _FULL_POSITIONS
    else:
        i_uniqueid, i_userfield, i_peer, i_linkedid, i_sequence = _positions(csv_layout(row))
    duration = _int("duration", row[12])
    billsec = _int("billsec", row[13])
    assert duration is not None and billsec is not None
    disposition = row[14]
    if disposition not in DISPOSITION_RANK:  # the usual case is already stripped and upper-case
        disposition = disposition.strip().upper()
        if disposition not in DISPOSITION_RANK:
            raise CdrError("disposition", f"expected one of {', '.join(DISPOSITIONS)}, got {row[14]!r}")
    start_readings = clock.readings("start", row[9])
    end_readings = clock.readings("end", row[11])
    answer_readings = clock.readings("answer", row[10], required=False) if row[10] else None
    assert start_readings is not None and end_readings is not None
    start = start_readings[0]
    # readings differ only in a DST change's hour: elsewhere there is nothing to choose (the fast path)
    end, other = end_readings
    if end != other:
        end = nearest_reading(end_readings, start + duration)
    if answer_readings is None:
        answer = None
    else:
        answer, other = answer_readings
        if answer != other:
            answer = nearest_reading(answer_readings, end - billsec)
    if end < start:
        raise CdrError("end", f"{row[11]!r} is before start {row[9]!r}")
    uniqueid = "" if i_uniqueid is None else row[i_uniqueid].strip()
    linkedid = "" if i_linkedid is None else row[i_linkedid].strip()
    sequence = None if i_sequence is None else _int("sequence", row[i_sequence], optional=True)
    channel, dstchannel, dst, dcontext = row[5], row[6], row[2], row[3]
    fingerprint = fingerprint_hex(
        server,
        uniqueid,
        "" if sequence is None else str(sequence),
        channel,
        dstchannel,
        dst,
        dcontext,
        row[9].strip(),
        row[10].strip(),
        row[11].strip(),
        duration,
        billsec,
        disposition,
    )
    return _new_leg_row(
        (
            server,
            fingerprint,
            call_key(linkedid, uniqueid, fingerprint),
            row[0],
            row[1],
            dst,
            dcontext,
            row[4],
            channel,
            dstchannel,
            row[7],
            row[8],
            start,
            answer,
            end,
            duration,
            billsec,
            disposition,
            row[15],
            uniqueid,
            "" if i_userfield is None else row[i_userfield],
            "" if i_peer is None else row[i_peer],
            linkedid,
            sequence,
            endpoint(channel),
            endpoint(dstchannel),
        )
    )


def ami_leg(server: str, event: Mapping[str, object], clock: LocalClock) -> LegRow:
    """A leg from an AMI ``Cdr`` event (headers as panoramisk gives them)."""
    return read_leg(server, ami_row(event), clock)


def leg_to_data(leg: LegRow) -> dict[str, object]:
    """A JSON-serialisable form of a leg, for :class:`~pbx_sla.pipeline.Record` (the writer may spool it)."""
    return leg._asdict()


def leg_from_data(data: Mapping[str, object]) -> LegRow:
    """Inverse of :func:`leg_to_data`."""
    return LegRow(**data)  # type: ignore[arg-type]
