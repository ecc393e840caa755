"""Business time: how many seconds a support calendar is open between two instants, and the instant a
number of open seconds after a start (a reaction deadline).

"Open" means exactly what :func:`pbx_sla.domain.calendar.is_open` says: the local wall-clock time in the
catalogue's zone lies in one of the day's ranges and the local day is no holiday. Opening hours are wall
clock, so a DST change day keeps 09:00-18:00; hours that straddle the change follow the wall clock too
(an hour skipped in spring is not open, an hour repeated in autumn is open twice). A ``24/7`` calendar
counts wall time (every second of an instant range). A start outside the hours counts from the next
opening: the seconds before it are simply not open.

The arithmetic works on intervals, not on minutes: each local day's ranges become UTC intervals through
the zone's offset segments (found by bisection where the offset changes), so a month costs a few dozen
offset look-ups instead of 40 000 minute checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from pbx_sla.domain.catalogue import Calendar

#: the widest UTC offsets in use (-12:00 .. +14:00), with a margin
_EAST = timedelta(hours=15)
_WEST = timedelta(hours=13)
_DAY = timedelta(days=1)
#: how far ahead a deadline is searched before the calendar is declared never open
HORIZON_DAYS = 3660


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {at!r}")
    return at.astimezone(UTC)


def _offset(tz: ZoneInfo, at: datetime) -> timedelta:
    offset = at.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _segments(tz: ZoneInfo, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime, timedelta]]:
    """``[lo, hi)`` (UTC) cut where the zone's offset changes: ``(start, end, offset)`` in order.

    Probes every 6 hours (zones change offset at most a few times a year, never twice in 6 hours) and
    bisects to the second where two probes differ.
    """
    out: list[tuple[datetime, datetime, timedelta]] = []
    start, current = lo, _offset(tz, lo)
    probe = lo
    while probe < hi:
        step_end = min(probe + timedelta(hours=6), hi)
        after = _offset(tz, step_end)
        if after != current:
            a, b = probe, step_end  # offset(a) == current, offset(b) != current
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                mid = mid.replace(microsecond=0) if mid.microsecond else mid
                if mid <= a:
                    break
                if _offset(tz, mid) == current:
                    a = mid
                else:
                    b = mid
            out.append((start, b, current))
            start, current = b, _offset(tz, b)
        probe = step_end
    out.append((start, hi, current))
    return out


@lru_cache(maxsize=4096)
def _day_segments(tz: ZoneInfo, day: date) -> tuple[tuple[datetime, datetime, timedelta], ...]:
    """Offset segments of every instant whose local time can fall on ``day``."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return tuple(_segments(tz, midnight - _EAST, midnight + _DAY + _WEST))


#: memo of :func:`_plain_day_intervals`: (id(calendar), zone, day) -> (calendar, intervals); the calendar is
#: held so its id cannot be reused by another object while the entry lives (calendars hold a dict, so they
#: are not hashable); cleared whole when it reaches :data:`_MEMO_SIZE` entries
_MEMO: dict[tuple[int, ZoneInfo, date], tuple[Calendar, tuple[tuple[datetime, datetime], ...]]] = {}
_MEMO_SIZE = 65536


def _day_intervals(calendar: Calendar, tz: ZoneInfo, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The UTC intervals during which the local time is inside ``day``'s opening hours (sorted): those of
    :func:`_plain_day_intervals`, memoised per calendar object, zone and day (a month of requests asks for
    the same few dozen days again and again; calendars are immutable)."""
    key = (id(calendar), tz, day)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is calendar:
        return hit[1]
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.clear()
    out = tuple(_plain_day_intervals(calendar, tz, day))
    _MEMO[key] = (calendar, out)
    return out


def _plain_day_intervals(calendar: Calendar, tz: ZoneInfo, day: date) -> list[tuple[datetime, datetime]]:
    """The UTC intervals during which the local time is inside ``day``'s opening hours (sorted)."""
    if day in calendar.holidays:
        return []
    ranges = calendar.hours.get(day.weekday(), ())
    if not ranges:
        return []
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)  # the local wall clock, read as UTC
    out = []
    for r in ranges:
        wall_start = midnight + timedelta(minutes=r.start)
        wall_end = midnight + timedelta(minutes=r.end)
        for seg_start, seg_end, offset in _day_segments(tz, day):
            a = max(wall_start - offset, seg_start)
            b = min(wall_end - offset, seg_end)
            if a < b:
                out.append((a, b))
    out.sort()
    return out


def open_intervals(calendar: Calendar, tz: ZoneInfo, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's open intervals (UTC, in order, disjoint, possibly touching) from ``start`` on, the
    first clipped to begin at ``start``; endless (a 24/7 calendar yields one interval per day)."""
    start = _aware(start, "start")
    if calendar.always:
        while True:
            yield start, start + _DAY
            start += _DAY
    day = start.astimezone(tz).date() - _DAY
    pending: list[tuple[datetime, datetime]] = []
    for _ in range(HORIZON_DAYS + 2):
        pending.extend(_day_intervals(calendar, tz, day))
        pending.sort()
        # no instant of a later local day comes before the next day's midnight at the easternmost offset
        bound = datetime(day.year, day.month, day.day, tzinfo=UTC) + _DAY - _EAST
        keep = []
        for a, b in pending:
            if a >= bound:
                keep.append((a, b))
            elif b > start:
                yield max(a, start), b
        pending = keep
        day += _DAY


#: the local days :func:`_first_open` looks at (``at``'s and the next ones): a weekend and a holiday or two
_FIRST_OPEN_DAYS = 7
#: :func:`_first_open`'s last answer: :func:`pbx_sla.domain.requests.assess` asks for the same start twice
_LAST_FIRST_OPEN: tuple[Calendar, ZoneInfo, datetime, tuple[datetime, datetime] | None] | None = None


def _first_open(calendar: Calendar, tz: ZoneInfo, at: datetime) -> tuple[datetime, datetime] | None:
    """The first open interval that ends after ``at`` (``at`` inside it, or it is the next opening), when it is
    one of the :data:`_FIRST_OPEN_DAYS` local days from ``at``'s on (else None: the caller takes the general
    way).

    A day's intervals hold the instants whose local wall clock is in that day's hours, so they lie between
    the day's local midnight and the next's, in the days' order: those of the days before end by ``at``, and
    the first one from ``at``'s day on that ends after ``at`` is the first of all (intervals are disjoint).
    Most requests open and are reacted within a day's hours or the closed night or weekend before them:
    :func:`open_seconds` and :func:`add_open_seconds` answer those from this interval alone, exactly what the
    day-by-day way gives, without it (a year of requests assessed at once, as the kept requests are, spent
    most of its time there)."""
    global _LAST_FIRST_OPEN
    last = _LAST_FIRST_OPEN
    if last is not None and last[0] is calendar and last[1] is tz and last[2] == at:
        return last[3]
    found = None
    day = at.astimezone(tz).date()
    for _ in range(_FIRST_OPEN_DAYS):
        for a, b in _day_intervals(calendar, tz, day):
            if b > at:
                found = (a, b)
                break
        if found is not None:
            break
        day += _DAY
    _LAST_FIRST_OPEN = (calendar, tz, at, found)
    return found


def open_seconds(calendar: Calendar, tz: ZoneInfo, start: datetime, end: datetime) -> float:
    """Seconds in ``[start, end)`` during which ``calendar`` is open (0 when ``end <= start``)."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return 0.0
    if calendar.always:
        return (end - start).total_seconds()
    first = _first_open(calendar, tz, start)
    if first is not None and end <= first[1]:  # no other interval reaches [start, end)
        return max(end - max(first[0], start), timedelta()).total_seconds()
    total = timedelta()
    day = start.astimezone(tz).date() - _DAY
    last = end.astimezone(tz).date() + _DAY
    # whole months this far inside the span add their memoised total: every instant of a local day 3 days
    # after start's local day is after start, and one 3 days before end's is before end, whatever the zone's
    # offsets (they differ by at most 26 hours); the months at the edges are counted day by day
    inside_from, inside_to = day + 4 * _DAY, last - 4 * _DAY
    while day <= last:
        if day.day == 1 and day >= inside_from:
            following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            if following - _DAY <= inside_to:
                total += _month_open(calendar, tz, day)
                day = following
                continue
        for a, b in _day_intervals(calendar, tz, day):
            a, b = max(a, start), min(b, end)
            if a < b:
                total += b - a
        day += _DAY
    return total.total_seconds()


#: memo of :func:`_month_open`, as :data:`_MEMO`: (id(calendar), zone, first day) -> (calendar, open time)
_MONTH_MEMO: dict[tuple[int, ZoneInfo, date], tuple[Calendar, timedelta]] = {}


def _month_open(calendar: Calendar, tz: ZoneInfo, first: date) -> timedelta:
    """The open time of the local days of ``first``'s month: the sum of their :func:`_day_intervals` (an
    open request can be months old; its business time then costs a few months, not a few hundred days)."""
    key = (id(calendar), tz, first)
    hit = _MONTH_MEMO.get(key)
    if hit is not None and hit[0] is calendar:
        return hit[1]
    if len(_MONTH_MEMO) >= _MEMO_SIZE:
        _MONTH_MEMO.clear()
    total = timedelta()
    day = first
    while day.month == first.month:
        for a, b in _day_intervals(calendar, tz, day):
            total += b - a
        day += _DAY
    _MONTH_MEMO[key] = (calendar, total)
    return total


def add_open_seconds(calendar: Calendar, tz: ZoneInfo, start: datetime, seconds: float) -> datetime | None:
    """The earliest instant ``t >= start`` with ``open_seconds(start, t) == seconds``: a reaction deadline.

    A start out of hours counts from the next opening; 0 seconds is ``start`` itself. None when the calendar
    is not open that long within :data:`HORIZON_DAYS` (a calendar without hours).
    """
    start = _aware(start, "start")
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds}")
    if calendar.always:
        return start + timedelta(seconds=seconds)
    if seconds == 0:
        return start
    left = timedelta(seconds=seconds)
    first = _first_open(calendar, tz, start)
    if first is not None and first[1] - max(first[0], start) >= left:  # the first open interval holds it
        return max(first[0], start) + left
    horizon = start + timedelta(days=HORIZON_DAYS)
    for a, b in open_intervals(calendar, tz, start):
        if a > horizon:
            return None
        if b - a >= left:
            return a + left
        left -= b - a
    return None  # pragma: no cover - open_intervals stops only past the horizon


def next_opening(calendar: Calendar, tz: ZoneInfo, at: datetime) -> datetime | None:
    """The first instant ``>= at`` at which the calendar is open (``at`` itself when open); None: never."""
    at = _aware(at, "at")
    for a, _b in open_intervals(calendar, tz, at):
        return a if a <= at + timedelta(days=HORIZON_DAYS) else None
    return None  # pragma: no cover
