"""Support SLA figures of one tenant over a period (docs/figures.md), from per-call outcomes.

* answered: an agent answered; wait = queue entry → answer (AgentConnect HoldTime).
* abandoned: entered a queue and was never answered (the caller hung up, or the queue gave up).
* answered within target: answered with wait ≤ the tier's ``answer_target_seconds``.
* service level = answered within target / (answered + abandoned after the target); calls abandoned
  within the target are not held against it; None when the denominator is 0.
* a breach: an actual below its target (both known); the credit: the largest percentage among the
  tier's credit rules whose metric (availability by default) is below the rule's ``below``, applied
  to the period's fee, rounded half up to cents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pbx_sla.domain.catalogue import CreditRule

Outcome = Literal["answered", "abandoned", "waiting", "not-queued"]
CENT = Decimal("0.01")


@dataclass(frozen=True)
class CallOutcome:
    outcome: Outcome
    wait_seconds: float | None = None


@dataclass(frozen=True)
class ServiceFigures:
    support_calls: int
    answered: int
    abandoned: int
    answered_within_target: int
    abandoned_after_target: int

    @property
    def service_level(self) -> float | None:
        denominator = self.answered + self.abandoned_after_target
        return None if denominator == 0 else self.answered_within_target / denominator


def service_figures(calls: Iterable[CallOutcome], target_seconds: int | None) -> ServiceFigures:
    """Count the outcomes of a tenant's support calls against ``target_seconds`` (None: no target known,
    then no call is within it)."""
    total = answered = abandoned = within = late_abandon = 0
    for call in calls:
        total += 1
        wait = call.wait_seconds
        in_target = target_seconds is not None and wait is not None and wait <= target_seconds
        if call.outcome == "answered":
            answered += 1
            within += in_target
        elif call.outcome == "abandoned":
            abandoned += 1
            late_abandon += not in_target
    return ServiceFigures(total, answered, abandoned, within, late_abandon)


def below(actual: float, target: Decimal) -> bool:
    """Whether a measured ratio misses a target: compared as the float's shortest decimal form, so
    0.995 measured against a 0.995 target is met (float arithmetic would say 0.99499...)."""
    return Decimal(repr(actual)) < target


def above(actual: float, limit: Decimal) -> bool:
    """Whether a measured figure exceeds a limit, compared like :func:`below`."""
    return Decimal(repr(actual)) > limit


@dataclass(frozen=True)
class Breach:
    metric: str
    target: Decimal
    actual: float


def breaches(actuals: dict[str, float | None], targets: dict[str, Decimal | None]) -> list[Breach]:
    """Each metric whose actual is below its target; unknown actuals or targets are no breach."""
    out = []
    for metric, actual in actuals.items():
        target = targets.get(metric)
        if actual is not None and target is not None and below(actual, target):
            out.append(Breach(metric, target, actual))
    return out


def triggered(rule: CreditRule, actual: float | None) -> bool:
    """The rule's figure is known and below ``below`` (or above ``above``)."""
    if actual is None:
        return False
    if rule.below is not None and below(actual, rule.below):
        return True
    return rule.above is not None and above(actual, rule.above)


def credit_percent(rules: Sequence[CreditRule], actuals: dict[str, float | None]) -> Decimal:
    """The largest percent among the rules triggered (see :func:`triggered`), else 0."""
    return max((r.percent for r in rules if triggered(r, actuals.get(r.metric))), default=Decimal(0))


def credit_amount(fee: Decimal, percent: Decimal) -> Decimal:
    """``fee * percent / 100`` rounded half up to cents."""
    return (fee * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
