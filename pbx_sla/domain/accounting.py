"""Usage figures and tier accounting for one tenant and one period. Pure: numbers in, numbers out.

Definitions (docs/figures.md): ASR = answered / attempts; NER = (answered + busy + no answer) / attempts;
ACD = billable seconds / answered, where billable seconds count only ANSWERED legs (computed with the
calls, sql/repeatable/calls_compute_sql.sql). ``calls_per_day`` counts every day of the period (zeros included);
p95 is the nearest-rank percentile (the ⌈0.95·n⌉-th smallest of n days). ``tier_by_usage`` is the
lowest tier whose thresholds hold the p95 and the employees: "lowest" means the cheapest
``price_per_year`` (then the name, for a stable answer); a threshold that is not set holds anything.
``over_tier_days`` counts days above the contracted tier's ``max_calls_per_day`` (0 without one).
The fee is ``price_per_year * days under contract / days in that year``; a period spanning two years
sums each year's exact share (as a fraction) and rounds once, half up, to cents.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from pbx_sla.domain.percentile import nearest_rank

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Outcomes:
    """Call counts by disposition and billable seconds."""

    calls: int = 0
    answered: int = 0
    busy: int = 0
    no_answer: int = 0
    failed: int = 0
    congestion: int = 0
    billsec: int = 0

    def __add__(self, other: Outcomes) -> Outcomes:
        return Outcomes(
            self.calls + other.calls,
            self.answered + other.answered,
            self.busy + other.busy,
            self.no_answer + other.no_answer,
            self.failed + other.failed,
            self.congestion + other.congestion,
            self.billsec + other.billsec,
        )

    @property
    def asr(self) -> float | None:
        return self.answered / self.calls if self.calls else None

    @property
    def ner(self) -> float | None:
        return (self.answered + self.busy + self.no_answer) / self.calls if self.calls else None

    @property
    def acd(self) -> float | None:
        return self.billsec / self.answered if self.answered else None


@dataclass(frozen=True)
class TierTerms:
    """What accounting needs of a tier."""

    name: str
    price_per_year: Decimal
    currency: str
    max_calls_per_day: int | None = None
    max_employees: int | None = None
    active: bool = True  # inactive tiers are no longer offered: never a tier_by_usage answer


@dataclass(frozen=True)
class DailyStats:
    mean: float
    p95: int
    max: int


def every_day(first: date, last: date) -> list[date]:
    """``first``..``last`` inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_series(counts: Mapping[date, int], days: Sequence[date]) -> dict[date, int]:
    """Calls per day for every day of the period, zeros included (days outside are ignored)."""
    return {day: counts.get(day, 0) for day in days}


def daily_stats(series: Mapping[date, int]) -> DailyStats:
    values = list(series.values())
    if not values:
        return DailyStats(0.0, 0, 0)
    return DailyStats(sum(values) / len(values), nearest_rank(values) or 0, max(values))


def _holds(limit: int | None, value: int) -> bool:
    return limit is None or value <= limit


def tier_by_usage(tiers: Iterable[TierTerms], p95: int, employees: int | None) -> str | None:
    """The cheapest tier whose ``max_calls_per_day`` holds ``p95`` and ``max_employees`` holds the
    employees (unknown employees: only the calls threshold is checked); None when no tier does."""
    fitting = [
        t
        for t in tiers
        if _holds(t.max_calls_per_day, p95) and (employees is None or _holds(t.max_employees, employees))
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda t: (t.price_per_year, t.name)).name


def over_tier_days(series: Mapping[date, int], tier: TierTerms | None) -> int:
    """Days with more calls than the tier's ``max_calls_per_day``; 0 when the tier has no threshold."""
    if tier is None or tier.max_calls_per_day is None:
        return 0
    return sum(1 for calls in series.values() if calls > tier.max_calls_per_day)


def contract_days(days: Sequence[date], start: date, end: date | None) -> list[date]:
    """The days of the period under contract (``end`` inclusive, None: open-ended)."""
    return [d for d in days if d >= start and (end is None or d <= end)]


def fee(price_per_year: Decimal, days: Iterable[date]) -> Decimal:
    """``price * days / days-in-year`` per calendar year, summed exactly, rounded once half up to cents."""
    per_year: dict[int, int] = {}
    for day in days:
        per_year[day.year] = per_year.get(day.year, 0) + 1
    price = Fraction(price_per_year)
    total = sum(
        (price * n / (366 if calendar.isleap(year) else 365) for year, n in per_year.items()),
        Fraction(0),
    )
    cents = math.floor(total * 100 + Fraction(1, 2))  # half up, exactly (fees are never negative)
    return (Decimal(cents) / 100).quantize(CENT)


@dataclass(frozen=True)
class Contract:
    """What accounting needs of a tenant."""

    tenant: str
    tier: str
    employees: int
    start: date
    end: date | None = None


@dataclass(frozen=True)
class TenantUsage:
    """One row of the ``usage`` report. ``contract`` None: the unattributed calls."""

    contract: Contract | None
    outcomes: Outcomes
    daily: dict[date, int]
    stats: DailyStats
    tier_by_usage: str | None
    over_tier_days: int | None
    fee: Decimal | None
    currency: str | None


def tenant_usage(
    contract: Contract | None,
    per_day: Mapping[date, Outcomes],
    days: Sequence[date],
    tiers: Mapping[str, TierTerms],
) -> TenantUsage:
    """Figures for one tenant over the period's ``days`` (every day, zeros included).

    ``tiers``: every tier by name; the active ones are the candidates for ``tier_by_usage``.
    """
    in_period = [per_day[d] for d in days if d in per_day]
    outcomes = sum(in_period, Outcomes())
    daily = daily_series({d: o.calls for d, o in per_day.items()}, days)
    stats = daily_stats(daily)
    if contract is None:
        return TenantUsage(None, outcomes, daily, stats, None, None, None, None)
    tier = tiers.get(contract.tier)
    candidates = [t for t in tiers.values() if t.active]
    return TenantUsage(
        contract=contract,
        outcomes=outcomes,
        daily=daily,
        stats=stats,
        tier_by_usage=tier_by_usage(candidates, stats.p95, contract.employees),
        over_tier_days=over_tier_days(daily, tier),
        fee=None if tier is None else fee(tier.price_per_year, contract_days(days, contract.start, contract.end)),
        currency=None if tier is None else tier.currency,
    )
