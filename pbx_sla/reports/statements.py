"""Monthly statements: ``statement close`` freezes each tenant's figures, ``statement show`` renders them.

The figures are those of the ``usage`` and ``sla`` reports for the month (:func:`month_figures` calls the same
functions as the CLI), frozen with the catalogue revision and the code version that computed them. Closing is
idempotent and never changes a closed month; changes found later in earlier closed months become adjustments
on the statement being closed (:mod:`pbx_sla.domain.statements`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from pbx_sla import __version__
from pbx_sla.domain.statements import adjustments, amount_due, frozen_figures, last_stated
from pbx_sla.errors import ConfigError
from pbx_sla.reports import sla as sla_report
from pbx_sla.reports import usage as usage_report
from pbx_sla.reports.period import Period, parse_period
from pbx_sla.reports.render import Table
from pbx_sla.store import statements as store
from pbx_sla.store.settings import catalogue_timezone

_NO_SLA_ROW: dict[str, Any] = {
    "support_calls": 0,
    "answered_within_target": 0,
    "service_level": None,
    "service_level_target": None,
    "availability": None,
    "availability_target": None,
    "reaction": None,
    "reaction_share_target": None,
    "breaches": [],
    "credit": {"percent": 0.0, "amount": "0.00"},
}


async def month_figures(conn: asyncpg.Connection, period: Period) -> dict[str, dict[str, Any]]:
    """tenant → its statement figures over ``period``, from the ``usage`` and ``sla`` reports.

    Tenants: those the ``usage`` report lists (active, or with calls in the month). A tenant the ``sla``
    report does not list (inactive, no support call) has no support figures and no credit.
    """
    usage = usage_report.as_json(period, await usage_report.usage_rows(conn, period))
    sla = {t["tenant"]: t for t in (await sla_report.sla_report(conn, period))["tenants"]}
    out = {}
    for u in usage["tenants"]:
        if u["tenant"] is None:
            continue  # calls no tenant was found for: on nobody's statement
        out[u["tenant"]] = frozen_figures(u, sla.get(u["tenant"], _NO_SLA_ROW))
    return out


async def _period(conn: asyncpg.Connection, month: str) -> Period:
    return parse_period(month, None, None, await catalogue_timezone(conn))


async def close_month(
    conn: asyncpg.Connection, month: str, now: datetime | None = None
) -> tuple[bool, store.Close, list[store.StatementRow]]:
    """Close ``month``: (True, the close, its rows) when written now; (False, the earlier close, []) when it was
    closed already. A month that is not over yet is refused (ConfigError)."""
    now = now or datetime.now(UTC)
    period = await _period(conn, month)
    if period.end > now:
        raise ConfigError(f"--period {month}: the month is not over yet (it ends {period.as_json()['to']})")
    existing = await store.find_close(conn, month)
    if existing is not None:
        return False, existing, []
    try:
        written, close, rows = await _close(conn, month, period, now)
    except asyncpg.SerializationError:  # another close of the same month committed while we computed
        written = False
    if not written:
        existing = await store.find_close(conn, month)
        assert existing is not None
        return False, existing, []
    return True, close, rows


async def _close(
    conn: asyncpg.Connection, month: str, period: Period, now: datetime
) -> tuple[bool, store.Close, list[store.StatementRow]]:
    """Compute and write in one snapshot: the figures frozen and the adjustments found agree with each other."""
    async with conn.transaction(isolation="repeatable_read"):
        current = await month_figures(conn, period)
        earlier = await store.closed_before(conn, month)
        stated = await store.stated_adjustments(conn, earlier)
        adjust: dict[str, list[dict[str, Any]]] = {}
        currency_of: dict[str, str] = {}
        for m in earlier:
            frozen = {r.tenant: r for r in await store.statements_of(conn, m)}
            recomputed = await month_figures(conn, await _period(conn, m))
            for tenant in sorted(set(frozen) | set(recomputed)):
                if tenant not in recomputed:
                    continue  # no longer listed for that month (see docs/statements.md): nothing to compare
                before = frozen[tenant].figures if tenant in frozen else {}
                if tenant in frozen:
                    currency_of.setdefault(tenant, frozen[tenant].currency)
                was = last_stated(before, stated.get((tenant, m), []))
                found = adjustments(m, was, recomputed[tenant])
                adjust.setdefault(tenant, []).extend(a.as_json() for a in found)
        rows = []
        for tenant in sorted(set(current) | {t for t, a in adjust.items() if a}):
            figures = current.get(tenant) or {"listed": False, "fee": "0.00", "credit": "0.00"}
            adj = adjust.get(tenant, [])
            currency = figures.get("currency") or currency_of.get(tenant) or ""
            rows.append(store.StatementRow(tenant, figures, adj, amount_due(figures, adj), currency))
        revision = await conn.fetchval("SELECT revision_id FROM catalogue_settings")
        close = store.Close(month, now, revision, __version__, len(rows))
        written = await store.insert_close(conn, close, rows)
    return written, close, rows


async def statement_report(conn: asyncpg.Connection, month: str, tenant: str | None = None) -> dict[str, Any]:
    """The closed statements of ``month`` as a JSON document (ConfigError when the month is not closed)."""
    period = await _period(conn, month)
    close = await store.find_close(conn, month)
    if close is None:
        raise ConfigError(f"--period {month}: no statement closed for this month (run 'pbx-sla statement close')")
    rows = await store.statements_of(conn, month, tenant)
    if tenant is not None and not rows:
        raise ConfigError(f"--tenant: no statement of {tenant!r} for {month}")
    return {
        "period": period.as_json(),
        "month": month,
        "closed": {
            "closed_at": period.local(close.closed_at).isoformat(),
            "catalogue_revision": close.catalogue_revision,
            "code_version": close.code_version,
        },
        "statements": [
            {
                "tenant": r.tenant,
                "figures": r.figures,
                "adjustments": r.adjustments,
                "amount_due": {"amount": str(r.amount_due), "currency": r.currency},
            }
            for r in rows
        ],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def as_table(report: dict[str, Any]) -> Table:
    rows = []
    footer = []
    for s in report["statements"]:
        f = s["figures"]
        rows.append(
            (
                s["tenant"],
                f.get("tier"),
                f.get("calls"),
                f.get("answered"),
                f.get("fee"),
                _pct(f.get("service_level")),
                _pct(f.get("availability")),
                ", ".join(b["metric"] for b in f.get("breaches", [])) or "-",
                f.get("credit"),
                len(s["adjustments"]),
                f"{s['amount_due']['amount']} {s['amount_due']['currency']}",
            )
        )
        for a in s["adjustments"]:
            delta = f" ({_signed(a['delta'])})" if a["delta"] is not None else ""
            footer.append(f"  {s['tenant']}: {a['period']} {a['figure']} {a['was']} -> {a['now']}{delta}")
    c = report["closed"]
    title = (
        f"Statements {report['month']} (closed {c['closed_at']}, catalogue revision {c['catalogue_revision']}, "
        f"pbx-sla {c['code_version']})"
    )
    if footer:
        footer.insert(0, "Adjustments of earlier months:")
    columns = ("tenant", "tier", "calls", "answered", "fee", "service level", "availability", "breaches", "credit",
               "adjustments", "amount due")  # fmt: skip
    return Table(columns, rows, title=title, footer=footer)


def _signed(value: Any) -> str:
    text = str(value)
    return text if text.startswith("-") else f"+{text}"


def money(value: str | Decimal) -> str:
    return f"{Decimal(value):,.2f}".replace(",", " ")
