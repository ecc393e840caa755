"""The ``usage`` report: call volumes and tier accounting per tenant (keys and definitions: docs/figures.md).

Reads the per-(tenant, day) rollup ``usage_daily`` (kept exact by every leg insert), so a month over
millions of calls costs a few thousand rows. The figures are computed in
:mod:`pbx_sla.domain.accounting`. A per-server view (``--server``) reads the ``calls`` rows of those servers
instead (the rollup has no server): the same counts per (tenant, day), at the cost of reading those servers'
calls; its contract figures (tier by usage, over-tier days, fee, prepaid hours) are null
(:mod:`pbx_sla.reports.servers`). The period is taken as whole calendar days (``first_day`` to
``last_day`` in the catalogue's zone): a call belongs to the day its first leg started.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import asyncpg

from pbx_sla.domain.accounting import Contract, Outcomes, TenantUsage, TierTerms, tenant_usage
from pbx_sla.errors import ConfigError
from pbx_sla.reports.period import Period
from pbx_sla.reports.render import Table, rounded
from pbx_sla.reports.requests import support_history, support_hours_json, tenant_support_hours
from pbx_sla.reports.servers import ServerScope, footer, server_scope
from pbx_sla.store.catalogue import load_catalogue

_DAILY = """
SELECT tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec
FROM usage_daily
WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR tenant_id = $3) AND calls > 0
"""
#: the same per-(tenant, day) counts from the calls of some servers (``--server``), as the rollup counts them
#: (sql/repeatable/calls_compute_sql.sql: one call per row, its day and disposition, billsec summed)
_DAILY_OF_SERVERS = """
SELECT tenant_id, day, count(*) AS calls,
       count(*) FILTER (WHERE disposition = 'ANSWERED') AS answered,
       count(*) FILTER (WHERE disposition = 'BUSY') AS busy,
       count(*) FILTER (WHERE disposition = 'NO ANSWER') AS no_answer,
       count(*) FILTER (WHERE disposition = 'FAILED') AS failed,
       count(*) FILTER (WHERE disposition = 'CONGESTION') AS congestion,
       sum(billsec)::bigint AS billsec
FROM calls
WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR tenant_id = $3) AND server = ANY($4::text[])
  AND started_at >= $5 AND started_at < $6
GROUP BY tenant_id, day
"""
#: ``day`` is ``started_at``'s date in the catalogue's zone when the call was written; a zone changed since
#: moves it by at most 26 hours, so two days either side of the period hold every call of its days, and a
#: table partitioned by ``started_at`` is read in the period's partitions only
_MARGIN = timedelta(days=2)


async def usage_rows(
    conn: asyncpg.Connection, period: Period, tenant: str | None = None, servers: Sequence[str] | None = None
) -> list[TenantUsage]:
    """Every active tenant (and any tenant with calls in the period), then the unattributed calls; the calls
    of ``servers`` only when given (None: every server)."""
    days = list(period.days())
    tiers = {
        r["name"]: TierTerms(
            r["name"], r["price_per_year"], r["currency"], r["max_calls_per_day"], r["max_employees"], r["active"]
        )
        for r in await conn.fetch(
            "SELECT name, price_per_year, currency, max_calls_per_day, max_employees, active FROM tiers"
        )
    }
    per_tenant: dict[str | None, dict[date, Outcomes]] = defaultdict(dict)
    daily = (
        await conn.fetch(_DAILY, period.first_day, period.last_day, tenant)
        if servers is None
        else await conn.fetch(
            _DAILY_OF_SERVERS,
            period.first_day,
            period.last_day,
            tenant,
            list(servers),
            period.start - _MARGIN,
            period.end + _MARGIN,
        )
    )
    for r in daily:
        per_tenant[r["tenant_id"]][r["day"]] = Outcomes(
            r["calls"], r["answered"], r["busy"], r["no_answer"], r["failed"], r["congestion"], r["billsec"]
        )
    tenant_rows = await conn.fetch(
        """SELECT id, tier, employees, contract_start, contract_end FROM tenants
           WHERE ($1::text IS NULL OR id = $1) AND (active OR id = ANY($2::text[])) ORDER BY id""",
        tenant,
        [t for t in per_tenant if t is not None],
    )
    if tenant is not None and not tenant_rows:
        raise ConfigError(f"--tenant: no tenant {tenant!r} in the catalogue")
    rows = [
        tenant_usage(
            Contract(r["id"], r["tier"], r["employees"], r["contract_start"], r["contract_end"]),
            per_tenant.get(r["id"], {}),
            days,
            tiers,
        )
        for r in tenant_rows
    ]
    if tenant is None:
        rows.append(tenant_usage(None, per_tenant.get(None, {}), days, tiers))
    return rows


async def support_hours_by_tenant(
    conn: asyncpg.Connection, period: Period, rows: list[TenantUsage]
) -> dict[str, dict[str, str] | None]:
    """Tenant → its prepaid support hours figures (None: it bought none), for the tenants of ``rows``: the
    support time stored up to the period's end."""
    cat = await load_catalogue(conn)
    ids = [r.contract.tenant for r in rows if r.contract is not None]
    if cat is None or not ids:
        return {}
    history = await support_history(conn, cat, period.end, ids)
    return {t: support_hours_json(tenant_support_hours(history, period, t)) for t in ids}


async def usage_report(
    conn: asyncpg.Connection, period: Period, tenant: str | None = None, servers: Iterable[str] | None = None
) -> dict[str, Any]:
    """The ``usage`` command's JSON document: the tenants' figures, prepaid hours, and which servers it covers
    (``servers``: the ``--server`` names, checked; None: the fleet)."""
    scope = await server_scope(conn, servers)
    rows = await usage_rows(conn, period, tenant, scope.sql)
    return as_json(period, rows, await support_hours_by_tenant(conn, period, rows), scope)


def as_json(
    period: Period,
    rows: list[TenantUsage],
    support_hours: dict[str, dict[str, str] | None] | None = None,
    scope: ServerScope | None = None,
) -> dict[str, Any]:
    """The report's JSON document (keys in docs/figures.md); ``support_hours`` (tenant → figures) adds prepaid hours;
    ``scope`` adds ``servers`` and ``scope``, and a per-server scope nulls the contract figures."""
    contract = scope is None or scope.fleet
    tenants: list[dict[str, Any]] = []
    for row in rows:
        o = row.outcomes
        tenants.append(
            {
                "tenant": row.contract.tenant if row.contract else None,
                "tier": row.contract.tier if row.contract else None,
                "calls": o.calls,
                "answered": o.answered,
                "busy": o.busy,
                "no_answer": o.no_answer,
                "failed": o.failed,
                "congestion": o.congestion,
                "asr": rounded(o.asr),
                "ner": rounded(o.ner),
                "acd_seconds": rounded(o.acd, 2),
                "billable_seconds": o.billsec,
                "daily": {d.isoformat(): n for d, n in row.daily.items()},
                "calls_per_day": {"mean": round(row.stats.mean, 3), "p95": row.stats.p95, "max": row.stats.max},
                "tier_by_usage": row.tier_by_usage if contract else None,
                "over_tier_days": row.over_tier_days if contract else None,
                "fee": {"amount": row.fee, "currency": row.currency} if contract else None,
            }
        )
        if support_hours is not None:
            hours = support_hours.get(row.contract.tenant) if row.contract else None
            tenants[-1]["support_hours"] = hours if contract else None
    return {"period": period.as_json(), **(scope.as_json() if scope else {}), "tenants": tenants}


COLUMNS = (
    "tenant",
    "tier",
    "calls",
    "answered",
    "asr",
    "ner",
    "acd_seconds",
    "billable_seconds",
    "mean_per_day",
    "p95_per_day",
    "max_per_day",
    "tier_by_usage",
    "over_tier_days",
    "fee",
    "currency",
)


def as_table(period: Period, report: dict[str, Any]) -> Table:
    """One row per tenant (``daily`` is in the JSON only); the unattributed row shows ``(none)``."""
    rows = []
    for t in report["tenants"]:
        rows.append(
            (
                t["tenant"] if t["tenant"] is not None else "(none)",
                t["tier"],
                t["calls"],
                t["answered"],
                t["asr"],
                t["ner"],
                t["acd_seconds"],
                t["billable_seconds"],
                t["calls_per_day"]["mean"],
                t["calls_per_day"]["p95"],
                t["calls_per_day"]["max"],
                t["tier_by_usage"],
                t["over_tier_days"],
                (t["fee"] or {}).get("amount"),
                (t["fee"] or {}).get("currency"),
            )
        )
    p = period.as_json()
    return Table(
        COLUMNS,
        rows,
        title=f"usage {p['from']} .. {p['to']}",
        footer=footer(report, "tier by usage, over-tier days, fee and support hours"),
    )
