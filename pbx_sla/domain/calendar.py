"""Support hours: is a tier's support open at an instant, and parsing of ``"09:00-18:00"`` ranges.

Opening hours are wall-clock times in the catalogue's time zone, so a DST change day keeps
09:00-18:00 (it is 9 hours of wall clock; the day itself has 23 or 25 hours). Holidays close the whole
local day. A ``"24/7"`` calendar is always open: holidays do not close it (round-the-clock support is
the point of such a tier), and the catalogue rejects holidays on a 24/7 calendar as a likely mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from pbx_sla.domain.catalogue import Calendar, TimeRange

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
ALWAYS = "24/7"
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def is_open(calendar: Calendar, at: datetime, tz: ZoneInfo) -> bool:
    """Whether ``calendar`` is open at the aware instant ``at``, judged by the local time in ``tz``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("is_open needs an aware datetime")
    if calendar.always:
        return True
    local = at.astimezone(tz)
    if local.date() in calendar.holidays:
        return False
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    return any(r.start <= minute < r.end for r in calendar.hours.get(local.weekday(), ()))


def format_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_range(r: TimeRange) -> str:
    return f"{format_minutes(r.start)}-{format_minutes(r.end)}"


def parse_range(text: str) -> TimeRange:
    """``"HH:MM-HH:MM"`` → :class:`TimeRange`; ``24:00`` allowed as an end; end must be after start."""
    m = _RANGE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a time range HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    for h, mi, is_end in ((h1, m1, False), (h2, m2, True)):
        if mi > 59 or h > 24 or (h == 24 and (mi != 0 or not is_end)):
            raise ValueError(f"{text!r}: {h:02d}:{mi:02d} is not a time of day")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"{text!r}: the end must be after the start")
    return TimeRange(start, end)


def parse_day(value: object) -> tuple[TimeRange, ...]:
    """One day's hours: a range string or a list of them; sorted; overlapping ranges rejected.

    Touching ranges (``09:00-12:00``, ``12:00-18:00``) are allowed.
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError('expected "HH:MM-HH:MM" or a list of such ranges')
    ranges = sorted((parse_range(i) for i in items), key=lambda r: (r.start, r.end))
    for a, b in pairwise(ranges):
        if b.start < a.end:
            raise ValueError(f"ranges {format_range(a)} and {format_range(b)} overlap")
    return tuple(ranges)


def hours_to_text(hours: Mapping[int, tuple[TimeRange, ...]]) -> dict[str, list[str]]:
    """Weekday hours as ``{"mon": ["09:00-18:00"], ...}`` (days without hours left out)."""
    return {DAYS[d]: [format_range(r) for r in hours[d]] for d in sorted(hours) if hours[d]}
