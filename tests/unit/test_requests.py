"""Support requests: opening, joining, reaction by answer or callback, assessment against business time."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbx_sla.domain.catalogue import Calendar, TimeRange
from pbx_sla.domain.durations import format_duration, parse_duration
from pbx_sla.domain.requests import (
    Callback,
    SupportContact,
    assess,
    derive_requests,
    is_callback,
    reaction_figures,
    why,
)

PRAGUE = ZoneInfo("Europe/Prague")
BUSINESS = Calendar("business", False, {d: (TimeRange(540, 1080),) for d in range(5)}, frozenset({date(2026, 12, 24)}))
ALWAYS = Calendar("always", True)
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # Monday 10:00 Prague


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def call(key: str, minute: float, answered: float | None = None, tenant: str = "acme") -> SupportContact:
    return SupportContact(
        key,
        tenant,
        "Jana",
        "+420777000001",
        at(minute),
        "answered" if answered is not None else "abandoned",
        None if answered is None else at(answered),
    )


def callback(key: str, minute: float, tenant: str = "acme") -> Callback:
    return Callback(key, tenant, "staff", "+420777000001", at(minute), 120)


def test_a_call_answered_live_is_a_request_reacted_at_the_answer() -> None:
    [r] = derive_requests([call("c1", 0, answered=1.5)], [])
    assert (r.opened_at, r.reacted_at, r.reacted_by, r.calls) == (at(0), at(1.5), "answer", ["c1"])


def test_unanswered_calls_join_the_open_request_until_a_callback() -> None:
    calls = [call("c1", 0), call("c2", 30), call("c3", 200)]
    [r1, r2] = derive_requests(calls, [callback("b1", 90)])
    assert (r1.opened_at, r1.calls, r1.reacted_at, r1.reacted_by, r1.reaction) == (
        at(0),
        ["c1", "c2"],
        at(90),
        "callback",
        "b1",
    )
    assert (r2.opened_at, r2.calls, r2.reacted_at) == (at(200), ["c3"], None)


def test_a_later_answered_call_reacts_and_joins() -> None:
    [r] = derive_requests([call("c1", 0), call("c2", 40, answered=42)], [])
    assert (r.calls, r.reacted_at, r.reacted_by, r.reaction) == (["c1", "c2"], at(42), "answer", "c2")


def test_the_first_reaction_wins_and_a_callback_with_nothing_open_reacts_to_nothing() -> None:
    # callback during the wait of an answered call: the callback came first
    [r] = derive_requests([call("c1", 0), call("c2", 40, answered=50)], [callback("b0", -5), callback("b1", 45)])
    assert (r.reacted_at, r.reacted_by) == (at(45), "callback")


def test_a_callback_before_the_request_does_not_react() -> None:
    [r] = derive_requests([call("c1", 10)], [callback("b1", 5)])
    assert r.reacted_at is None


def test_tenants_are_separate() -> None:
    rs = derive_requests([call("a", 0), call("b", 1, tenant="bistro")], [callback("x", 5, tenant="bistro")])
    assert [(r.tenant, r.reacted_by) for r in rs] == [("acme", None), ("bistro", "callback")]


@given(
    st.lists(st.tuples(st.integers(0, 500), st.one_of(st.none(), st.integers(0, 20))), max_size=25),
    st.lists(st.integers(-50, 600), max_size=8),
)
def test_every_call_belongs_to_one_request_and_requests_do_not_overlap(
    raw: list[tuple[int, int | None]], cbs: list[int]
) -> None:
    contacts = [call(f"c{i}", m, None if w is None else m + w) for i, (m, w) in enumerate(raw)]
    requests = derive_requests(contacts, [callback(f"b{i}", m) for i, m in enumerate(cbs)])
    keys = [k for r in requests for k in r.calls]
    assert sorted(keys) == sorted(c.key for c in contacts)
    for a, b in itertools.pairwise(requests):
        assert a.reacted_at is not None and a.reacted_at <= b.opened_at
    for r in requests:
        assert r.reacted_at is None or r.reacted_at >= r.opened_at


def test_assess_business_hours_friday_evening_is_due_monday() -> None:
    friday_evening = datetime(2026, 12, 4, 18, 30, tzinfo=UTC)  # 19:30 Prague
    [r] = derive_requests([SupportContact("c", "acme", None, None, friday_evening, "closed")], [])
    saturday = datetime(2026, 12, 5, 12, tzinfo=UTC)
    a = assess(r, BUSINESS, PRAGUE, 4 * 3600, now=saturday)
    assert a.deadline == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # Monday 13:00 Prague
    assert (a.status, a.business_seconds) == ("open", 0.0)
    later = assess(r, BUSINESS, PRAGUE, 4 * 3600, now=datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    assert (later.status, later.business_seconds) == ("overdue", 4 * 3600)


def test_assess_met_and_breached_at_the_deadline() -> None:
    [r] = derive_requests([call("c1", 0)], [callback("b1", 240)])  # Mon 10:00 → 14:00: exactly 4 h
    assert assess(r, BUSINESS, PRAGUE, 4 * 3600, now=at(1000)).status == "met"
    [r] = derive_requests([call("c1", 0)], [callback("b1", 241)])
    late = assess(r, BUSINESS, PRAGUE, 4 * 3600, now=at(1000))
    assert (late.status, late.business_seconds) == ("breached", 241 * 60)


def test_assess_24_7_counts_wall_time_and_no_target_is_never_late() -> None:
    [r] = derive_requests([call("c1", 0)], [callback("b1", 600)])
    assert assess(r, ALWAYS, PRAGUE, 4 * 3600, now=at(1000)).business_seconds == 600 * 60
    assert assess(r, ALWAYS, PRAGUE, None, now=at(1000)).status == "met"
    [r] = derive_requests([call("c1", 0)], [])
    no_target = assess(r, ALWAYS, PRAGUE, None, now=at(100000))
    assert (no_target.status, no_target.deadline) == ("open", None)


def test_reaction_figures() -> None:
    rs = derive_requests(
        [call("c1", 0), call("c2", 500), call("c3", 1000, answered=1001), call("c4", 1100)],
        [callback("b1", 60), callback("b2", 900)],
    )
    assessed = [assess(r, ALWAYS, PRAGUE, 3600, now=at(1130)) for r in rs]
    assert [a.status for a in assessed] == ["met", "breached", "met", "open"]
    f = reaction_figures(assessed, 3600)
    assert (f.requests, f.met, f.breached, f.open, f.overdue) == (4, 2, 1, 1, 0)
    assert f.share == pytest.approx(2 / 3)
    assert f.median_business_seconds == 3600.0  # of 3600, 24000, 60
    assert f.p95_business_seconds == 24000.0
    assert reaction_figures([], 3600).share is None


def test_is_callback_normalises_like_routing() -> None:
    kw = dict(staff=frozenset({"staff", "agent1"}), numbers=frozenset({"+420777000001"}), country_code="420")
    assert is_callback("staff", "00420777000001", 30, minimum_seconds=30, **kw) == "+420777000001"  # type: ignore[arg-type]
    assert is_callback("agent1", "777000001", 30, minimum_seconds=30, **kw) == "+420777000001"  # type: ignore[arg-type]
    assert is_callback("agent1", "777000001", 29, minimum_seconds=30, **kw) is None  # type: ignore[arg-type]
    assert is_callback("trunk-a", "777000001", 99, minimum_seconds=30, **kw) is None  # type: ignore[arg-type]
    assert is_callback("staff", "777000002", 99, minimum_seconds=30, **kw) is None  # type: ignore[arg-type]
    assert is_callback(None, "777000001", 99, minimum_seconds=30, **kw) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "reason", "outcome", "expected"),
    [
        ("queue", "authorised-number", "answered", "answered"),
        ("queue", "authorised-number", "abandoned", "abandoned"),
        ("queue", "out-of-hours-queue", "abandoned", "oncall-unanswered"),
        ("closed", "out-of-hours", "not-queued", "closed"),
        ("closed", "out-of-hours-voicemail", "not-queued", "voicemail"),
        ("fallback", "agi-failure", "abandoned", "agi-failure"),
        ("queue", "pin-ok", "waiting", "waiting"),
        ("queue", "pin-ok", "not-queued", "not-queued"),
    ],
)
def test_why(action: str, reason: str, outcome: str, expected: str) -> None:
    assert why(action, reason, outcome) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("4h", 14400), ("48h", 172800), ("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("90s", 90), (" 1h 5s ", 3605)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "4", "h", "4x", "30m1h", "1h1h", "-4h", "4.5h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
