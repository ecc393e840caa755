"""Support SLA figures (service level, breaches, credits) and queue-event parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbx_sla.domain.catalogue import CreditRule
from pbx_sla.domain.events import ParseError
from pbx_sla.domain.queue_events import parse_queue_event
from pbx_sla.domain.support import (
    CallOutcome,
    below,
    breaches,
    credit_amount,
    credit_percent,
    service_figures,
)
from pbx_sla.features.support import event_handlers, queue_event_handler


def test_service_level_definition():
    calls = [
        CallOutcome("answered", 0), CallOutcome("answered", 20), CallOutcome("answered", 21),
        CallOutcome("abandoned", 3), CallOutcome("abandoned", 20), CallOutcome("abandoned", 40),
        CallOutcome("not-queued"), CallOutcome("waiting"),
    ]  # fmt: skip
    f = service_figures(calls, 20)
    assert (f.support_calls, f.answered, f.abandoned, f.answered_within_target, f.abandoned_after_target) == (
        8, 3, 3, 2, 1)  # fmt: skip
    assert f.service_level == 2 / 4


def test_service_level_none_without_denominator():
    assert service_figures([], 20).service_level is None
    assert service_figures([CallOutcome("abandoned", 5), CallOutcome("not-queued")], 20).service_level is None


@given(st.lists(st.tuples(st.sampled_from(["answered", "abandoned", "not-queued"]), st.integers(0, 300))),
       st.integers(1, 120))  # fmt: skip
def test_service_level_bounds(items, target):
    f = service_figures([CallOutcome(o, w) for o, w in items], target)
    assert f.answered_within_target <= f.answered and f.abandoned_after_target <= f.abandoned
    if f.service_level is not None:
        assert 0 <= f.service_level <= 1
    # independent count
    within = sum(1 for o, w in items if o == "answered" and w <= target)
    late = sum(1 for o, w in items if o == "abandoned" and w > target)
    answered = sum(1 for o, _ in items if o == "answered")
    assert f.service_level == (None if answered + late == 0 else within / (answered + late))


RULES = (
    CreditRule(Decimal("0.999"), Decimal("5")),
    CreditRule(Decimal("0.995"), Decimal("15")),
    CreditRule(Decimal("0.80"), Decimal("20"), "service_level"),
)


@pytest.mark.parametrize(
    ("availability", "service_level", "percent"),
    [
        (1.0, 1.0, 0),
        (0.999, 0.9, 0),  # equal to "below" is not below
        (0.9989, 0.9, 5),
        (0.99, 0.9, 15),
        (0.99, 0.5, 20),
        (None, 0.5, 20),
        (None, None, 0),
        (0.9999, 0.7999, 20),
    ],
)
def test_credit_percent_takes_the_largest_triggered(availability, service_level, percent):
    actuals = {"availability": availability, "service_level": service_level}
    assert credit_percent(RULES, actuals) == Decimal(percent)


def test_credit_amount_half_up():
    assert credit_amount(Decimal("7890.41"), Decimal("5")) == Decimal("394.52")  # 394.5205
    assert credit_amount(Decimal("10.10"), Decimal("5")) == Decimal("0.51")  # 0.505 → half up
    assert credit_amount(Decimal("100"), Decimal("0")) == Decimal("0.00")


def test_breaches():
    got = breaches({"service_level": 0.5, "availability": None}, {"service_level": Decimal("0.8"),
                                                                   "availability": Decimal("0.99")})  # fmt: skip
    assert [(b.metric, b.target, b.actual) for b in got] == [("service_level", Decimal("0.8"), 0.5)]
    assert breaches({"service_level": 0.8}, {"service_level": Decimal("0.8")}) == []
    assert breaches({"service_level": 0.1}, {"service_level": None}) == []


NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_parse_agent_connect():
    raw = {"Event": "AgentConnect", "Uniqueid": "1732.5", "Linkedid": "1732.4", "Queue": "support-premium",
           "HoldTime": "17", "RingTime": "3", "MemberName": "Agent One", "Interface": "PJSIP/agent1",
           "Timestamp": "1732352400.250000"}  # fmt: skip
    d = parse_queue_event("pbx1", raw, NOW)
    assert d == {
        "server": "pbx1", "uniqueid": "1732.5", "linkedid": "1732.4", "event": "AgentConnect",
        "at": "2024-11-23T09:00:00.250000+00:00", "queue": "support-premium", "hold_time": 17, "ring_time": 3,
        "talk_time": None, "position": None, "member": "Agent One", "reason": None,
    }  # fmt: skip


def test_parse_without_timestamp_uses_received_time():
    d = parse_queue_event("pbx1", {"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Position": "2"}, NOW)
    assert d["at"] == NOW.isoformat() and d["position"] == 2


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"Event": "QueueCallerJoin"}, "Uniqueid"),
        ({"Event": "AgentConnect", "Uniqueid": "1", "HoldTime": "x"}, "HoldTime"),
        ({"Event": "QueueCallerAbandon", "Uniqueid": "1", "HoldTime": "-1"}, "HoldTime"),
        ({"Event": "QueueCallerJoin", "Uniqueid": "1", "Timestamp": "soon"}, "Timestamp"),
        ({"Event": "Newchannel", "Uniqueid": "1"}, "Event"),
    ],
)
def test_parse_errors_name_the_field(raw, field):
    with pytest.raises(ParseError) as err:
        parse_queue_event("pbx1", raw, NOW)
    assert err.value.field == field


def test_feature_handlers_skip_bad_events():
    handlers = event_handlers(None)  # type: ignore[arg-type]
    assert set(handlers) == {"QueueCallerJoin", "AgentConnect", "QueueCallerAbandon", "AgentComplete",
                             "QueueCallerLeave"}  # fmt: skip
    assert list(queue_event_handler("pbx1", {"Event": "AgentConnect"})) == []
    [rec] = queue_event_handler("pbx1", {"Event": "AgentConnect", "Uniqueid": "1.2", "HoldTime": "4"})
    assert rec.kind == "queue_event" and rec.data["hold_time"] == 4


def test_a_ratio_equal_to_its_target_is_met():
    assert not below(0.995, Decimal("0.995"))  # 0.995 as a float is 0.99499999...
    assert below(0.9949, Decimal("0.995"))
    assert not below(1.0, Decimal("1"))
