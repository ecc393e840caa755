"""Prepaid support hours: contract-year allowances, packages with validity, earliest-expiry drawing, overage."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pbx_sla.domain.support_hours import HoursPackage, Use, anniversary, contract_year_packages, hours_figures

D = Decimal


def test_contract_years_follow_the_anniversary_and_stop_at_the_contract_end() -> None:
    years = contract_year_packages(D(20), date(2026, 3, 1), date(2027, 8, 31), until=date(2030, 1, 1))
    assert years == [
        HoursPackage(D(20), date(2026, 3, 1), date(2027, 2, 28)),
        HoursPackage(D(20), date(2027, 3, 1), date(2027, 8, 31)),
    ]
    assert contract_year_packages(D(5), date(2026, 3, 1), None, until=date(2026, 2, 1)) == []
    assert anniversary(date(2024, 2, 29), 1) == date(2025, 2, 28)


def test_use_within_the_allowance() -> None:
    years = contract_year_packages(D(10), date(2026, 1, 1), None, until=date(2026, 12, 31))
    uses = [Use(date(2026, 2, 3), 1800), Use(date(2026, 11, 5), 5400), Use(date(2026, 12, 20), 900)]
    f = hours_figures(years, uses, date(2026, 11, 1), date(2026, 11, 30))
    # by the end of November: 0.5 h + 1.5 h used of 10; the December call is after the period
    assert f.as_json() == {"bought": "10.00", "used": "2.00", "remaining": "8.00", "overage": "0.00"}


def test_overage_counts_only_the_period_and_a_new_year_starts_fresh() -> None:
    years = contract_year_packages(D(1), date(2026, 1, 1), None, until=date(2027, 12, 31))
    uses = [Use(date(2026, 5, 1), 3000), Use(date(2026, 6, 1), 1200), Use(date(2027, 1, 4), 600)]
    june = hours_figures(years, uses, date(2026, 6, 1), date(2026, 6, 30))
    # 3000 s + 600 s of the June call fit in the 3600 s; 600 s run over, in June
    assert (june.bought, june.used, june.remaining, june.overage) == (D("1.00"), D("1.00"), D("0.00"), D("0.17"))
    january = hours_figures(years, uses, date(2027, 1, 1), date(2027, 1, 31))
    assert (january.bought, january.used, january.overage) == (D("1.00"), D("0.17"), D("0.00"))


def test_packages_are_drawn_earliest_expiry_first() -> None:
    packages = [
        HoursPackage(D(2), date(2026, 1, 1), date(2026, 12, 31)),
        HoursPackage(D("0.5"), date(2026, 3, 1), date(2026, 3, 31)),  # expires first: drawn first in March
    ]
    uses = [Use(date(2026, 3, 10), 2700), Use(date(2026, 4, 2), 3600)]
    march = hours_figures(packages, uses, date(2026, 3, 1), date(2026, 3, 31))
    # 1800 s from the March package, 900 s from the year one; both valid on 31 March
    assert march.as_json() == {"bought": "2.50", "used": "0.75", "remaining": "1.75", "overage": "0.00"}
    april = hours_figures(packages, uses, date(2026, 4, 1), date(2026, 4, 30))
    assert april.as_json() == {"bought": "2.00", "used": "1.25", "remaining": "0.75", "overage": "0.00"}


def test_no_valid_allowance_means_everything_is_overage() -> None:
    packages = [HoursPackage(D(1), date(2026, 1, 1), date(2026, 1, 31))]
    f = hours_figures(packages, [Use(date(2026, 2, 2), 90)], date(2026, 2, 1), date(2026, 2, 28))
    assert f.as_json() == {"bought": "0.00", "used": "0.00", "remaining": "0.00", "overage": "0.03"}
