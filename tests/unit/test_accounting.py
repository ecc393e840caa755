"""Accounting figures against values worked out by hand (definitions: docs/figures.md)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from pbx_sla.domain.accounting import (
    Contract,
    Outcomes,
    TierTerms,
    contract_days,
    every_day,
    fee,
    over_tier_days,
    tenant_usage,
    tier_by_usage,
)
from pbx_sla.domain.percentile import nearest_rank

TIERS = {
    "tier1": TierTerms("tier1", Decimal("25000"), "CZK", 100, 20),
    "tier2": TierTerms("tier2", Decimal("46000"), "CZK", 500, 50),
    "tier3": TierTerms("tier3", Decimal("96000"), "CZK", 1000, 100),
    "tier4": TierTerms("tier4", Decimal("190000"), "CZK", None, None),
}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        ([7], 7),
        (list(range(1, 21)), 19),  # ceil(0.95*20) = 19th smallest
        (list(range(1, 32)), 30),  # ceil(29.45) = 30
        (list(range(1, 101)), 95),  # exactly 95: no float drift to 96
        ([0] * 29 + [500, 3], 3),  # ceil(29.45) = 30th smallest of 31: the one spike day is above it
    ],
)
def test_nearest_rank(values, expected):
    assert nearest_rank(values) == expected


def test_tier_by_usage_cheapest_that_holds_calls_and_employees():
    assert tier_by_usage(TIERS.values(), 80, 10) == "tier1"
    assert tier_by_usage(TIERS.values(), 100, 10) == "tier1"  # thresholds are inclusive
    assert tier_by_usage(TIERS.values(), 101, 10) == "tier2"
    assert tier_by_usage(TIERS.values(), 10, 45) == "tier2"  # employees decide
    assert tier_by_usage(TIERS.values(), 5000, 10) == "tier4"  # no thresholds: holds everything
    assert tier_by_usage([TIERS["tier1"]], 5000, 10) is None


def test_over_tier_days():
    series = {date(2026, 3, d): n for d, n in zip(range(1, 6), [99, 100, 101, 250, 0], strict=True)}
    assert over_tier_days(series, TIERS["tier1"]) == 2
    assert over_tier_days(series, TIERS["tier4"]) == 0


def test_fee_full_month_and_rounding_half_up():
    march = every_day(date(2026, 3, 1), date(2026, 3, 31))
    assert fee(Decimal("25000"), march) == Decimal("2123.29")  # 25000*31/365 = 2123.287...
    # 73 * 5 / 365 = 1.00 exactly; 0.73 * 5 / 365 = 0.01 exactly; 0.365 * 1 / 365 = 0.001 -> 0.00
    assert fee(Decimal("73"), march[:5]) == Decimal("1.00")
    # 36.50 * 1 / 365 = 0.10 ; 1.825 per year/365 = 0.005 exactly -> half up to 0.01
    assert fee(Decimal("1.825"), march[:1]) == Decimal("0.01")


def test_fee_leap_year_and_two_years():
    feb_2028 = every_day(date(2028, 2, 1), date(2028, 2, 29))
    assert len(feb_2028) == 29
    assert fee(Decimal("36600"), feb_2028) == Decimal("2900.00")  # 36600*29/366
    span = every_day(date(2027, 12, 30), date(2028, 1, 2))  # 2 days of 2027, 2 of 2028
    # 36500*2/365 + 36500*2/366 = 200 + 199.4535... = 399.4535... -> 399.45 (rounded once)
    assert fee(Decimal("36500"), span) == Decimal("399.45")


def test_contract_starting_mid_month():
    march = every_day(date(2026, 3, 1), date(2026, 3, 31))
    days = contract_days(march, date(2026, 3, 10), None)
    assert days[0] == date(2026, 3, 10) and len(days) == 22
    assert len(contract_days(march, date(2025, 1, 1), date(2026, 3, 15))) == 15


def test_tenant_usage_row():
    days = every_day(date(2026, 3, 1), date(2026, 3, 31))
    per_day = {
        date(2026, 3, 2): Outcomes(
            calls=150, answered=100, busy=20, no_answer=10, failed=15, congestion=5, billsec=6000
        ),
        date(2026, 3, 3): Outcomes(calls=50, answered=50, billsec=1000),
        date(2026, 2, 28): Outcomes(calls=999),  # outside the period: ignored
    }
    row = tenant_usage(Contract("acme", "tier1", 10, date(2026, 3, 10)), per_day, days, TIERS)
    o = row.outcomes
    assert (o.calls, o.answered, o.billsec) == (200, 150, 7000)
    assert o.asr == pytest.approx(0.75)
    assert o.ner == pytest.approx(180 / 200)
    assert o.acd == pytest.approx(7000 / 150)
    assert len(row.daily) == 31 and row.daily[date(2026, 3, 1)] == 0
    assert row.stats.max == 150 and row.stats.p95 == 50 and row.stats.mean == pytest.approx(200 / 31)
    assert row.over_tier_days == 1
    assert row.tier_by_usage == "tier1"
    assert row.fee == Decimal("1506.85")  # 25000 * 22 / 365 = 1506.849...
    assert row.currency == "CZK"


def test_no_attempts_gives_null_ratios():
    o = Outcomes()
    assert (o.asr, o.ner, o.acd) == (None, None, None)
    assert Outcomes(calls=3, busy=3).acd is None
