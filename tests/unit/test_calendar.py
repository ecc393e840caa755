"""Support hours: local wall-clock time in the catalogue's zone, holidays, 24/7, DST change days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pbx_sla.domain.calendar import hours_to_text, is_open, parse_day, parse_range
from pbx_sla.domain.catalogue import Calendar, TimeRange

PRAGUE = ZoneInfo("Europe/Prague")
WEEKDAYS_9_18 = {d: (TimeRange(9 * 60, 18 * 60),) for d in range(5)}
BUSINESS = Calendar("business", False, WEEKDAYS_9_18, frozenset({date(2026, 12, 24)}))
SPLIT = Calendar(
    "split", False, {0: (TimeRange(8 * 60, 12 * 60), TimeRange(13 * 60, 17 * 60)), 5: (TimeRange(0, 1440),)}
)
ALWAYS = Calendar("always", True, {}, frozenset({date(2026, 12, 24)}))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("calendar", "at", "expected"),
    [
        # winter: Prague = UTC+1
        (BUSINESS, utc(2026, 1, 5, 7, 59), False),  # Mon 08:59 local
        (BUSINESS, utc(2026, 1, 5, 8, 0), True),  # Mon 09:00 local: start inclusive
        (BUSINESS, utc(2026, 1, 5, 16, 59, 59), True),  # Mon 17:59:59
        (BUSINESS, utc(2026, 1, 5, 17, 0), False),  # Mon 18:00: end exclusive
        (BUSINESS, utc(2026, 1, 10, 10, 0), False),  # Saturday
        # summer: Prague = UTC+2
        (BUSINESS, utc(2026, 7, 6, 7, 0), True),  # Mon 09:00 local
        (BUSINESS, utc(2026, 7, 6, 16, 0), False),  # Mon 18:00 local
        # holiday closes the whole local day (Thu 24 Dec 2026)
        (BUSINESS, utc(2026, 12, 24, 10, 0), False),
        (BUSINESS, utc(2026, 12, 23, 23, 30), False),  # already 24 Dec 00:30 local, holiday
        (BUSINESS, utc(2026, 12, 23, 16, 30), True),  # 23 Dec 17:30 local
        # DST spring forward: Sun 29 Mar 2026 02:00 → 03:00; Mon 30 Mar open 09:00 CEST = 07:00 UTC
        (BUSINESS, utc(2026, 3, 30, 6, 59), False),
        (BUSINESS, utc(2026, 3, 30, 7, 0), True),
        (BUSINESS, utc(2026, 3, 27, 7, 59), False),  # Fri before: still CET
        (BUSINESS, utc(2026, 3, 27, 8, 0), True),
        # DST fall back: Sun 25 Oct 2026 03:00 → 02:00; Mon 26 Oct back to CET (09:00 = 08:00 UTC)
        (BUSINESS, utc(2026, 10, 26, 7, 30), False),
        (BUSINESS, utc(2026, 10, 26, 8, 0), True),
        (BUSINESS, utc(2026, 10, 23, 7, 0), True),  # Fri before: CEST, 09:00
        # split day and a full 00:00-24:00 Saturday
        (SPLIT, utc(2026, 1, 5, 11, 59), False),  # Mon 12:59 local: lunch
        (SPLIT, utc(2026, 1, 5, 12, 0), True),  # Mon 13:00
        (SPLIT, utc(2026, 1, 10, 0, 0), True),  # Sat 01:00
        (SPLIT, utc(2026, 1, 10, 22, 59, 59), True),  # Sat 23:59:59
        (SPLIT, utc(2026, 1, 10, 23, 0), False),  # Sun 00:00
        # 24/7: always, holidays included
        (ALWAYS, utc(2026, 12, 24, 3, 0), True),
        (ALWAYS, utc(2026, 3, 29, 1, 30), True),
    ],
)
def test_is_open(calendar: Calendar, at: datetime, expected: bool) -> None:
    assert is_open(calendar, at, PRAGUE) is expected


def test_dst_days_walk_of_wall_clock() -> None:
    """Across both DST change Sundays' following weeks, open exactly 09:00-18:00 local, counted minute by minute."""
    for monday in (datetime(2026, 3, 30, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC)):
        start = monday - timedelta(hours=3)
        open_minutes = []
        for i in range(27 * 60):
            at = start + timedelta(minutes=i)
            if is_open(BUSINESS, at, PRAGUE):
                open_minutes.append(at.astimezone(PRAGUE))
        assert len(open_minutes) == 9 * 60
        assert open_minutes[0].strftime("%H:%M") == "09:00"
        assert open_minutes[-1].strftime("%H:%M") == "17:59"


def test_naive_datetime_refused() -> None:
    with pytest.raises(ValueError):
        is_open(BUSINESS, datetime(2026, 1, 5, 10, 0), PRAGUE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("09:00-18:00", TimeRange(540, 1080)), ("00:00-24:00", TimeRange(0, 1440)), ("7:30 - 8:15", TimeRange(450, 495))],
)
def test_parse_range(text: str, expected: TimeRange) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("18:00-09:00", "after the start"),
        ("09:00-09:00", "after the start"),
        ("24:00-24:00", "not a time of day"),
        ("09:60-10:00", "not a time of day"),
        ("25:00-26:00", "not a time of day"),
        ("24:30-24:45", "not a time of day"),
        ("9-18", "not a time range"),
        ("24/7", "not a time range"),
    ],
)
def test_parse_range_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_range(text)


def test_parse_day() -> None:
    assert parse_day(["13:00-17:00", "08:00-12:00"]) == (TimeRange(480, 720), TimeRange(780, 1020))
    assert parse_day(["08:00-12:00", "12:00-17:00"]) == (TimeRange(480, 720), TimeRange(720, 1020))
    with pytest.raises(ValueError, match="overlap"):
        parse_day(["08:00-12:00", "11:00-17:00"])
    with pytest.raises(ValueError, match="expected"):
        parse_day(9)


def test_hours_to_text_round_trip() -> None:
    assert hours_to_text(SPLIT.hours) == {"mon": ["08:00-12:00", "13:00-17:00"], "sat": ["00:00-24:00"]}
