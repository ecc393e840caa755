"""The ``requests`` report (the support team's call-back list) and the reaction and prepaid-hours figures
the ``sla`` and ``usage`` reports show.

Requests are derived when asked, from stored facts (:mod:`pbx_sla.store.requests`) and the current
catalogue (calendars, reaction targets, requester numbers, support staff), over each tenant's whole
history up to ``now``: a request opened before the period may still be open and absorb the period's calls.
A request belongs to the period it was opened in; it is judged as of ``now`` (reactions after the period
count; an unreacted one is ``open`` or ``overdue`` now).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from pbx_sla.domain.catalogue import Catalogue, Tier
from pbx_sla.domain.requests import (
    Assessed,
    Callback,
    Reacted,
    ReactionFigures,
    Request,
    assess,
    derivation_digests,
    derive_requests,
    idle_cut,
    is_callback,
    reaction_figures,
    settled,
)
from pbx_sla.domain.support_hours import HoursFigures, Use, contract_year_packages, hours_figures
from pbx_sla.errors import ConfigError
from pbx_sla.reports.period import Period
from pbx_sla.reports.render import Table
from pbx_sla.reports.servers import footer, server_scope
from pbx_sla.store import kept_requests
from pbx_sla.store.catalogue import load_catalogue
from pbx_sla.store.requests import (
    ContactFact,
    StaffCall,
    agi_failure_facts,
    contact_facts,
    contact_facts_from,
    queue_member_endpoints,
    staff_calls,
)


def _tier(cat: Catalogue, tenant: str) -> Tier | None:
    """The tier of ``tenant`` in ``cat``; None for a tenant (or tier) the catalogue does not hold."""
    t = cat.tenants.get(tenant)
    return cat.tiers.get(t.tier) if t else None


@dataclass
class SupportHistory:
    """Everything derived for some tenants up to ``now``: their requests and support-time uses. Requests are
    assessed (deadline, business time) only when a period asks for them: a year of history costs its
    derivation, not a year of business-time arithmetic."""

    catalogue: Catalogue
    now: datetime
    requests: list[Request]
    callbacks: list[Callback]
    contacts: list[ContactFact]
    _uses: dict[str, list[tuple[Use, datetime]]] | None = field(default=None, init=False, repr=False)
    _by_tenant: dict[str, list[Request]] | None = field(default=None, init=False, repr=False)
    _servers: dict[str, str] | None = field(default=None, init=False, repr=False)

    @classmethod
    def derived(
        cls, cat: Catalogue, now: datetime, contacts: list[ContactFact], callbacks: list[Callback]
    ) -> SupportHistory:
        """The requests :func:`derive_requests` makes of ``contacts`` and ``callbacks``, with those facts."""
        return cls(cat, now, derive_requests((f.contact for f in contacts), callbacks), callbacks, contacts)

    def requests_of(self, tenant: str) -> list[Request]:
        """The requests of ``tenant``, in opening order."""
        if self._by_tenant is None:
            self._by_tenant = defaultdict(list)
            for r in self.requests:
                self._by_tenant[r.tenant].append(r)
        return self._by_tenant.get(tenant, [])

    def opening_server(self, request: Request) -> str | None:
        """The server of the call that opened ``request``."""
        if self._servers is None:
            self._servers = {f.contact.key: f.server for f in self.contacts}
        return self._servers.get(request.calls[0]) if request.calls else None

    def assessed(
        self, period: Period, tenant: str | None = None, servers: Sequence[str] | None = None
    ) -> list[Assessed]:
        """The requests opened in ``period`` (of ``tenant``, or all; by a call to one of ``servers``, or any),
        assessed as of ``now``, in opening order; requests of tenants no longer in the catalogue are left out
        (no calendar to measure against)."""
        tz = ZoneInfo(self.catalogue.timezone)
        out = []
        for request in self.requests if tenant is None else self.requests_of(tenant):
            if not period.start <= request.opened_at < period.end:
                continue
            if servers is not None and self.opening_server(request) not in servers:
                continue
            assessed = self._assess(request, tz)
            if assessed is not None:
                out.append(assessed)
        return out

    def unreacted(self) -> list[Assessed]:
        """Every request not reacted to as of ``now``, whatever period it was opened in (``open`` or
        ``overdue``), assessed like :meth:`assessed`: the call-back list of ``pbx-sla requests --open`` over
        all periods. Only these are assessed, so the cost is the history's derivation."""
        tz = ZoneInfo(self.catalogue.timezone)
        out = []
        for request in self.requests:
            if request.reacted_at is None:
                assessed = self._assess(request, tz)
                if assessed is not None:
                    out.append(assessed)
        return out

    def _assess(self, request: Request, tz: ZoneInfo) -> Assessed | None:
        tier = _tier(self.catalogue, request.tenant)
        calendar = self.catalogue.calendars.get(tier.calendar) if tier else None
        if tier is None or calendar is None:
            return None
        return assess(request, calendar, tz, tier.reaction_target, self.now)

    def opened_in(self, period: Period, tenant: str, servers: Sequence[str] | None = None) -> list[Assessed]:
        return self.assessed(period, tenant, servers)

    def uses(self, tenant: str) -> list[Use]:
        """Support time of ``tenant``: answered support calls' talk time and callbacks' billable seconds."""
        return [use for use, _at in self.timed_uses(tenant)]

    def timed_uses(self, tenant: str) -> list[tuple[Use, datetime]]:
        """:meth:`uses` of ``tenant``, each with the instant it is counted at (the call's arrival, the
        callback's answer)."""
        if self._uses is None:
            tz = ZoneInfo(self.catalogue.timezone)
            self._uses = defaultdict(list)
            for f in self.contacts:
                if f.talk_seconds > 0:
                    use = Use(f.contact.at.astimezone(tz).date(), f.talk_seconds)
                    self._uses[f.contact.tenant].append((use, f.contact.at))
            for c in self.callbacks:
                self._uses[c.tenant].append((Use(c.answered_at.astimezone(tz).date(), c.seconds), c.answered_at))
        return self._uses.get(tenant, [])


async def current_catalogue(conn: asyncpg.Connection) -> Catalogue:
    cat = await load_catalogue(conn)
    if cat is None:
        raise ConfigError("no contracts catalogue applied yet: run `pbx-sla contracts apply FILE` first")
    return cat


def _requester_phones(
    cat: Catalogue, tenants: Iterable[str] | None
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Of ``tenants`` (None: all): requester number → tenant, and requester number → (tenant, requester
    name); a number two tenants list is the first one's."""
    wanted = None if tenants is None else set(tenants)
    owner: dict[str, str] = {}
    requesters: dict[str, tuple[str, str]] = {}
    for t in cat.tenants.values():
        if wanted is None or t.id in wanted:
            for r in t.requesters:
                for phone in r.phones:
                    owner.setdefault(phone, t.id)
                    requesters.setdefault(phone, (t.id, r.name))
    return owner, requesters


def _callbacks(cat: Catalogue, staff: set[str], owner: dict[str, str], legs: Iterable[StaffCall]) -> list[Callback]:
    """The staff legs that are callbacks to a requester number of ``owner``, in the legs' order."""
    callbacks = []
    staff_set, numbers = frozenset(staff), frozenset(owner)
    minimum = cat.support.callback_min_seconds
    matched: dict[tuple[str, str, bool], str | None] = {}  # a year of legs dials a few hundred numbers
    for call in legs:
        key = (call.endpoint, call.dialled, call.billsec >= minimum)
        if key not in matched:
            matched[key] = is_callback(
                call.endpoint,
                call.dialled,
                call.billsec,
                staff=staff_set,
                numbers=numbers,
                minimum_seconds=minimum,
                country_code=cat.country_code,
            )
        number = matched[key]
        if number is not None:
            callbacks.append(Callback(call.key, owner[number], call.endpoint, number, call.answered_at, call.billsec))
    return callbacks


async def _facts(
    conn: asyncpg.Connection,
    cat: Catalogue,
    now: datetime,
    tenants: list[str] | None,
    since: datetime | None,
    staff: set[str] | None = None,
) -> tuple[list[ContactFact], list[Callback], dict[str, str]]:
    """Contact facts and callbacks of ``tenants`` (None: all) stored before ``now``; with ``since``, the
    contacts from ``since`` on and the callbacks answered from the first of them on (a callback before a
    tenant's first call reacts to nothing). Also the requester number → tenant map. ``staff``: the support
    staff endpoints when known (:func:`staff_endpoints`)."""
    owner, requesters = _requester_phones(cat, tenants)
    contacts = await contact_facts(conn, now, tenants, since)
    contacts += await agi_failure_facts(conn, now, cat.support.line_contexts, requesters, since)
    if since is not None:
        if not contacts:
            return contacts, [], owner
        since = min(f.contact.at for f in contacts)
    if staff is None:
        staff = await staff_endpoints(conn, cat)
    legs = await staff_calls(conn, staff, now, since) if staff and owner else []
    return contacts, _callbacks(cat, staff, owner, legs), owner


async def staff_endpoints(conn: asyncpg.Connection, cat: Catalogue) -> set[str]:
    """The catalogue's support staff and the queues' members: whose answered calls to requesters are callbacks."""
    return set(cat.support.staff) | await queue_member_endpoints(conn)


async def support_history(
    conn: asyncpg.Connection, cat: Catalogue, now: datetime, tenants: list[str] | None = None
) -> SupportHistory:
    """Requests and callbacks of ``tenants`` (None: all) from the facts stored before ``now``."""
    contacts, callbacks, _owner = await _facts(conn, cat, now, tenants, None)
    return SupportHistory.derived(cat, now, contacts, callbacks)


#: a kept cut is at most this long before ``now``: facts of the last hours may still be stored late (a
#: callback's CDR leg is written when the call ends, with its start) and would delete the kept rows again;
#: each report derives the facts after the cuts (bench/web.py: with 50,000 support calls a month, a day of
#: them cost ~80 ms of a mid-month overview)
KEEP_MARGIN = timedelta(hours=2)
#: a kept cut older than ``now`` - KEEP_MARGIN - this is moved on (the facts since it derived and kept)
REFRESH_AFTER = timedelta(hours=1)


@dataclass
class SupportFigures:
    """A period's reaction figures and support-time uses of some tenants: the kept requests before each
    tenant's cut (:mod:`pbx_sla.store.kept_requests`) and :class:`SupportHistory` of the facts from it on.
    The same figures as :func:`support_history` with :func:`tenant_reaction` and :func:`tenant_support_hours`
    (tests hold them equal), without deriving and assessing each tenant's whole history."""

    catalogue: Catalogue
    period: Period
    servers: Sequence[str] | None
    recent: SupportHistory
    kept_reacted: dict[str, Reacted]
    kept_uses: dict[str, list[Use]]

    def reaction(self, tenant: str) -> ReactionFigures | None:
        """The tenant's reaction figures over its requests opened in the period (by a call to ``servers``)."""
        tier = _tier(self.catalogue, tenant)
        if tier is None:
            return None
        recent = self.recent.opened_in(self.period, tenant, self.servers)
        return reaction_figures(recent, tier.reaction_target, self.kept_reacted.get(tenant, Reacted()))

    def uses(self, tenant: str) -> list[Use]:
        return self.kept_uses.get(tenant, []) + self.recent.uses(tenant)


async def _facts_from(
    conn: asyncpg.Connection,
    cat: Catalogue,
    now: datetime,
    since: dict[str, datetime | None],
    staff: set[str],
    legs_from: datetime | None = None,
) -> tuple[list[ContactFact], list[Callback], list[ContactFact], list[StaffCall]]:
    """The facts of the tenants of ``since`` before ``now``, each from its own instant on (None: all): contact
    facts, callbacks, the contact facts among them found by :func:`agi_failure_facts`, and the staff legs
    read (answered from the earliest instant on; with ``legs_from``, started from it on)."""
    owner, requesters = _requester_phones(cat, since)
    earliest = None if not since or any(v is None for v in since.values()) else min(v for v in since.values() if v)

    def fresh(tenant: str, at: datetime) -> bool:
        start = since.get(tenant)
        return start is None or at >= start

    contacts = await contact_facts_from(conn, now, since)
    failed = [
        f
        for f in await agi_failure_facts(conn, now, cat.support.line_contexts, requesters, earliest)
        if fresh(f.contact.tenant, f.contact.at)
    ]
    legs = await staff_calls(conn, staff, now, earliest, legs_from) if staff and owner else []
    callbacks = [c for c in _callbacks(cat, staff, owner, legs) if fresh(c.tenant, c.answered_at)]
    return contacts + failed, callbacks, failed, legs


def _usable(kept: kept_requests.KeptTenant | None, digest: str | None, now: datetime) -> bool:
    """Whether a tenant's kept rows hold for the current catalogue (its :func:`derivation_digests` is the one
    they were derived with, whichever revision that was) as of ``now``."""
    return kept is not None and digest is not None and kept.digest == digest and kept.cut <= now


async def _advance(
    conn: asyncpg.Connection,
    cat: Catalogue,
    revision_id: int,
    now: datetime,
    tenants: list[str],
    digests: dict[str, str],
) -> None:
    """Move the kept rows of ``tenants`` on to their latest idle instant before ``now`` - :data:`KEEP_MARGIN`:
    under the lock, derive the facts from each one's kept cut (or its whole history) and store the requests,
    support time and AGI-failure channels before the new cut. ``digests``: :func:`derivation_digests` of
    ``cat``."""
    async with conn.transaction():
        await kept_requests.lock(conn)
        kept = await kept_requests.kept_tenants(conn, tenants)
        since: dict[str, datetime | None] = {
            t: kept[t].cut if _usable(kept.get(t), digests.get(t), now) else None for t in tenants
        }
        staff = await staff_endpoints(conn, cat)
        contacts, callbacks, failed, legs = await _facts_from(conn, cat, now, since, staff)
        history = SupportHistory.derived(cat, now, contacts, callbacks)
        tz = ZoneInfo(cat.timezone)
        limit = now - KEEP_MARGIN
        advances, stuck = [], []
        failed_of: dict[str, list[ContactFact]] = defaultdict(list)
        for f in failed:
            failed_of[f.contact.tenant].append(f)
        legs_from_at: dict[datetime, datetime] = {}  # per cut (many tenants share the limit as theirs)
        for tenant in tenants:
            cut = idle_cut(history.requests_of(tenant), since[tenant], limit)
            if cut is None:  # still open since its cut: tried again after REFRESH_AFTER
                stuck.append(tenant)
                continue
            done = []
            for request in history.requests_of(tenant):
                if request.opened_at < cut:
                    assessed = history._assess(request, tz)
                    server = history.opening_server(request)
                    assert assessed is not None and server is not None and request.reacted_at is not None
                    done.append((assessed, server))
            used: dict[date, int] = defaultdict(int)
            for use, at in history.timed_uses(tenant):
                if at < cut:
                    used[use.day] += use.seconds
            channels = [f.contact.key.split("/", 1)[1] for f in failed_of.get(tenant, ()) if f.contact.at < cut]
            # staff legs (any, not only this tenant's callbacks) answered from the cut on that started before it
            if cut not in legs_from_at:
                legs_from_at[cut] = min(
                    (c.start_at for c in legs if c.answered_at >= cut and c.start_at < cut), default=cut
                )
            legs_from = legs_from_at[cut]
            advances.append(
                kept_requests.Advance(
                    tenant, digests[tenant], since[tenant], cut, legs_from, done, dict(used), channels
                )
            )
        await kept_requests.store(conn, revision_id, sorted(staff), cat.support.line_contexts, advances, now)
        await kept_requests.checked(conn, stuck, now)


async def keep_ahead(
    conn: asyncpg.Connection, cat: Catalogue, revision_id: int, now: datetime, tenants: Sequence[str]
) -> list[str]:
    """Move on the kept requests of ``tenants`` that need it as of ``now`` (catalogue revision ``revision_id``):
    those without usable kept rows (never kept, deleted by a late fact, or derived with a catalogue that differs
    in what their derivation reads: :func:`derivation_digests`) and those whose cut is more than
    :data:`REFRESH_AFTER` older than the margin (and not tried since: a request still open holds a cut). The
    tenants moved on (tried), none in a transaction that is not READ COMMITTED (a change committed since its
    snapshot could be missing for good). :func:`support_figures` calls it first; the
    daemon's ``support_kept`` task every minute, so a view seldom pays for it."""
    digests = derivation_digests(cat)
    judged = [t for t in tenants if t in digests]
    kept = await kept_requests.kept_tenants(conn, judged)
    old = now - KEEP_MARGIN - REFRESH_AFTER

    def stale(t: str) -> bool:
        k = kept.get(t)
        if k is None or k.digest != digests[t]:
            return True
        return k.cut < old and (k.checked is None or k.checked < now - REFRESH_AFTER)

    stale_tenants = [t for t in judged if stale(t)]
    if not stale_tenants or await conn.fetchval("SHOW transaction_isolation") != "read committed":
        return []
    await _advance(conn, cat, revision_id, now, stale_tenants, digests)
    return stale_tenants


async def support_figures(
    conn: asyncpg.Connection,
    cat: Catalogue,
    revision_id: int,
    now: datetime,
    tenants: list[str],
    period: Period,
    servers: Sequence[str] | None = None,
) -> SupportFigures:
    """Reaction figures and support-time uses of ``tenants`` for ``period`` as of ``now`` (what
    :func:`support_history` gives them), from the kept requests (catalogue revision ``revision_id``) and the
    facts after each tenant's cut, the kept requests first moved on where needed (:func:`keep_ahead`)."""
    digests = derivation_digests(cat)
    judged = [t for t in tenants if t in digests]
    await keep_ahead(conn, cat, revision_id, now, judged)
    # one snapshot for the kept rows and the facts after them
    snapshot = conn.transaction(isolation="repeatable_read", readonly=True) if not conn.is_in_transaction() else None
    if snapshot is not None:
        await snapshot.start()
    try:
        kept = await kept_requests.kept_tenants(conn, judged)
        usable = [t for t in judged if _usable(kept.get(t), digests[t], now)]
        since: dict[str, datetime | None] = {t: None for t in tenants}
        since.update({t: kept[t].cut for t in usable})
        # the staff a kept tenant was derived with is today's (the triggers delete it when a queue member comes
        # or goes; the catalogue's staff is its revision's): the queue members are not read from every CDR leg
        staffs = {kept[t].staff for t in usable}
        staff = set(next(iter(staffs))) if len(staffs) == 1 else await staff_endpoints(conn, cat)
        # and no staff leg answered after a kept cut started before that tenant's legs_from
        legs_from = min(kept[t].legs_from for t in usable) if usable and len(usable) == len(tenants) else None
        contacts, callbacks, _failed, _legs = await _facts_from(conn, cat, now, since, staff, legs_from)
        reacted = await kept_requests.reacted(conn, usable, period.start, period.end, servers)
        used = await kept_requests.uses(conn, usable, period.last_day)
    finally:
        if snapshot is not None:
            await snapshot.commit()
    recent = SupportHistory.derived(cat, now, contacts, callbacks)
    return SupportFigures(cat, period, servers, recent, reacted, used)


#: the spans of recent facts the request gauges derive first (then all history for the tenants still unsettled)
GAUGE_WINDOWS = (timedelta(days=31), timedelta(days=366))


@dataclass(frozen=True)
class Unreacted:
    """A tenant's requests not reacted to yet as of ``now`` (any period): ``open`` counts them all, ``overdue``
    those past their deadline (so ``open`` - ``overdue`` are still within it)."""

    open: int = 0
    overdue: int = 0


async def unreacted_by_tenant(conn: asyncpg.Connection, now: datetime) -> dict[str, Unreacted]:
    """Every catalogue tenant (zeros included; none without a catalogue) → its :class:`Unreacted` requests as
    of ``now``: the requests ``pbx-sla requests`` derives (:func:`support_history`) that are not reacted to.
    The metrics' ``pbx_sla_support_requests_open`` / ``_overdue``.

    Bounded: a tenant has at most one unreacted request, the one open after its last call, and that one is
    derived the same from any window of facts in which the tenant is :func:`settled`. So the last
    ``GAUGE_WINDOWS[0]`` of facts are derived first, the tenants not settled in it over the longer window,
    and only those left over their whole history (a test holds the result to the full derivation)."""
    cat = await load_catalogue(conn)
    if cat is None:
        return {}
    counts = {t: [0, 0] for t in cat.tenants}
    pending: list[str] = sorted(cat.tenants)
    staff = await staff_endpoints(conn, cat)
    for window in (*GAUGE_WINDOWS, None):
        if not pending:
            break
        since = None if window is None else now - window
        contacts, callbacks, _owner = await _facts(conn, cat, now, pending, since, staff)
        requests = derive_requests((f.contact for f in contacts), callbacks)
        done = set(pending) if window is None else settled((f.contact for f in contacts), callbacks)
        if window is not None:  # a tenant without a call since the window's start: its state is older
            done &= {f.contact.tenant for f in contacts}
        history = SupportHistory(cat, now, [r for r in requests if r.tenant in done], callbacks, contacts)
        for a in history.unreacted():
            counts[a.request.tenant][0] += 1
            counts[a.request.tenant][1] += a.status == "overdue"
        pending = [t for t in pending if t not in done]
    return {t: Unreacted(n, overdue) for t, (n, overdue) in counts.items()}


def _iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    return None if value is None else value.astimezone(tz).isoformat()


async def requests_report(
    conn: asyncpg.Connection,
    period: Period,
    now: datetime,
    tenant: str | None = None,
    only_open: bool = False,
    servers: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The ``requests`` JSON document (keys in docs/figures.md): the requests opened in ``period``, oldest first;
    ``servers`` (the ``--server`` names; None: the fleet): only the requests whose opening call reached one of
    them. Requests are derived from the tenant's calls on every server either way (a request is the
    tenant's, whichever PBX its calls and callbacks went through)."""
    scope = await server_scope(conn, servers)
    cat = await current_catalogue(conn)
    if tenant is not None and tenant not in cat.tenants:
        raise ConfigError(f"--tenant: no tenant {tenant!r} in the catalogue")
    history = await support_history(conn, cat, now, None if tenant is None else [tenant])
    tz = ZoneInfo(cat.timezone)
    items = [a for a in history.assessed(period, None, scope.sql) if not only_open or a.status in ("open", "overdue")]
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
    return {"period": period.as_json(), **scope.as_json(), "now": _iso(now, tz), "requests": out}


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
    title = f"support requests {p['from']} .. {p['to']} (as of {report['now']})"
    return Table(columns, rows, title=title, footer=footer(report))


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


def tenant_reaction(
    history: SupportHistory, period: Period, tenant: str, servers: Sequence[str] | None = None
) -> ReactionFigures | None:
    """The tenant's reaction figures over its requests opened in ``period`` (by a call to ``servers``, or any)."""
    tier = _tier(history.catalogue, tenant)
    if tier is None:
        return None
    return reaction_figures(history.opened_in(period, tenant, servers), tier.reaction_target)


def tenant_support_hours(history: SupportHistory | SupportFigures, period: Period, tenant: str) -> HoursFigures | None:
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
