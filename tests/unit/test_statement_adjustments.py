"""Statements' pure core: frozen figures from report rows, adjustments against what was last stated, the
amount due; a month's frozen figure plus its stated deltas is always its current figure."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pbx_sla.domain.statements import ADJUSTED, adjustments, amount_due, frozen_figures, last_stated

USAGE = {
    "tenant": "acme", "tier": "tier3", "calls": 10, "answered": 7, "billable_seconds": 420,
    "calls_per_day": {"mean": 0.333, "p95": 2, "max": 3}, "tier_by_usage": "tier1", "over_tier_days": 0,
    "fee": {"amount": "7890.41", "currency": "CZK"},
}  # fmt: skip
SLA = {
    "support_calls": 8, "answered_within_target": 3, "service_level": 0.5, "service_level_target": 0.9,
    "availability": 0.998607, "availability_target": 0.999,
    "breaches": [{"metric": "service_level", "target": 0.9, "actual": 0.5}],
    "credit": {"percent": 5.0, "amount": "394.52", "currency": "CZK"},
}  # fmt: skip


def test_frozen_figures_take_the_report_values() -> None:
    f = frozen_figures(USAGE, SLA)
    assert (f["calls"], f["answered"], f["billable_seconds"], f["fee"], f["credit"], f["currency"]) == (
        10, 7, 420, "7890.41", "394.52", "CZK")  # fmt: skip
    assert f["breaches"] == SLA["breaches"] and f["credit_percent"] == 5.0
    assert set(ADJUSTED) <= set(f)


def test_adjustments_against_the_frozen_then_the_last_stated_value() -> None:
    frozen = frozen_figures(USAGE, SLA)
    later = {**frozen, "calls": 11, "answered": 8, "billable_seconds": 480, "credit": "0.00"}
    found = [a.as_json() for a in adjustments("2026-11", last_stated(frozen, []), later)]
    assert found == [
        {"period": "2026-11", "figure": "calls", "was": 10, "now": 11, "delta": 1},
        {"period": "2026-11", "figure": "answered", "was": 7, "now": 8, "delta": 1},
        {"period": "2026-11", "figure": "billable_seconds", "was": 420, "now": 480, "delta": 60},
        {"period": "2026-11", "figure": "credit", "was": "394.52", "now": "0.00", "delta": "-394.52"},
    ]
    # stated once: the next close finds nothing more, until the month changes again
    assert adjustments("2026-11", last_stated(frozen, found), later) == []
    again = {**later, "calls": 12}
    [adj] = adjustments("2026-11", last_stated(frozen, found), again)
    assert (adj.figure, adj.was, adj.now, adj.delta) == ("calls", 11, 12, 1)


def test_money_compares_as_decimal_and_ratios_have_no_delta() -> None:
    frozen = frozen_figures(USAGE, SLA)
    assert adjustments("m", frozen, {**frozen, "fee": "7890.410"}) == []
    [adj] = adjustments("m", frozen, {**frozen, "service_level": 0.75})
    assert (adj.was, adj.now, adj.delta) == (0.5, 0.75, None)


def test_amount_due() -> None:
    figures = {"fee": "100.00", "credit": "5.00"}
    adj = [
        {"figure": "credit", "delta": "-3.00"},  # less credit owed for an earlier month: more due
        {"figure": "fee", "delta": "1.50"},
        {"figure": "calls", "delta": 4},
    ]
    assert amount_due(figures, adj) == Decimal("99.50")


counts = st.integers(0, 10_000)


@given(st.lists(st.fixed_dictionaries({"calls": counts, "credit": st.decimals(0, 1000, places=2)}), min_size=1,
                max_size=6))  # fmt: skip
def test_frozen_plus_stated_deltas_is_the_current_figure(history) -> None:
    """A month re-counted at every later close: each close states the change since the last one."""
    frozen = {**{f: None for f in ADJUSTED}, "calls": 0, "credit": "0.00"}
    stated: list[dict] = []
    for state in history:
        current = {**frozen, "calls": state["calls"], "credit": str(state["credit"])}
        stated += [a.as_json() for a in adjustments("2026-11", last_stated(frozen, stated), current)]
        calls = frozen["calls"] + sum(a["delta"] for a in stated if a["figure"] == "calls")
        credit = Decimal(frozen["credit"]) + sum(Decimal(a["delta"]) for a in stated if a["figure"] == "credit")
        assert calls == state["calls"] and credit == state["credit"]


def test_reaction_share_is_frozen_and_adjusted_as_a_ratio() -> None:
    sla = {**SLA, "reaction": {"requests": 4, "share": 0.75}, "reaction_share_target": 0.9}
    frozen = frozen_figures(USAGE, sla)
    assert (frozen["reaction"], frozen["reaction_share_target"]) == (0.75, 0.9)
    assert frozen_figures(USAGE, {**SLA, "reaction": None})["reaction"] is None  # no catalogue tier: no figure
    [adj] = adjustments("2026-11", last_stated(frozen, []), {**frozen, "reaction": 0.5})
    assert adj.as_json() == {"period": "2026-11", "figure": "reaction", "was": 0.75, "now": 0.5, "delta": None}


def test_a_figure_the_month_was_not_frozen_with_is_never_adjusted() -> None:
    """Months closed before ``reaction`` was a statement figure: no adjustment from nothing to today's share."""
    older = {k: v for k, v in frozen_figures(USAGE, SLA).items() if k not in ("reaction", "reaction_share_target")}
    current = {**frozen_figures(USAGE, {**SLA, "reaction": {"share": 0.5}}), "calls": 11}
    assert [a.figure for a in adjustments("2026-11", last_stated(older, []), current)] == ["calls"]
