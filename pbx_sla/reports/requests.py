"""The ``requests`` report (the support team's call-back list) and the reaction and prepaid-hours figures
the ``sla`` and ``usage`` reports show.

Requests are derived when asked, from stored facts (:mod:`pbx_sla.store.requests`) and the current
catalogue (calendars, reaction targets, requester numbers, support staff), over each tenant's whole
history up to ``now``: a request opened before the period may still be open and absorb the period's calls.
A request belongs to the period it was opened in; it is judged as of ``now`` (reactions after the period
count; an unreacted one is ``open`` or ``overdue`` now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from pbx_sla.domain.catalogue import Catalogue
from pbx_sla.domain.requests import (
    Assessed,
    Callback,
    ReactionFigures,
    assess,
    derive_requests,
    is_callback,
    reaction_figures,
)
from pbx_sla.domain.support_hours import HoursFigures, Use, contract_year_packages, hours_figures
from pbx_sla.errors import ConfigError
from pbx_sla.reports.period import Period
from pbx_sla.reports.render import Table
from pbx_sla.store.catalogue import load_catalogue
from pbx_sla.store.requests import (
    ContactFact,
    agi_failure_facts,
    contact_facts,
    queue_member_endpoints,
    staff_calls,
)


@dataclass
class SupportHistory:
    """Everything derived for some tenants up to ``now``: assessed requests and support-time uses."""

    catalogue: Catalogue
    now: datetime
    assessed: list[Assessed]
    callbacks: list[Callback]
    contacts: list[ContactFact]

    def opened_in(self, period: Period, tenant: str) -> list[Assessed]:
        return [
            a for a in self.assessed if a.request.tenant == tenant and period.start <= a.request.opened_at < period.end
        ]

    def uses(self, tenant: str) -> list[Use]:
        """Support time of ``tenant``: answered support calls' talk time and callbacks' billable seconds."""
        tz = ZoneInfo(self.catalogue.timezone)
        out = [
            Use(f.contact.at.astimezone(tz).date(), f.talk_seconds)
            for f in self.contacts
            if f.contact.tenant == tenant and f.talk_seconds > 0
        ]
        out += [Use(c.answered_at.astimezone(tz).date(), c.seconds) for c in self.callbacks if c.tenant == tenant]
        return out


async def current_catalogue(conn: asyncpg.Connection) -> Catalogue:
    cat = await load_catalogue(conn)
    if cat is None:
        raise ConfigError("no contracts catalogue applied yet: run `pbx-sla contracts apply FILE` first")
    return cat


async def support_history(
    conn: asyncpg.Connection, cat: Catalogue, now: datetime, tenants: list[str] | None = None
) -> SupportHistory:
    """Requests (assessed as of ``now``) and callbacks of ``tenants`` (None: all) from the stored facts."""
    owner: dict[str, str] = {}  # requester number → tenant
    requesters: dict[str, tuple[str, str]] = {}  # requester number → (tenant, requester name)
    for t in cat.tenants.values():
        if tenants is None or t.id in tenants:
            for r in t.requesters:
                for phone in r.phones:
                    owner.setdefault(phone, t.id)
                    requesters.setdefault(phone, (t.id, r.name))
    contacts = await contact_facts(conn, now, tenants)
    contacts += await agi_failure_facts(conn, now, cat.support.line_contexts, requesters)
    staff = set(cat.support.staff) | await queue_member_endpoints(conn)
    callbacks = []
    for call in await staff_calls(conn, staff, now) if staff and owner else []:
        number = is_callback(
            call.endpoint,
            call.dialled,
            call.billsec,
            staff=frozenset(staff),
            numbers=frozenset(owner),
            minimum_seconds=cat.support.callback_min_seconds,
            country_code=cat.country_code,
        )
        if number is not None:
            callbacks.append(Callback(call.key, owner[number], call.endpoint, number, call.answered_at, call.billsec))
    tz = ZoneInfo(cat.timezone)
    assessed = []
    for request in derive_requests((f.contact for f in contacts), callbacks):
        tenant = cat.tenants.get(request.tenant)
        tier = cat.tiers.get(tenant.tier) if tenant else None
        calendar = cat.calendars.get(tier.calendar) if tier else None
        if tier is None or calendar is None:
            continue  # the tenant left the catalogue: no calendar to measure against
        assessed.append(assess(request, calendar, tz, tier.reaction_target, now))
    return SupportHistory(cat, now, assessed, callbacks, contacts)


def _iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    return None if value is None else value.astimezone(tz).isoformat()


async def requests_report(
    conn: asyncpg.Connection,
    period: Period,
    now: datetime,
    tenant: str | None = None,
    only_open: bool = False,
) -> dict[str, Any]:
    """spec.md's ``requests`` document: the requests opened in ``period``, oldest first."""
    cat = await current_catalogue(conn)
    if tenant is not None and tenant not in cat.tenants:
        raise ConfigError(f"--tenant: no tenant {tenant!r} in the catalogue")
    history = await support_history(conn, cat, now, None if tenant is None else [tenant])
    tz = ZoneInfo(cat.timezone)
    items = [
        a
        for a in history.assessed
        if period.start <= a.request.opened_at < period.end and (not only_open or a.status in ("open", "overdue"))
    ]
    items.sort(key=lambda a: (a.request.opened_at, a.request.tenant))
    out = []
    for a in items:
        r = a.request
        out.append(
            {
                "tenant": r.tenant,
                "requester": r.requester,
                "caller": r.caller,
                "opened_at": _iso(r.opened_at, tz),
                "why": r.why,
                "calls": len(r.calls),
                "deadline": _iso(a.deadline, tz),
                "reacted_at": _iso(r.reacted_at, tz),
                "reacted_by": r.reacted_by,
                "business_seconds": round(a.business_seconds, 3),
                "target_seconds": cat.tiers[cat.tenants[r.tenant].tier].reaction_target,
                "status": a.status,
            }
        )
    return {"period": period.as_json(), "now": _iso(now, tz), "requests": out}


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def as_table(report: dict[str, Any]) -> Table:
    rows = [
        (
            r["tenant"],
            r["requester"] or "-",
            r["caller"] or "-",
            r["opened_at"],
            r["why"],
            r["calls"],
            r["deadline"] or "-",
            r["reacted_at"] or "-",
            r["reacted_by"] or "-",
            _hms(r["business_seconds"]),
            r["status"],
        )
        for r in report["requests"]
    ]
    p = report["period"]
    columns = (
        *("tenant", "requester", "caller", "opened", "why", "calls", "deadline", "reacted"),
        *("by", "business time", "status"),
    )
    return Table(columns, rows, title=f"support requests {p['from']} .. {p['to']} (as of {report['now']})")


def reaction_json(figures: ReactionFigures) -> dict[str, Any]:
    share = figures.share
    return {
        "requests": figures.requests,
        "met": figures.met,
        "breached": figures.breached,
        "open": figures.open,
        "overdue": figures.overdue,
        "share": None if share is None else round(share, 6),
        "target_seconds": figures.target_seconds,
        "median_business_seconds": figures.median_business_seconds,
        "p95_business_seconds": figures.p95_business_seconds,
    }


def tenant_reaction(history: SupportHistory, period: Period, tenant: str) -> ReactionFigures | None:
    t = history.catalogue.tenants.get(tenant)
    tier = history.catalogue.tiers.get(t.tier) if t else None
    if tier is None:
        return None
    return reaction_figures(history.opened_in(period, tenant), tier.reaction_target)


def tenant_support_hours(history: SupportHistory, period: Period, tenant: str) -> HoursFigures | None:
    """The tenant's prepaid-hours figures for ``period``; None when it bought none."""
    t = history.catalogue.tenants.get(tenant)
    if t is None or (t.support_hours_per_year is None and not t.support_packages):
        return None
    packages = list(t.support_packages)
    if t.support_hours_per_year is not None:
        packages += contract_year_packages(t.support_hours_per_year, t.contract_start, t.contract_end, period.last_day)
    return hours_figures(packages, history.uses(tenant), period.first_day, period.last_day)


def support_hours_json(figures: HoursFigures | None) -> dict[str, str] | None:
    return None if figures is None else figures.as_json()
