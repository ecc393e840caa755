"""Trunk state machine and availability arithmetic (pbx_sla.domain.trunks).

Scenario tests read as event tables; the property tests compare the interval arithmetic against a naive
second-by-second oracle written here independently of the code under test.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.domain.trunks import (
    Interval,
    Observation,
    Session,
    State,
    Summary,
    availability,
    combine,
    current_state,
    state_changes,
    summarize,
    trunk_summary,
)
from pbx_sla.reports.period import month_period

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def t(sec: float) -> datetime:
    return T0 + timedelta(seconds=sec)


def obs(table: str) -> list[Observation]:
    """Rows ``second | source | key | status``."""
    out = []
    for line in table.strip().splitlines():
        sec, source, key, status = (c.strip() for c in line.split("|"))
        out.append(Observation(t(float(sec)), source, key, status))
    return out


def states(observations: list[Observation]) -> list[tuple[float, str]]:
    return [((c.at - T0).total_seconds(), c.state.value) for c in state_changes(observations)]


# -- state rules --------------------------------------------------------------------------------------------


def test_any_reachable_contact_makes_the_endpoint_up():
    events = obs(
        """
        0  | contact | sip:a | Reachable
        0  | contact | sip:b | Unreachable
        10 | contact | sip:a | Unreachable
        20 | contact | sip:b | Reachable
        30 | contact | sip:b | Removed
        """
    )
    assert states(events) == [(0, "up"), (10, "down"), (20, "up"), (30, "down")]


def test_repeated_states_after_resync_are_not_changes():
    events = obs(
        """
        0  | contact | sip:a | Reachable
        5  | contact | sip:a | Reachable
        5  | peer    |       | Reachable
        9  | contact | sip:a | Reachable
        """
    )
    assert states(events) == [(0, "up")]


def test_never_qualified_contacts_are_unknown_and_no_contact_is_down():
    assert states(obs("0 | contact | sip:a | NonQualified\n1 | contact | sip:a | Unknown")) == [(0, "unknown")]
    assert states(obs("0 | endpoint |  | NoContacts")) == [(0, "down")]
    assert states(obs("0 | contact | sip:a | Reachable\n7 | endpoint |  | NoContacts")) == [(0, "up"), (7, "down")]


def test_peer_status_only_counts_while_no_contact_was_seen():
    events = obs(
        """
        0 | peer    |       | Unreachable
        4 | contact | sip:a | Reachable
        8 | peer    |       | Unreachable
        """
    )
    assert states(events) == [(0, "down"), (4, "up")]


def test_registration_combines_with_qualify():
    # registered + never-qualified contact → up; rejected → down even though the contact answers
    events = obs(
        """
        0  | contact      | sip:a   | NonQualified
        1  | registration | carrier | Registered
        10 | contact      | sip:a   | Reachable
        20 | registration | carrier | Rejected
        30 | registration | carrier | Registered
        40 | contact      | sip:a   | Unreachable
        """
    )
    assert states(events) == [(0, "unknown"), (1, "up"), (20, "down"), (30, "up"), (40, "down")]


def test_same_instant_settles_before_counting():
    events = obs("0 | contact | sip:a | Reachable\n5 | contact | sip:a | Unreachable\n5 | contact | sip:b | Reachable")
    assert states(events) == [(0, "up")]


def test_current_state_since_and_rtt():
    events = [
        Observation(t(0), "contact", "sip:a", "Reachable", 2000),
        Observation(t(10), "contact", "sip:a", "Unreachable"),
        Observation(t(20), "contact", "sip:a", "Reachable", 1500),
        Observation(t(25), "contact", "sip:a", "Reachable", 1500),
    ]
    assert current_state(reversed(events)) == (State.UP, t(20), 1500)
    assert current_state(events[:2]) == (State.DOWN, t(10), None)


# -- periods ------------------------------------------------------------------------------------------------


def test_hand_computed_day_with_maintenance_and_a_gap():
    # period 0..1000 s; session A known 100..500 (login 90), session B known 620..1000 (login 600)
    # trunk: up at 95 (poll), down 300..450, up again; B's poll at 601 says down, up at 700
    # maintenance 400..420 and 900..950
    sessions = [Session(t(90), t(100), t(500)), Session(t(600), t(620), t(1000))]
    events = obs(
        """
        95  | contact | sip:a | Reachable
        300 | contact | sip:a | Unreachable
        450 | contact | sip:a | Reachable
        601 | contact | sip:a | Unreachable
        700 | contact | sip:a | Reachable
        """
    )
    maintenance = [Interval(t(400), t(420)), Interval(t(900), t(950))]
    s = trunk_summary(Interval(t(0), t(1000)), sessions, events, maintenance)
    # unknown: 0..100, 500..620 = 220; maintenance: 20 + 50 = 70
    # down: 300..400 and 420..450 (100 + 30) + 620..700 (80) = 210
    # up: 100..300 (200) + 450..500 (50) + 700..900 (200) + 950..1000 (50) = 500
    assert (s.up, s.down, s.unknown, s.maintenance) == tuple(timedelta(seconds=x) for x in (500, 210, 220, 70))
    assert s.availability == 500 / 710
    assert [((o.start - T0).total_seconds(), (o.end - T0).total_seconds()) for o in s.outages] == [
        (300, 400),
        (420, 450),
        (620, 700),
    ]
    assert s.mttr == timedelta(seconds=(100 + 30 + 80) / 3)


def test_nothing_observed_has_no_availability():
    s = summarize(Interval(t(0), t(60)), [], [])
    assert s.availability is None and s.unknown == timedelta(seconds=60) and s.mttr is None


def test_unresynced_session_is_unknown():
    s = trunk_summary(Interval(t(0), t(100)), [Session(t(0), None, t(100))], obs("1 | contact | sip:a | Reachable"))
    assert s.unknown == timedelta(seconds=100)


def test_outage_clipped_to_the_period():
    s = trunk_summary(
        Interval(t(100), t(200)), [Session(t(0), t(1), t(300))], obs("50 | contact | sip:a | Unreachable")
    )
    assert [(o.start, o.end) for o in s.outages] == [(t(100), t(200))]
    assert s.availability == 0.0


def test_later_session_wins_where_sessions_overlap():
    sessions = [Session(t(0), t(0), t(100)), Session(t(50), t(50), t(150))]
    events = obs("0 | contact | sip:a | Reachable\n50 | contact | sip:a | Unreachable")
    # session 1 says up 0..100 (its own replay also sees the 50 s event: down 50..100), session 2 down 50..150
    s = trunk_summary(Interval(t(0), t(150)), sessions, events)
    assert (s.up, s.down) == (timedelta(seconds=50), timedelta(seconds=100))


def test_dst_months_have_their_real_length():
    prague = ZoneInfo("Europe/Prague")
    october, march = month_period(2026, 10, prague), month_period(2026, 3, prague)
    for period, hours in ((october, 31 * 24 + 1), (march, 31 * 24 - 1)):
        session = Session(period.start - timedelta(days=1), period.start - timedelta(days=1), period.end)
        events = [Observation(period.start - timedelta(hours=2), "contact", "sip:a", "Reachable")]
        s = trunk_summary(Interval(period.start, period.end), [session], events)
        assert s.up == timedelta(hours=hours)
        assert s.availability == 1.0


# -- properties against a naive oracle ---------------------------------------------------------------------

SPAN = 120
SOURCES = ("endpoint", "contact", "peer", "registration")
STATUSES = {
    "contact": ("Reachable", "Unreachable", "Unknown", "NonQualified", "Removed"),
    "peer": ("Reachable", "Unreachable"),
    "registration": ("Registered", "Rejected", "Unregistered"),
    "endpoint": ("NoContacts",),
}
KEYS = {"contact": ("sip:a", "sip:b"), "peer": ("",), "registration": ("r1",), "endpoint": ("",)}


@st.composite
def observation(draw):
    source = draw(st.sampled_from(SOURCES))
    return Observation(
        t(draw(st.integers(-20, SPAN + 20))),
        source,
        draw(st.sampled_from(KEYS[source])),
        draw(st.sampled_from(STATUSES[source])),
    )


@st.composite
def session(draw):
    start = draw(st.integers(-30, SPAN))
    end = draw(st.integers(start, SPAN + 30))
    known = draw(st.one_of(st.none(), st.integers(start, end)))
    return Session(t(start), None if known is None else t(known), t(end))


@st.composite
def window(draw):
    start = draw(st.integers(-10, SPAN + 10))
    return Interval(t(start), t(draw(st.integers(start, SPAN + 20))))


def oracle_state(observations: list[Observation]) -> str:
    """The rules of docs/trunks.md, applied naively to the observations up to an instant."""
    rank = {s: i for i, s in enumerate(SOURCES)}
    contacts: dict[str, str] = {}
    contact_seen = emptied = False
    peer = None
    regs: dict[str, str] = {}
    for o in sorted(set(observations), key=lambda o: (o.at, rank[o.source], o.key, o.status)):
        if o.source == "contact":
            contact_seen = True
            if o.status == "Removed":
                contacts.pop(o.key, None)
            else:
                contacts[o.key] = o.status
            emptied = not contacts
        elif o.source == "endpoint":
            contacts, contact_seen, emptied = {}, True, True
        elif o.source == "peer":
            peer = o.status
        else:
            regs[o.key] = o.status
    if contact_seen:
        values = list(contacts.values())
        qualify = (
            "up"
            if "Reachable" in values
            else "down"
            if "Unreachable" in values or (emptied and not contacts)
            else "unknown"
        )
    else:
        qualify = {"Reachable": "up", "Unreachable": "down"}.get(peer, "unknown")
    if regs:
        if any(v != "Registered" for v in regs.values()):
            return "down"
        if qualify == "unknown":
            return "up"
    return qualify


def oracle(period: tuple[int, int], sessions, observations, maintenance) -> list[str]:
    """One category per second of the period."""
    out = []
    for sec in range(*period):
        at = t(sec)
        if any(w.start <= at < w.end for w in maintenance):
            out.append("maintenance")
            continue
        covering = [s for s in sessions if s.known_from is not None and s.known_from <= at < s.end]
        if not covering:
            out.append("unknown")
            continue
        # where known sessions overlap, the latest-started one wins (ties: the later end)
        s = max(covering, key=lambda s: (s.start, s.end))
        mine = [o for o in observations if s.start <= o.at < s.end and o.at <= at]
        out.append(oracle_state(mine))
    return out


def runs(categories: list[str], value: str) -> list[tuple[int, int]]:
    found, start = [], None
    for i, c in enumerate([*categories, None]):
        if c == value and start is None:
            start = i
        elif c != value and start is not None:
            found.append((start, i))
            start = None
    return found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(observation(), max_size=25),
    st.lists(session(), max_size=4),
    st.lists(window(), max_size=3),
    st.integers(0, 40),
    st.integers(60, SPAN),
)
def test_matches_the_second_by_second_oracle(observations, sessions, maintenance, p0, p1):
    s = trunk_summary(Interval(t(p0), t(p1)), sessions, observations, maintenance)
    expected = oracle((p0, p1), sessions, observations, maintenance)
    for name, got in (("up", s.up), ("down", s.down), ("unknown", s.unknown), ("maintenance", s.maintenance)):
        assert got == timedelta(seconds=expected.count(name)), name
    assert s.up + s.down + s.unknown + s.maintenance == timedelta(seconds=p1 - p0)
    assert [(o.start, o.end) for o in s.outages] == [(t(p0 + a), t(p0 + b)) for a, b in runs(expected, "down")]


@settings(max_examples=200, deadline=None)
@given(st.lists(observation(), max_size=30), st.lists(session(), max_size=3), st.randoms(use_true_random=False))
def test_duplicates_and_arrival_order_change_nothing(observations, sessions, rnd):
    period = Interval(t(0), t(SPAN))
    base = trunk_summary(period, sessions, observations)
    shuffled = list(observations) + [rnd.choice(observations) for _ in range(len(observations))] if observations else []
    rnd.shuffle(shuffled)
    again = trunk_summary(period, list(reversed(sessions)), shuffled)
    assert (again.up, again.down, again.unknown, again.outages) == (base.up, base.down, base.unknown, base.outages)


@settings(max_examples=100, deadline=None)
@given(st.lists(observation(), max_size=20), st.lists(session(), max_size=3), st.lists(window(), max_size=4))
def test_maintenance_takes_precedence_and_is_the_union_of_windows(observations, sessions, maintenance):
    period = Interval(t(0), t(SPAN))
    s = trunk_summary(period, sessions, observations, maintenance)
    covered = sum(1 for sec in range(SPAN) if any(w.start <= t(sec) < w.end for w in maintenance))
    assert s.maintenance == timedelta(seconds=covered)
    assert trunk_summary(period, sessions, observations, [Interval(t(-1), t(SPAN + 1))]).maintenance == timedelta(
        seconds=SPAN
    )


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(2026, 3), (2026, 10), (2027, 3), (2026, 11)]))
def test_dst_month_seconds_sum_to_real_elapsed_time(seed, month):
    rnd = random.Random(seed)
    period = month_period(*month, ZoneInfo("Europe/Prague"))
    length = int((period.end - period.start).total_seconds())
    cuts = sorted(rnd.sample(range(1, length), 8))
    sessions = [
        Session(
            period.start + timedelta(seconds=a),
            period.start + timedelta(seconds=a + 5),
            period.start + timedelta(seconds=b),
        )
        for a, b in zip(cuts[::2], cuts[1::2], strict=True)
    ]
    events = [
        Observation(
            period.start + timedelta(seconds=rnd.randrange(length)),
            "contact",
            "sip:a",
            rnd.choice(("Reachable", "Unreachable")),
        )
        for _ in range(40)
    ]
    s = trunk_summary(Interval(period.start, period.end), sessions, events)
    total = s.up + s.down + s.unknown + s.maintenance
    # hand-computed month lengths: March has a 23 h day, October a 25 h day (Europe/Prague)
    hours = {(2026, 3): 743, (2026, 10): 745, (2027, 3): 743, (2026, 11): 720}[month]
    assert total == timedelta(hours=hours)


def test_combined_trunks_weigh_by_observed_time():
    # 1 h fully up + 3 h of which 1 h down: (1 + 2) / 4, not the mean of 1 and 2/3
    one = Summary(Interval(T0, T0 + timedelta(hours=1)), timedelta(hours=1), timedelta(0), timedelta(0),
                  timedelta(0), (), ())  # fmt: skip
    two = Summary(Interval(T0, T0 + timedelta(hours=4)), timedelta(hours=2), timedelta(hours=1), timedelta(0),
                  timedelta(hours=1), (), ())  # fmt: skip
    both = combine([one, two])
    assert both.availability == 3 / 4
    assert (both.maintenance, both.unknown) == (timedelta(hours=1), timedelta(0))
    assert combine([]).availability is None
    assert availability(timedelta(0), timedelta(0)) is None
