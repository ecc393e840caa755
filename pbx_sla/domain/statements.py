"""Monthly statements: which figures a closed month freezes, and how later changes become adjustments.

A statement freezes, per tenant, the figures of the ``usage`` and ``sla`` reports for a closed month. It is
never changed afterwards. When the figures of a closed month change later (a late CDR leg, a support call
replayed from a spool), the change is *stated* on the next statement closed: one adjustment per (month,
figure) whose value differs from what was last stated for it, i.e. the frozen value, or the ``now`` of the
latest adjustment already stated for that figure. Each change is so reported exactly once, on the first
statement closed after it happened, and the sum of a month's frozen figure and its adjustments' deltas is
always the month's current figure.

Pure: JSON-shaped dicts in, dicts out (money as decimal strings, counts as ints, ratios as floats).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

#: figure → kind: ``count`` (int, delta int), ``money`` (decimal string, delta decimal string),
#: ``ratio`` (float or None, no delta: only was → now)
ADJUSTED: dict[str, str] = {
    "calls": "count",
    "answered": "count",
    "billable_seconds": "count",
    "over_tier_days": "count",
    "support_calls": "count",
    "answered_within_target": "count",
    "fee": "money",
    "credit": "money",
    "service_level": "ratio",
    "availability": "ratio",
    "reaction": "ratio",
}


def frozen_figures(usage: Mapping[str, Any], sla: Mapping[str, Any]) -> dict[str, Any]:
    """One tenant's statement figures from its ``usage`` and ``sla`` report rows (the JSON keys of docs/figures.md)."""
    fee = Decimal(usage["fee"]["amount"])
    credit = Decimal(sla["credit"]["amount"])
    return {
        "tier": usage["tier"],
        "calls": usage["calls"],
        "answered": usage["answered"],
        "billable_seconds": usage["billable_seconds"],
        "calls_per_day": usage["calls_per_day"],
        "tier_by_usage": usage["tier_by_usage"],
        "over_tier_days": usage["over_tier_days"],
        "fee": str(fee),
        "currency": usage["fee"]["currency"],
        "support_calls": sla["support_calls"],
        "answered_within_target": sla["answered_within_target"],
        "service_level": sla["service_level"],
        "service_level_target": sla["service_level_target"],
        "availability": sla["availability"],
        "availability_target": sla["availability_target"],
        # the share of the month's support requests reacted to within the tier's target (judged as of the close)
        "reaction": (sla.get("reaction") or {}).get("share"),
        "reaction_share_target": sla.get("reaction_share_target"),
        "breaches": list(sla["breaches"]),
        "credit_percent": sla["credit"]["percent"],
        "credit": str(credit),
    }


@dataclass(frozen=True)
class Adjustment:
    """A figure of an earlier closed ``period`` that changed since it was last stated."""

    period: str
    figure: str
    was: Any
    now: Any

    @property
    def delta(self) -> Any:
        kind = ADJUSTED[self.figure]
        if kind == "count":
            return int(self.now) - int(self.was)
        if kind == "money":
            return str(Decimal(self.now) - Decimal(self.was))
        return None

    def as_json(self) -> dict[str, Any]:
        return {"period": self.period, "figure": self.figure, "was": self.was, "now": self.now, "delta": self.delta}


def last_stated(frozen: Mapping[str, Any], earlier: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What was last stated for each adjusted figure of one (tenant, month): the frozen value, overridden in
    order by the ``now`` of every adjustment stated since (``earlier``: adjustment dicts, oldest first).
    A figure the month was not frozen with (closed by a version that did not state it, e.g. ``reaction``)
    is left out: it was never stated, so it is never adjusted."""
    stated = {f: frozen.get(f) for f in ADJUSTED if f in frozen}
    for adj in earlier:
        stated[adj["figure"]] = adj["now"]
    return stated


def _differs(kind: str, was: Any, now: Any) -> bool:
    if kind == "money":
        return (was is None) != (now is None) or (was is not None and Decimal(was) != Decimal(now))
    return bool(was != now)


def adjustments(period: str, stated: Mapping[str, Any], current: Mapping[str, Any]) -> list[Adjustment]:
    """The adjusted figures (of those ``stated``) whose current value differs from the stated one, in
    :data:`ADJUSTED` order."""
    return [
        Adjustment(period, figure, stated.get(figure), current.get(figure))
        for figure, kind in ADJUSTED.items()
        if figure in stated and _differs(kind, stated.get(figure), current.get(figure))
    ]


def amount_due(figures: Mapping[str, Any], adjustments_: Iterable[Mapping[str, Any]]) -> Decimal:
    """This statement's amount: its month's fee less its credit, plus the fee deltas and less the credit deltas
    of the earlier months adjusted on it."""
    total = Decimal(figures["fee"]) - Decimal(figures["credit"])
    for adj in adjustments_:
        if adj["figure"] == "fee":
            total += Decimal(adj["delta"])
        elif adj["figure"] == "credit":
            total -= Decimal(adj["delta"])
    return total
