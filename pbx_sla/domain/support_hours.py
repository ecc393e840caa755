"""Prepaid support hours: what a tenant bought, what support time used of it, what is left, what ran over.

A tenant buys hours per contract year (``support_hours_per_year``: a fresh allowance on each anniversary of
``contract_start``, until ``contract_end``) and/or as packages valid between two dates (inclusive). Each
piece of support time (talk time of an answered support call or callback, on the local day it happened)
is drawn from the allowances valid that day, the one expiring first first; time no allowance covers is
**overage**. For a report period:

* ``bought``: hours of the allowances valid on the period's last day;
* ``used``: hours drawn from those allowances by support time up to the period's end;
* ``remaining`` = bought - used (never negative: what does not fit is overage);
* ``overage``: hours of support time in the period that no allowance covered.

Seconds are kept exact (Decimal); hours are shown with two decimals, rounded half up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from pbx_sla.domain.catalogue import SupportPackage

HOUR = Decimal(3600)
CENTI = Decimal("0.01")


#: prepaid support hours valid from ``start`` to ``end`` (both inclusive, local days)
HoursPackage = SupportPackage


@dataclass(frozen=True)
class Use:
    """Support time spent on a local day (talk seconds of one answered support call or callback)."""

    day: date
    seconds: int


@dataclass(frozen=True)
class HoursFigures:
    bought: Decimal
    used: Decimal
    remaining: Decimal
    overage: Decimal

    def as_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in vars(self).items()}


def anniversary(start: date, years: int) -> date:
    """``start`` moved by ``years`` years (29 February becomes 28 February in common years)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)


def contract_year_packages(
    per_year: Decimal, contract_start: date, contract_end: date | None, until: date
) -> list[HoursPackage]:
    """One package per contract year that starts on or before ``until`` (the last cut at ``contract_end``)."""
    out = []
    k = 0
    while (first := anniversary(contract_start, k)) <= until and (contract_end is None or first <= contract_end):
        last = anniversary(contract_start, k + 1) - timedelta(days=1)
        if contract_end is not None:
            last = min(last, contract_end)
        out.append(HoursPackage(per_year, first, last))
        k += 1
    return out


def hours(seconds: Decimal) -> Decimal:
    return (seconds / HOUR).quantize(CENTI, rounding=ROUND_HALF_UP)


def hours_figures(packages: Sequence[HoursPackage], uses: Iterable[Use], first: date, last: date) -> HoursFigures:
    """The figures of the period of local days ``first`` .. ``last`` (inclusive); see the module docstring."""
    left = [p.hours * HOUR for p in packages]
    drawn = [Decimal(0)] * len(packages)
    overage = Decimal(0)
    order = sorted(range(len(packages)), key=lambda i: (packages[i].end, packages[i].start, i))
    for use in sorted(uses, key=lambda u: u.day):
        if use.day > last:
            continue
        need = Decimal(use.seconds)
        for i in order:
            p = packages[i]
            if need <= 0:
                break
            if p.start <= use.day <= p.end and left[i] > 0:
                take = min(need, left[i])
                left[i] -= take
                drawn[i] += take
                need -= take
        if need > 0 and use.day >= first:
            overage += need
    in_force = [i for i, p in enumerate(packages) if p.start <= last <= p.end]
    bought = sum((packages[i].hours * HOUR for i in in_force), Decimal(0))
    used = sum((drawn[i] for i in in_force), Decimal(0))
    return HoursFigures(hours(bought), hours(used), hours(bought - used), hours(overage))
