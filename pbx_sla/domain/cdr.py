"""One CDR leg, typed, from an AMI ``Cdr`` event or a ``Master.csv`` (cdr_csv) row.

Both sources describe the same ``struct ast_cdr``, so both parse into the same :class:`CdrLeg` and give
the same :attr:`CdrLeg.fingerprint`: a leg delivered over AMI and imported again from Master.csv is
stored once. Pure: no I/O.

Times. Asterisk writes CDR times as the server's *local* wall-clock time (``YYYY-MM-DD HH:MM:SS``,
cdr_csv with ``usegmtime = no``, and cdr_manager). They are turned into aware datetimes with the
server's zone. Around DST changes a local time can be ambiguous (the repeated autumn hour) or not exist
(the skipped spring hour): the start takes ``fold=0`` (the first occurrence; a skipped time is read
with the offset in force before the change, as ``zoneinfo`` does); the end then takes whichever fold
makes ``end - start`` closest to ``duration``, and the answer whichever makes ``end - answer`` closest
to ``billsec``. So a call that spans the autumn change keeps its real length.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

#: best first (spec: ANSWERED, then BUSY, NO ANSWER, FAILED, CONGESTION)
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
#: appended by ``newcdrcolumns = yes``
CSV_NEW = ("peeraccount", "linkedid", "sequence")

#: AMI ``Cdr`` header → field (cdr_manager; LinkedID/Sequence from its ``[mappings]``)
AMI_FIELDS = {
    "AccountCode": "accountcode",
    "Source": "src",
    "Destination": "dst",
    "DestinationContext": "dcontext",
    "CallerID": "clid",
    "Channel": "channel",
    "DestinationChannel": "dstchannel",
    "LastApplication": "lastapp",
    "LastData": "lastdata",
    "StartTime": "start",
    "AnswerTime": "answer",
    "EndTime": "end",
    "Duration": "duration",
    "BillableSeconds": "billsec",
    "Disposition": "disposition",
    "AMAFlags": "amaflags",
    "UniqueID": "uniqueid",
    "UserField": "userfield",
    "PeerAccount": "peeraccount",
    "LinkedID": "linkedid",
    "Sequence": "sequence",
}

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


@dataclass(frozen=True)
class CdrLeg:
    """One CDR record (one leg of a call) as Asterisk wrote it; times are aware, in UTC."""

    server: str
    accountcode: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    amaflags: str
    uniqueid: str = ""
    userfield: str = ""
    linkedid: str = ""
    sequence: int | None = None
    peeraccount: str = ""

    @property
    def fingerprint(self) -> uuid.UUID:
        """Identity of the leg, the same whichever source delivered it.

        Built only from fields every source has (not ``sequence`` or ``linkedid``, which a Master.csv
        without ``newcdrcolumns`` lacks), times as UTC instants so that the writer's zone does not matter.
        """
        return uuid.UUID(
            hex=fingerprint_hex(
                self.server,
                self.uniqueid,
                self.channel,
                self.dstchannel,
                self.dst,
                self.dcontext,
                int(self.start.timestamp()),
                None if self.answer is None else int(self.answer.timestamp()),
                int(self.end.timestamp()),
                self.duration,
                self.billsec,
                self.disposition,
            )
        )

    @property
    def call_key(self) -> str:
        """What groups legs into one call: linkedid, else uniqueid, else the leg itself."""
        return self.linkedid or self.uniqueid or f"leg:{self.fingerprint}"

    @property
    def src_endpoint(self) -> str | None:
        return endpoint(self.channel)

    @property
    def dst_endpoint(self) -> str | None:
        return endpoint(self.dstchannel)

    @property
    def order_key(self) -> tuple:
        """Deterministic leg order inside a call (start, then sequence, then identity)."""
        seq = self.sequence if self.sequence is not None else 2**31
        return (self.start.timestamp(), seq, self.uniqueid, str(self.fingerprint))


def fingerprint_hex(
    server: str,
    uniqueid: str,
    channel: str,
    dstchannel: str,
    dst: str,
    dcontext: str,
    start: int,
    answer: int | None,
    end: int,
    duration: int,
    billsec: int,
    disposition: str,
) -> str:
    """The leg fingerprint (times as UTC epoch seconds) as 32 hex digits; see :attr:`CdrLeg.fingerprint`."""
    text = "\x1f".join(
        (
            server,
            uniqueid,
            channel,
            dstchannel,
            dst,
            dcontext,
            str(start),
            "" if answer is None else str(answer),
            str(end),
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


def direction(leg: CdrLeg, trunks: frozenset[str] | set[str]) -> str:
    """``inbound`` when the calling channel is a known trunk, else ``outbound`` when the called one is,
    else ``internal``. A call from one trunk to another (transit) counts as inbound."""
    if leg.src_endpoint in trunks:
        return "inbound"
    if leg.dst_endpoint in trunks:
        return "outbound"
    return "internal"


def trunk_of(leg: CdrLeg, trunks: frozenset[str] | set[str]) -> str | None:
    """The known trunk the leg used (calling side first), else None."""
    for name in (leg.src_endpoint, leg.dst_endpoint):
        if name in trunks:
            return name
    return None


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
        naive = datetime(*(int(g) for g in m.groups()))
    except ValueError as exc:
        raise CdrError(field, f"not a valid time {text!r}: {exc}") from None
    return naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)


def _closest(options: tuple[datetime, datetime], ref: datetime, seconds: int, *, after: bool) -> datetime:
    """The reading of a time whose distance from ``ref`` is closest to ``seconds`` (fold 0 on ties)."""

    def error(t: datetime) -> float:
        delta = (t.timestamp() - ref.timestamp()) if after else (ref.timestamp() - t.timestamp())
        return abs(delta - seconds)

    return min(options, key=error)


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


def leg_from_fields(server: str, fields: Mapping[str, str], tz: ZoneInfo) -> CdrLeg:
    """Build a leg from field name → text (names as in :data:`CSV_BASE`); CdrError names a bad field."""
    get = fields.get
    duration = _int("duration", get("duration", ""))
    billsec = _int("billsec", get("billsec", ""))
    assert duration is not None and billsec is not None
    disposition = get("disposition", "").strip().upper()
    if disposition not in DISPOSITION_RANK:
        raise CdrError("disposition", f"expected one of {', '.join(DISPOSITIONS)}, got {get('disposition')!r}")
    start_opts = _local_time("start", get("start", ""), tz, required=True)
    end_opts = _local_time("end", get("end", ""), tz, required=True)
    answer_opts = _local_time("answer", get("answer", ""), tz, required=False)
    assert start_opts is not None and end_opts is not None
    start = start_opts[0]
    end = _closest(end_opts, start, duration, after=True)
    answer = None if answer_opts is None else _closest(answer_opts, end, billsec, after=False)
    if end.timestamp() < start.timestamp():
        raise CdrError("end", f"{get('end')!r} is before start {get('start')!r}")
    # kept in UTC: Python compares a gap/ambiguous local time unequal to every time of another zone (PEP 495)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    answer = None if answer is None else answer.astimezone(UTC)
    return CdrLeg(
        server=server,
        accountcode=get("accountcode", ""),
        src=get("src", ""),
        dst=get("dst", ""),
        dcontext=get("dcontext", ""),
        clid=get("clid", ""),
        channel=get("channel", ""),
        dstchannel=get("dstchannel", ""),
        lastapp=get("lastapp", ""),
        lastdata=get("lastdata", ""),
        start=start,
        answer=answer,
        end=end,
        duration=duration,
        billsec=billsec,
        disposition=disposition,
        amaflags=get("amaflags", ""),
        uniqueid=get("uniqueid", "").strip(),
        userfield=get("userfield", ""),
        linkedid=get("linkedid", "").strip(),
        sequence=_int("sequence", get("sequence", ""), optional=True),
        peeraccount=get("peeraccount", ""),
    )


def leg_from_ami(server: str, event: Mapping[str, str], tz: ZoneInfo) -> CdrLeg:
    """A leg from an AMI ``Cdr`` event (headers as panoramisk gives them)."""
    fields = {name: str(event[header]) for header, name in AMI_FIELDS.items() if event.get(header) is not None}
    for header, name in (("StartTime", "start"), ("EndTime", "end"), ("Disposition", "disposition")):
        if name not in fields:
            raise CdrError(header, "missing from the Cdr event")
    return leg_from_fields(server, fields, tz)


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
        middle: tuple[str, ...] = ("uniqueid", "userfield")
    elif middle_len == 1:
        middle = ("uniqueid",) if _UNIQUEID.match(row[base].strip()) else ("userfield",)
    elif middle_len == 0:
        middle = ()
    else:
        raise CdrError("row", f"expected 16 to 21 fields (cdr_csv), got {n}")
    return CSV_BASE + middle + (CSV_NEW if extra_new else ())


def _looks_like_new_columns(row: Sequence[str]) -> bool:
    """``newcdrcolumns`` ends a row with an integer sequence; 21 fields always mean it."""
    if len(row) == 21:
        return True
    if len(row) in (19, 20):
        return row[-1].strip().isdigit()
    return False


def leg_from_csv(server: str, row: Sequence[str], tz: ZoneInfo) -> CdrLeg:
    """A leg from one parsed Master.csv row."""
    names = csv_layout(row)
    return leg_from_fields(server, dict(zip(names, row, strict=True)), tz)


def best_disposition(dispositions: Sequence[str]) -> str:
    """The best of the legs' dispositions (ANSWERED > BUSY > NO ANSWER > FAILED > CONGESTION)."""
    return min(dispositions, key=DISPOSITION_RANK.__getitem__)


_TIME_FIELDS = ("start", "answer", "end")


def leg_to_data(leg: CdrLeg) -> dict[str, object]:
    """A JSON-serialisable form of a leg (times ISO 8601 with offset), for :class:`~pbx_sla.pipeline.Record`."""
    data: dict[str, object] = {}
    for name in CdrLeg.__dataclass_fields__:
        value = getattr(leg, name)
        data[name] = value.isoformat() if isinstance(value, datetime) else value
    return data


def leg_from_data(data: Mapping[str, object]) -> CdrLeg:
    """Inverse of :func:`leg_to_data`."""
    values = dict(data)
    for name in _TIME_FIELDS:
        value = values.get(name)
        values[name] = None if value is None else datetime.fromisoformat(str(value))
    return CdrLeg(**values)  # type: ignore[arg-type]


# --- leg rows: the storage form, and the fast Master.csv path -------------------------------------------

#: the fields of a leg row, in order (the storage layer's staging columns; times as UTC epoch seconds)
LEG_ROW_FIELDS = (
    "server",
    "fingerprint",
    "call_key",
    *CSV_BASE,
    "uniqueid",
    "userfield",
    *CSV_NEW,
    "src_endpoint",
    "dst_endpoint",
)

LegRow = tuple  # values in LEG_ROW_FIELDS order


def _call_key(linkedid: str, uniqueid: str, fingerprint: str) -> str:
    return linkedid or uniqueid or f"leg:{uuid.UUID(hex=fingerprint)}"


def row_caller(row: LegRow) -> str:
    """The number a leg row's caller is attributed by: src, else the caller ID (as
    :func:`pbx_sla.domain.calls.caller_number` does for a :class:`CdrLeg`)."""
    return row[4] or row[7]  # type: ignore[no-any-return]


def leg_row(leg: CdrLeg) -> LegRow:
    """A leg as a row (:data:`LEG_ROW_FIELDS`); the fingerprint as 32 hex digits."""
    fingerprint = leg.fingerprint.hex
    return (
        leg.server,
        fingerprint,
        _call_key(leg.linkedid, leg.uniqueid, fingerprint),
        leg.accountcode,
        leg.src,
        leg.dst,
        leg.dcontext,
        leg.clid,
        leg.channel,
        leg.dstchannel,
        leg.lastapp,
        leg.lastdata,
        int(leg.start.timestamp()),
        None if leg.answer is None else int(leg.answer.timestamp()),
        int(leg.end.timestamp()),
        leg.duration,
        leg.billsec,
        leg.disposition,
        leg.amaflags,
        leg.uniqueid,
        leg.userfield,
        leg.peeraccount,
        leg.linkedid,
        leg.sequence,
        leg.src_endpoint,
        leg.dst_endpoint,
    )


#: ``":MM:SS"`` → seconds into the hour, for every valid minute and second (the fast path's validation)
_MMSS = {f":{m:02d}:{sec:02d}": m * 60 + sec for m in range(60) for sec in range(60)}


class LocalClock:
    """A server's local wall-clock text → UTC epoch seconds, both DST readings (fold 0, fold 1).

    Same results and errors as the readings :func:`leg_from_fields` uses (the tests compare them), but
    fast for bulk import: the epoch of each local *hour* is computed once with ``zoneinfo`` and cached
    when the zone's offset does not change inside that hour (for either fold); a time in a cached hour is
    then that epoch plus minutes and seconds. Hours with a change inside them, and any text not in the
    exact ``YYYY-MM-DD HH:MM:SS`` shape, take the full path every time. The cache is bounded.
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


@functools.lru_cache(maxsize=64)
def _positions(names: tuple[str, ...]) -> tuple[int | None, ...]:
    """Where uniqueid, userfield, peeraccount, linkedid, sequence sit in a row of this layout."""
    where = {name: i for i, name in enumerate(names)}
    return tuple(where.get(n) for n in ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence"))


def csv_leg_row(server: str, row: Sequence[str], clock: LocalClock) -> LegRow:
    """``leg_row(leg_from_csv(server, row, clock.tz))`` without building the leg: the import fast path.

    Same validation, in the same order, with the same messages as :func:`leg_from_fields`: every value
    in its usual shape (plain digits, an upper-case disposition, a ``YYYY-MM-DD HH:MM:SS`` time in an hour
    :class:`LocalClock` has seen, a ``Tech/name-<hex>`` channel) takes a shortcut inside :func:`_int`,
    :meth:`LocalClock.readings` and :func:`endpoint`; anything else takes the general path, which validates
    and words the error.
    """
    if len(row) == 21:
        i_uniqueid, i_userfield, i_peer, i_linkedid, i_sequence = 16, 17, 18, 19, 20
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
    start_opts = clock.readings("start", row[9])
    end_opts = clock.readings("end", row[11])
    answer_opts = clock.readings("answer", row[10], required=False) if row[10] else None
    assert start_opts is not None and end_opts is not None
    start = start_opts[0]
    e0, e1 = end_opts
    end = e0 if e0 == e1 or abs(e0 - start - duration) <= abs(e1 - start - duration) else e1
    if answer_opts is None:
        answer = None
    else:
        a0, a1 = answer_opts
        answer = a0 if a0 == a1 or abs(end - a0 - billsec) <= abs(end - a1 - billsec) else a1
    if end < start:
        raise CdrError("end", f"{row[11]!r} is before start {row[9]!r}")
    uniqueid = "" if i_uniqueid is None else row[i_uniqueid].strip()
    linkedid = "" if i_linkedid is None else row[i_linkedid].strip()
    sequence = None if i_sequence is None else _int("sequence", row[i_sequence], optional=True)
    channel, dstchannel, dst, dcontext = row[5], row[6], row[2], row[3]
    fingerprint = fingerprint_hex(
        server, uniqueid, channel, dstchannel, dst, dcontext, start, answer, end, duration, billsec, disposition
    )
    return (
        server,
        fingerprint,
        _call_key(linkedid, uniqueid, fingerprint),
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
