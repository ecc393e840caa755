"""The ``sla`` report: per tenant, support service level, trunk availability, voice quality, breaches and credit.

Figures: :mod:`pbx_sla.domain.support` (service level, breaches, credit) over the per-call outcomes of
the ``support_call_outcomes`` view, counted per tenant by :func:`pbx_sla.store.support.service_by_tenant`
from the table that keeps the view (``support_call_results``); availability from
:func:`pbx_sla.reports.trunks.trunk_availability` over the tenant's trunks combined by
:func:`pbx_sla.domain.trunks.combine` (Σup / (Σup + Σdown), maintenance excluded; null when the tenant
has no trunk or nothing was observed); the fee from
:func:`pbx_sla.domain.accounting.fee` (the days of the period under contract); voice quality (``qos``) from
:func:`pbx_sla.reports.qos.tenant_figures`, whose ``qos_…`` figures feed the tier's QoS breaches and credit
rules. Tenants listed: the active ones and any with support calls in the period.
Reaction figures (support requests opened in the period, judged as of ``now``) and prepaid support hours
come from :mod:`pbx_sla.reports.requests`; ``reaction`` (the share of requests that met the tier's reaction
target) is a metric like the others for breaches and credit rules.
A per-server view (``servers``, ``--server``) counts the support calls, trunks, trunk legs and requests (by
their opening call) of those servers only and judges them against the tier's targets (breaches are shown);
the contract's money figures (fee, credit) and prepaid support hours are null (:mod:`pbx_sla.reports.servers`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from pbx_sla.domain.accounting import contract_days, fee
from pbx_sla.domain.catalogue import CreditRule
from pbx_sla.domain.qos import QOS_METRICS
from pbx_sla.domain.support import ServiceFigures, breaches, credit_amount, credit_percent
from pbx_sla.domain.trunks import combine
from pbx_sla.errors import ConfigError
from pbx_sla.reports.period import Period
from pbx_sla.reports.qos import figures_json, tenant_figures
from pbx_sla.reports.render import Table, rounded
from pbx_sla.reports.requests import (
    reaction_json,
    support_figures,
    support_hours_json,
    tenant_support_hours,
)
from pbx_sla.reports.servers import footer, server_scope
from pbx_sla.reports.trunks import TrunkAvailability, trunk_availability
from pbx_sla.store.catalogue import revision_catalogue
from pbx_sla.store.support import service_by_tenant

NO_SUPPORT_CALLS = ServiceFigures(0, 0, 0, 0, 0)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _credits(raw: Any) -> tuple[CreditRule, ...]:
    items = json.loads(raw) if isinstance(raw, str) else (raw or [])
    return tuple(
        CreditRule(
            None if c.get("below") is None else Decimal(str(c["below"])),
            Decimal(str(c["percent"])),
            c.get("metric") or "availability",
            above=None if c.get("above") is None else Decimal(str(c["above"])),
        )
        for c in items
    )


async def sla_report(
    conn: asyncpg.Connection,
    period: Period,
    tenant: str | None = None,
    now: datetime | None = None,
    servers: Iterable[str] | None = None,
    *,
    trunk_rows: Sequence[TrunkAvailability] | None = None,
) -> dict[str, Any]:
    """The report as its JSON document (``period``, ``servers``, ``scope`` and ``tenants``; keys in
    docs/figures.md); support requests judged as of ``now`` (default: the current time); ``servers``: the
    ``--server`` names (None: the fleet). ``trunk_rows``: :func:`trunk_availability` of every trunk over
    ``period`` when the caller has computed it already (the dashboard's overview shows both reports), so the
    trunks are summarised once."""
    now = now or datetime.now(UTC)
    scope = await server_scope(conn, servers)
    service = await service_by_tenant(conn, period.start, period.end, tenant, scope.sql)
    tenants = await conn.fetch(
        """SELECT t.id, t.tier, t.contract_start, t.contract_end, r.price_per_year, r.currency,
                  r.answer_target_seconds, r.service_level_target, r.availability_target, r.credits
           FROM tenants t JOIN tiers r ON r.name = t.tier
           WHERE ($1::text IS NULL OR t.id = $1) AND (t.active OR t.id = ANY($2::text[]))
           ORDER BY t.id""",
        tenant,
        list(service),
    )
    if tenant is not None and not tenants:
        raise ConfigError(f"--tenant: no tenant {tenant!r} in the catalogue")
    links = await conn.fetch("SELECT tenant_id, server, trunk FROM tenant_trunks WHERE active")
    trunks: dict[str, list[tuple[str, str]]] = {}
    for r in links:
        if scope.includes(r["server"]):
            trunks.setdefault(r["tenant_id"], []).append((r["server"], r["trunk"]))
    days = list(period.days())
    revision = await revision_catalogue(conn)
    catalogue = revision[1] if revision else None
    quality = await tenant_figures(conn, period, catalogue, scope.sql, tenant)
    support = (
        await support_figures(conn, revision[1], revision[0], now, [t["id"] for t in tenants], period, scope.sql)
        if revision
        else None
    )
    # every listed tenant's trunks in one pass (a trunk shared by tenants is summarised once)
    needed = sorted({pair for t in tenants for pair in trunks.get(t["id"], [])})
    if trunk_rows is None:
        trunk_rows = await trunk_availability(conn, period, needed) if needed else []
    summaries = {(r.server, r.trunk): r for r in trunk_rows}
    fees: dict[tuple[Decimal, date | None, int], Decimal] = {}
    rules: dict[str, tuple[CreditRule, ...]] = {}
    out = []
    for t in tenants:
        figures = service.get(t["id"]) or NO_SUPPORT_CALLS
        own = trunks.get(t["id"], [])
        mine = [summaries[pair].summary for pair in own if pair in summaries]
        availability = combine(mine).availability if own else None
        reaction = support.reaction(t["id"]) if support else None
        tier = catalogue.tiers.get(t["tier"]) if catalogue else None
        actuals = {
            "service_level": figures.service_level,
            "availability": availability,
            "reaction": reaction.share if reaction else None,
        }
        targets = {
            "service_level": t["service_level_target"],
            "availability": t["availability_target"],
            "reaction": tier.reaction_share_target if tier else None,
        }
        under_contract = contract_days(days, t["contract_start"], t["contract_end"])
        fee_key = (t["price_per_year"], under_contract[0] if under_contract else None, len(under_contract))
        if fee_key not in fees:  # 500 tenants on a few prices: exact Fraction arithmetic once per price
            fees[fee_key] = fee(t["price_per_year"], under_contract)
        period_fee = fees[fee_key]
        qos = figures_json(*quality[t["id"]]) if t["id"] in quality else None
        if t["id"] in quality:
            actuals.update({metric: quality[t["id"]][0].metric(metric) for metric in QOS_METRICS})
        raw_credits = t["credits"] if isinstance(t["credits"], str) else json.dumps(t["credits"])
        if raw_credits not in rules:
            rules[raw_credits] = _credits(t["credits"])
        percent = credit_percent(rules[raw_credits], actuals)
        contract = scope.fleet  # money and prepaid hours belong to the whole contract, not to one server's share
        out.append(
            {
                "tenant": t["id"],
                "tier": t["tier"],
                "support_calls": figures.support_calls,
                "answered": figures.answered,
                "abandoned": figures.abandoned,
                "answered_within_target": figures.answered_within_target,
                "service_level": rounded(figures.service_level),
                "service_level_target": _float(t["service_level_target"]),
                "availability": rounded(availability),
                "availability_target": _float(t["availability_target"]),
                "breaches": [
                    {"metric": b.metric, "target": float(b.target), "actual": rounded(b.actual)}
                    for b in breaches(actuals, targets)
                ]
                + (qos["breaches"] if qos else []),
                "credit": {
                    "percent": float(percent),
                    "amount": str(credit_amount(period_fee, percent)),
                    "currency": t["currency"],
                }
                if contract
                else None,
                "answer_target_seconds": t["answer_target_seconds"],
                "fee": {"amount": str(period_fee), "currency": t["currency"]} if contract else None,
                "qos": qos,
                "reaction": None if reaction is None else reaction_json(reaction),
                "reaction_share_target": _float(tier.reaction_share_target if tier else None),
                "support_hours": support_hours_json(
                    tenant_support_hours(support, period, t["id"]) if support and contract else None
                ),
            }
        )
    return {"period": period.as_json(), **scope.as_json(), "tenants": out}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _reaction(r: dict[str, Any] | None) -> str:
    if r is None or r["requests"] == 0:
        return "-"
    return f"{r['met']}/{r['requests']} ({_pct(r['share'])}), {r['overdue']} overdue"


def _hours(h: dict[str, str] | None) -> str:
    if h is None:
        return "-"
    over = f", {h['overage']} h over" if h["overage"] != "0.00" else ""
    return f"{h['remaining']} of {h['bought']} h{over}"


def _credit(c: dict[str, Any] | None) -> str:
    return "-" if c is None else f"{c['percent']:g} % = {c['amount']} {c['currency']}"


def as_table(report: dict[str, Any]) -> Table:
    rows = [
        (
            t["tenant"],
            t["tier"],
            t["support_calls"],
            t["answered"],
            t["abandoned"],
            t["answered_within_target"],
            _pct(t["service_level"]),
            _pct(t["service_level_target"]),
            _pct(t["availability"]),
            _pct(t["availability_target"]),
            _pct((t["qos"] or {}).get("loss_ratio")),
            "-" if (t["qos"] or {}).get("mos_mean") is None else f"{t['qos']['mos_mean']:.2f}",
            _reaction(t["reaction"]),
            _hours(t["support_hours"]),
            ", ".join(b["metric"] for b in t["breaches"]) or "-",
            _credit(t["credit"]),
        )
        for t in report["tenants"]
    ]
    p = report["period"]
    columns = (
        *("tenant", "tier", "calls", "answered", "abandoned", "in target", "service level", "SL target"),
        *("availability", "avail. target", "loss", "MOS", "reaction met", "support hours left", "breaches"),
        "credit",
    )
    title = f"SLA {p['from']} .. {p['to']}"
    return Table(columns, rows, title=title, footer=footer(report, "fee, credit and support hours"))
