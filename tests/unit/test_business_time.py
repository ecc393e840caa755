"""Business time against a minute-by-minute reference built on ``calendar.is_open`` (hypothesis), plus
worked examples: weekends, holidays, DST change days, out-of-hours starts, 24/7."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pbx_sla.domain import business_time
from pbx_sla.domain.business_time import add_open_seconds, next_opening, open_intervals, open_seconds
from pbx_sla.domain.calendar import is_open
from pbx_sla.domain.catalogue import Calendar, TimeRange

PRAGUE = ZoneInfo("Europe/Prague")
BUSINESS = Calendar(
    "business",
    False,
    {d: (TimeRange(9 * 60, 18 * 60),) for d in range(5)},
    frozenset({date(2026, 12, 24), date(2026, 12, 25)}),
)
ALWAYS = Calendar("always", True)
MINUTE = timedelta(minutes=1)

# zones with ordinary DST (Europe, America), a 30-minute DST (Lord Howe), changes at midnight (Santiago),
# southern hemisphere, and none
ZONES = ["Europe/Prague", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata", "UTC"]
# instants near the DST changes of 2026 in those zones, and ordinary weeks
ANCHORS = [
    datetime(2026, 3, 27, tzinfo=UTC),  # Europe spring forward on Sun 29 Mar
    datetime(2026, 10, 23, tzinfo=UTC),  # Europe fall back on Sun 25 Oct
    datetime(2026, 3, 6, tzinfo=UTC),  # US spring forward on 8 Mar
    datetime(2026, 10, 30, tzinfo=UTC),  # US fall back on 1 Nov
    datetime(2026, 4, 3, tzinfo=UTC),  # Lord Howe / Santiago April changes
    datetime(2026, 9, 4, tzinfo=UTC),  # Santiago September, Lord Howe October
    datetime(2026, 10, 2, tzinfo=UTC),
    datetime(2026, 12, 21, tzinfo=UTC),  # holidays
    datetime(2026, 6, 15, tzinfo=UTC),
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@st.composite
def ranges(draw: st.DrawFn) -> tuple[TimeRange, ...]:
    """0-3 sorted, non-overlapping ranges on a 30-minute grid (so some straddle 02:00-03:00)."""
    points = sorted(set(draw(st.lists(st.integers(0, 48), max_size=6))))
    if len(points) % 2:
        points = points[:-1]
    return tuple(TimeRange(points[i] * 30, points[i + 1] * 30) for i in range(0, len(points), 2))


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    if draw(st.integers(0, 9)) == 0:
        return ALWAYS
    hours = {d: draw(ranges()) for d in range(7) if draw(st.booleans())}
    anchor_days = [a.date() + timedelta(days=i) for a in ANCHORS for i in range(-1, 12)]
    holidays = frozenset(draw(st.lists(st.sampled_from(anchor_days), max_size=6)))
    return Calendar("c", False, hours, holidays)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    anchor = draw(st.sampled_from(ANCHORS))
    return anchor + draw(st.integers(-2 * 1440, 7 * 1440)) * MINUTE


def reference_open_seconds(calendar: Calendar, tz: ZoneInfo, start: datetime, end: datetime) -> float:
    minutes, t = 0, start
    while t < end:
        minutes += is_open(calendar, t, tz)
        t += MINUTE
    return minutes * 60.0


def reference_deadline(calendar: Calendar, tz: ZoneInfo, start: datetime, minutes: int, limit: int) -> datetime | None:
    if minutes == 0:
        return start
    t, seen = start, 0
    for _ in range(limit):
        if is_open(calendar, t, tz):
            seen += 1
            if seen == minutes:
                return t + MINUTE
        t += MINUTE
    return None


SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(calendars(), st.sampled_from(ZONES), instants(), st.integers(0, 4 * 1440))
def test_open_seconds_matches_minute_reference(calendar: Calendar, zone: str, start: datetime, span: int) -> None:
    tz = ZoneInfo(zone)
    end = start + span * MINUTE
    assert open_seconds(calendar, tz, start, end) == reference_open_seconds(calendar, tz, start, end)


@SLOW
@given(calendars(), st.sampled_from(ZONES), instants(), st.integers(0, 3 * 1440))
def test_deadline_matches_minute_reference(calendar: Calendar, zone: str, start: datetime, minutes: int) -> None:
    tz = ZoneInfo(zone)
    expected = reference_deadline(calendar, tz, start, minutes, limit=16 * 1440)
    assume(expected is not None)  # the reference gave up: the calendar is open too little
    assert add_open_seconds(calendar, tz, start, minutes * 60) == expected


@SLOW
@given(calendars(), st.sampled_from(ZONES), instants(), st.integers(1, 2 * 1440))
def test_deadline_is_the_first_instant_with_that_much_open_time(
    calendar: Calendar, zone: str, start: datetime, minutes: int
) -> None:
    tz = ZoneInfo(zone)
    deadline = add_open_seconds(calendar, tz, start, minutes * 60)
    assume(deadline is not None)
    assert open_seconds(calendar, tz, start, deadline) == minutes * 60
    assert open_seconds(calendar, tz, start, deadline - MINUTE) == (minutes - 1) * 60
    assert is_open(calendar, deadline - MINUTE, tz)


@SLOW
@given(calendars(), st.sampled_from(ZONES), instants(), st.integers(0, 3 * 1440), st.integers(0, 3 * 1440))
def test_open_seconds_is_additive(calendar: Calendar, zone: str, start: datetime, x: int, y: int) -> None:
    tz = ZoneInfo(zone)
    mid, end = start + x * MINUTE, start + (x + y) * MINUTE
    whole = open_seconds(calendar, tz, start, end)
    assert whole == open_seconds(calendar, tz, start, mid) + open_seconds(calendar, tz, mid, end)


@SLOW
@given(calendars(), st.sampled_from(ZONES), instants())
def test_intervals_are_ordered_disjoint_and_open(calendar: Calendar, zone: str, start: datetime) -> None:
    tz = ZoneInfo(zone)
    previous_end = start
    for i, (a, b) in enumerate(open_intervals(calendar, tz, start)):
        assert previous_end <= a < b
        assert is_open(calendar, a, tz) and is_open(calendar, b - timedelta(seconds=1), tz)
        previous_end = b
        if i > 20 or a > start + timedelta(days=30):
            break


@SLOW
@given(calendars(), st.sampled_from(ZONES), instants())
def test_next_opening_matches_reference(calendar: Calendar, zone: str, at: datetime) -> None:
    tz = ZoneInfo(zone)
    expected = reference_deadline(calendar, tz, at, 1, limit=16 * 1440)
    assume(expected is not None)
    assert next_opening(calendar, tz, at) == expected - MINUTE


# --- worked examples (Europe/Prague, Mon-Fri 09:00-18:00, 24/25 Dec 2026 holidays) ---


def test_friday_evening_request_with_4_hours_is_due_monday_13_00() -> None:
    # Fri 4 Dec 2026 19:30 local (18:30 UTC) → clock starts Mon 7 Dec 09:00, 4 h later 13:00 local
    assert add_open_seconds(BUSINESS, PRAGUE, utc(2026, 12, 4, 18, 30), 4 * 3600) == utc(2026, 12, 7, 12, 0)


def test_48_business_hours_span_weekends_and_holidays() -> None:
    # Wed 23 Dec 17:00 local: 1 h on Wed, 24+25 holidays, weekend, then Mon 28 Dec - Fri 1 Jan 45 h
    # (1 Jan is no holiday in this calendar), the last 2 h on Mon 4 Jan: 11:00 local
    deadline = add_open_seconds(BUSINESS, PRAGUE, utc(2026, 12, 23, 16, 0), 48 * 3600)
    assert deadline == utc(2027, 1, 4, 10, 0)


def test_open_seconds_over_a_weekend_and_out_of_hours() -> None:
    # Fri 17:00 local → Mon 10:00 local: 1 h Friday + 1 h Monday
    assert open_seconds(BUSINESS, PRAGUE, utc(2026, 12, 4, 16, 0), utc(2026, 12, 7, 9, 0)) == 7200.0
    assert open_seconds(BUSINESS, PRAGUE, utc(2026, 12, 5, 10, 0), utc(2026, 12, 6, 10, 0)) == 0.0


def test_dst_days_keep_wall_clock_hours() -> None:
    # Fri 27 Mar 2026 is CET; Mon 30 Mar is CEST: 09:00-18:00 local both days
    assert add_open_seconds(BUSINESS, PRAGUE, utc(2026, 3, 27, 16, 0), 2 * 3600) == utc(2026, 3, 30, 8, 0)
    # a calendar open 01:00-04:00 on Sunday 29 March: 02:00-03:00 does not exist, so 2 h
    night = Calendar("night", False, {6: (TimeRange(60, 240),)})
    assert open_seconds(night, PRAGUE, utc(2026, 3, 28), utc(2026, 3, 30)) == 2 * 3600
    # ... and on Sunday 25 October 02:00-03:00 happens twice, so 4 h
    assert open_seconds(night, PRAGUE, utc(2026, 10, 24), utc(2026, 10, 26)) == 4 * 3600


def test_24_7_counts_wall_time_across_dst() -> None:
    assert open_seconds(ALWAYS, PRAGUE, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12)) == 86400.0
    assert add_open_seconds(ALWAYS, PRAGUE, utc(2026, 3, 28, 12), 4 * 3600) == utc(2026, 3, 28, 16)


def test_sub_minute_instants() -> None:
    start = datetime(2026, 12, 7, 8, 59, 59, 500000, tzinfo=UTC)  # Mon 09:59:59.5 local
    assert open_seconds(BUSINESS, PRAGUE, start, utc(2026, 12, 7, 9, 0, 30)) == 30.5
    assert add_open_seconds(BUSINESS, PRAGUE, utc(2026, 12, 7, 16, 59, 30), 45) == utc(2026, 12, 8, 8, 0, 15)


def test_a_calendar_without_hours_has_no_deadline_and_no_opening() -> None:
    never = Calendar("never", False, {})
    assert add_open_seconds(never, PRAGUE, utc(2026, 1, 1), 60) is None
    assert next_opening(never, PRAGUE, utc(2026, 1, 1)) is None


def test_naive_instants_and_negative_seconds_are_rejected() -> None:
    with pytest.raises(ValueError, match="start"):
        open_seconds(BUSINESS, PRAGUE, datetime(2026, 1, 1), utc(2026, 1, 2))
    with pytest.raises(ValueError, match="negative"):
        add_open_seconds(BUSINESS, PRAGUE, utc(2026, 1, 1), -1)


@given(
    st.lists(calendars(), min_size=1, max_size=3),
    st.sampled_from(ZONES),
    st.lists(st.tuples(instants(), st.integers(0, 3 * 1440), st.integers(0, 2)), min_size=1, max_size=12),
)
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_memoised_day_intervals_give_the_plain_computation(
    cals: list[Calendar], zone: str, queries: list[tuple[datetime, int, int]]
) -> None:
    """The memo of a calendar's open intervals per local day (warm, cold, shared by equal calendars that are
    different objects, cleared when full) gives exactly what the plain per-day computation gives."""
    tz = ZoneInfo(zone)
    # equal-valued copies are distinct objects: each must get its own entries, never another's
    cals = cals + [Calendar(c.name, c.always, dict(c.hours), c.holidays) for c in cals]
    plain = business_time._plain_day_intervals
    for start, minutes, pick in queries:
        calendar = cals[pick % len(cals)]
        end = start + timedelta(minutes=minutes)
        memo = (open_seconds(calendar, tz, start, end), add_open_seconds(calendar, tz, start, minutes * 60))
        with patch.object(business_time, "_day_intervals", plain):
            want = (open_seconds(calendar, tz, start, end), add_open_seconds(calendar, tz, start, minutes * 60))
        assert memo == want
        for day in (start.date() - timedelta(days=1), start.date(), end.date()):
            assert list(business_time._day_intervals(calendar, tz, day)) == plain(calendar, tz, day)


def test_memo_is_bounded_and_tells_calendars_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(business_time, "_MEMO_SIZE", 8)
    business_time._MEMO.clear()
    shifted = Calendar("late", False, {d: (TimeRange(10 * 60, 19 * 60),) for d in range(5)}, frozenset())
    for n in range(20):
        day = date(2026, 3, 2) + timedelta(days=n)
        assert len(business_time._MEMO) <= 8
        for cal in (BUSINESS, shifted):
            assert list(business_time._day_intervals(cal, PRAGUE, day)) == business_time._plain_day_intervals(
                cal, PRAGUE, day
            )
    # Monday 2 March 2026, 09:00-18:00 and 10:00-19:00 Prague (UTC+1)
    assert business_time._day_intervals(BUSINESS, PRAGUE, date(2026, 3, 2)) == (
        (utc(2026, 3, 2, 8), utc(2026, 3, 2, 17)),
    )
    assert business_time._day_intervals(shifted, PRAGUE, date(2026, 3, 2)) == (
        (utc(2026, 3, 2, 9), utc(2026, 3, 2, 18)),
    )


@given(calendars(), st.sampled_from([*ZONES, "Pacific/Apia", "Pacific/Kiritimati"]), instants(), st.integers(0, 500))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_long_spans_equal_the_day_by_day_sum(calendar: Calendar, zone: str, start: datetime, days: int) -> None:
    """Over months, open_seconds adds whole months' memoised totals: exactly the day-by-day sum of the plain
    per-day intervals clipped to the span (zones with DST, Samoa's day skipped in 2011 is not in range but
    its +13/+14 offsets are)."""
    tz = ZoneInfo(zone)
    end = start + timedelta(days=days, seconds=days * 37)
    if calendar.always:
        want = (end - start).total_seconds()
    else:
        total = timedelta()
        day = start.astimezone(tz).date() - timedelta(days=1)
        while day <= end.astimezone(tz).date() + timedelta(days=1):
            for a, b in business_time._plain_day_intervals(calendar, tz, day):
                a, b = max(a, start), min(b, end)
                if a < b:
                    total += b - a
            day += timedelta(days=1)
        want = total.total_seconds()
    assert open_seconds(calendar, tz, start, end) == want
    assert open_seconds(calendar, tz, start, end) == want  # the memo warm


@settings(max_examples=300)
@given(calendars(), st.sampled_from(ZONES), instants(), st.integers(0, 4 * 1440), st.integers(0, 119))
def test_the_first_interval_shortcut_gives_the_general_result(
    calendar: Calendar, zone: str, start: datetime, span: int, seconds: int
) -> None:
    """open_seconds and add_open_seconds answer from the first open interval when it holds the answer
    (``_first_open``): the same values as the day-by-day way (the shortcut disabled), starts and ends on an
    interval's edges (whole minutes, as the hours are) or between, across DST days."""
    tz = ZoneInfo(zone)
    start += timedelta(seconds=seconds % 60 if seconds >= 60 else 0)
    end = start + span * MINUTE + timedelta(seconds=seconds)

    def both() -> tuple[float, datetime | None]:
        return (
            business_time.open_seconds(calendar, tz, start, end),
            business_time.add_open_seconds(calendar, tz, start, span * 60 + seconds),
        )

    fast = both()
    with patch.object(business_time, "_first_open", lambda *_args: None):
        assert both() == fast
