"""Known trunk states kept per UTC day (pbx_sla.store.trunk_days) give the summaries of the direct replay.

The store replays each span (the days that are over, one at a time in the table; the open rest) from what
its SQL selects: the sessions overlapping the span, the latest observation per (source, key) of each session
that started before the span (the greater status of two at one instant), and the observations inside it.
:func:`span_known` below is that selection in Python; the property tests hold the day-by-day concatenation
to :func:`pbx_sla.domain.trunks.trunk_summary` of the whole period on random sessions, observations
(same-instant ties included) and maintenance windows. tests/integration/test_trunk_days_store.py holds the SQL to
the same on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.domain.trunks import (
    SOURCES,
    Interval,
    Observation,
    Segment,
    Session,
    by_utc_day,
    clip,
    known_segments,
    summarize,
    trunk_summary,
    utc_day,
    utc_midnight,
)
from pbx_sla.store.trunk_days import closed_days

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SPAN_MINUTES = 4 * 24 * 60  # four UTC days


def m(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def span_known(sessions: list[Session], observations: list[Observation], start: datetime, end: datetime):
    """The known segments of ``[start, end)`` replayed from what the store's queries select for that span."""
    mine = [s for s in sessions if s.start < end and s.end > start]
    chosen: list[Observation] = []
    for s in mine:
        if s.start >= start:
            continue
        latest: dict[tuple[str, str], Observation] = {}
        for o in observations:
            if s.start <= o.at < min(start, s.end):
                k = (o.source, o.key)
                if k not in latest or (o.at, o.status) > (latest[k].at, latest[k].status):
                    latest[k] = o
        chosen += latest.values()
    if mine:
        last_end = max(s.end for s in mine)
        chosen += [o for o in observations if start <= o.at < min(end, last_end)]
    return clip(known_segments(mine, chosen), start, end)


def kept_then_live(sessions, observations, period: Interval, now: datetime) -> list[Segment]:
    """The store's assembly: each day over by ``now`` replayed alone, then the rest of the period."""
    segments: list[Segment] = []
    live_from = period.start
    days = closed_days(period, now)
    if days is not None:
        day = days[0]
        while day <= days[1]:
            start, end = utc_midnight(day), utc_midnight(day + timedelta(days=1))
            segments += by_utc_day(span_known(sessions, observations, start, end), day, day)[day]
            day += timedelta(days=1)
        live_from = max(period.start, utc_midnight(days[1] + timedelta(days=1)))
    if live_from < period.end:
        segments += span_known(sessions, observations, live_from, period.end)
    return segments


STATUSES = {
    "contact": ["Reachable", "Unreachable", "Unknown", "NonQualified", "Removed"],
    "peer": ["Reachable", "Unreachable", "Unknown"],
    "registration": ["Registered", "Rejected", "Unregistered"],
    "endpoint": ["NoContacts"],
}


@st.composite
def histories(draw):
    sessions = []
    for _ in range(draw(st.integers(0, 5))):
        start = draw(st.integers(-600, SPAN_MINUTES))
        length = draw(st.integers(0, 2 * 24 * 60))
        resync = draw(st.one_of(st.none(), st.integers(0, 30)))
        sessions.append(Session(m(start), None if resync is None else m(start + resync), m(start + length)))
    observations = []
    for _ in range(draw(st.integers(0, 40))):
        source = draw(st.sampled_from(SOURCES))
        key = draw(st.sampled_from(["a", "b"])) if source in ("contact", "registration") else ""
        at = draw(st.integers(-600, SPAN_MINUTES + 60))
        observations.append(Observation(m(at), source, key, draw(st.sampled_from(STATUSES[source]))))
        if draw(st.booleans()) and source != "endpoint":  # a second status of the same key at the same instant
            observations.append(Observation(m(at), source, key, draw(st.sampled_from(STATUSES[source]))))
    windows = [
        Interval(m(a), m(a + n))
        for a, n in draw(st.lists(st.tuples(st.integers(-60, SPAN_MINUTES), st.integers(0, 600)), max_size=3))
    ]
    start = draw(st.integers(0, SPAN_MINUTES - 1))
    end = draw(st.integers(start, SPAN_MINUTES))
    now = draw(st.integers(-60, SPAN_MINUTES + 24 * 60))
    return sessions, observations, windows, Interval(m(start), m(end)), m(now)


@settings(max_examples=400, deadline=None)
@given(histories())
def test_kept_days_and_live_rest_summarise_as_the_direct_replay(history):
    sessions, observations, windows, period, now = history
    direct = trunk_summary(period, sessions, observations, windows)
    kept = summarize(period, kept_then_live(sessions, observations, period, now), windows)
    assert kept == direct


@settings(max_examples=200, deadline=None)
@given(histories())
def test_by_utc_day_cuts_at_midnight_and_loses_nothing(history):
    sessions, observations, _windows, _period, _now = history
    known = known_segments(sessions, observations)
    first, last = date(2026, 2, 27), date(2026, 3, 7)
    days = by_utc_day(known, first, last)
    assert sorted(days) == [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for day, segs in days.items():
        assert all(utc_midnight(day) <= s.start < s.end <= utc_midnight(day + timedelta(days=1)) for s in segs)
    joined = [s for day in sorted(days) for s in days[day]]
    assert joined == [
        s for day in sorted(days) for s in clip(known, utc_midnight(day), utc_midnight(day) + timedelta(days=1))
    ]


def test_closed_days_are_the_utc_days_over_by_now():
    period = Interval(datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC))  # Prague March
    assert closed_days(period, datetime(2026, 12, 1, tzinfo=UTC)) == (date(2026, 2, 28), date(2026, 3, 31))
    assert closed_days(period, datetime(2026, 3, 20, 12, tzinfo=UTC)) == (date(2026, 2, 28), date(2026, 3, 19))
    assert closed_days(period, datetime(2026, 3, 1, 0, tzinfo=UTC)) == (date(2026, 2, 28), date(2026, 2, 28))
    assert closed_days(period, datetime(2026, 2, 28, 23, 30, tzinfo=UTC)) is None
    assert utc_day(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == date(2026, 3, 31)
