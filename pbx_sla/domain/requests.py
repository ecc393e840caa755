"""Support requests: what an identified tenant asked for on the support line, and when support reacted.

Rules (docs/requests.md):

* A support call of an identified tenant (an authorised requester, by number or PIN) opens a request
  when none of that tenant is open. A request is per tenant: later calls of any of its requesters join
  the open request, and the clock keeps its first start.
* Reaction = the first of: an agent answering a call of the request (the opening call itself when it was
  answered live, or a later one that joined), or an answered **callback** made after the request opened.
  A callback is a call from a support staff endpoint to one of the tenant's requester numbers, answered
  and lasting at least the catalogue's minimum (:func:`is_callback`).
* Once reacted, the request is closed; the next unanswered call opens a new one. A callback made while
  no request is open reacts to nothing (it still consumes prepaid hours, see :mod:`.support_hours`).
* Business time: the calendar's open seconds between opening and reaction (or ``now`` while unreacted);
  the deadline is ``reaction_target`` open seconds after the opening (a request opened out of hours starts
  at the next opening). Status: ``met`` (reacted by the deadline), ``breached`` (reacted after it),
  ``open`` (unreacted, deadline ahead or no target), ``overdue`` (unreacted, deadline passed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pbx_sla.domain.business_time import add_open_seconds, open_seconds
from pbx_sla.domain.catalogue import Calendar, Catalogue
from pbx_sla.domain.percentile import nearest_rank
from pbx_sla.domain.phone import normalise

ReactedBy = Literal["answer", "callback"]
_Event = tuple[datetime, int, "SupportContact | Callback"]
Status = Literal["met", "breached", "open", "overdue"]


@dataclass(frozen=True)
class SupportContact:
    """One support-line call of an identified tenant: when it arrived, whether and when an agent answered."""

    key: str  # server/uniqueid: identifies the call in reports and tests
    tenant: str
    requester: str | None
    caller: str | None  # E.164
    at: datetime  # the support line decided (the call's arrival)
    why: str  # see :func:`why`
    answered_at: datetime | None = None  # an agent answered (AgentConnect)


@dataclass(frozen=True)
class Callback:
    """An answered call from support staff to a tenant's requester number."""

    key: str
    tenant: str
    staff: str  # the endpoint that called
    number: str  # the requester number called (E.164)
    answered_at: datetime
    seconds: int  # talk time (billsec)


@dataclass
class Request:
    tenant: str
    requester: str | None
    caller: str | None
    opened_at: datetime
    why: str
    calls: list[str] = field(default_factory=list)
    reacted_at: datetime | None = None
    reacted_by: ReactedBy | None = None
    reaction: str | None = None  # the answered call's key or the callback's key


@dataclass(frozen=True)
class Assessed:
    """A request measured against its tier: deadline, business seconds, status."""

    request: Request
    deadline: datetime | None
    business_seconds: float
    status: Status


def why(action: str, reason: str, outcome: str) -> str:
    """Why a call left its caller waiting for a reaction, from the support record and its queue outcome.

    ``answered`` (answered live), ``abandoned`` (hung up or the queue gave up), ``oncall-unanswered`` (the
    same in the out-of-hours queue), ``closed`` (out of hours, closed message), ``voicemail``,
    ``agi-failure`` (the AGI failed and the general line took the call), ``not-queued`` (hung up before
    reaching a queue), ``waiting`` (in a queue, no outcome recorded yet).
    """
    if outcome == "answered":
        return "answered"
    if reason.startswith("agi-") or action == "fallback":
        return "agi-failure"
    if reason == "out-of-hours-voicemail":
        return "voicemail"
    if action == "closed":
        return "closed"
    if outcome == "abandoned":
        return "oncall-unanswered" if reason == "out-of-hours-queue" else "abandoned"
    return "waiting" if outcome == "waiting" else "not-queued"


def is_callback(
    staff_endpoint: str | None,
    dialled: str,
    billsec: int,
    *,
    staff: frozenset[str],
    numbers: frozenset[str],
    minimum_seconds: int,
    country_code: str,
) -> str | None:
    """The requester number (E.164) a staff call reached, when it counts as a callback; else None.

    ``dialled`` is normalised like the support line normalises callers (:func:`pbx_sla.domain.phone.normalise`),
    so ``00420777000001``, ``777000001`` and ``+420 777 000 001`` all match ``+420777000001``.
    """
    if staff_endpoint is None or staff_endpoint not in staff or billsec < minimum_seconds:
        return None
    number = normalise(dialled, country_code)
    return number if number is not None and number in numbers else None


def _events(contacts: Iterable[SupportContact], callbacks: Iterable[Callback]) -> dict[str, list[_Event]]:
    """Per tenant, its events in the order :func:`derive_requests` replays them: at one instant a callback
    first (it reacted before the call arrived), then arrivals, then answers."""
    by_tenant: dict[str, list[_Event]] = {}
    for c in contacts:
        events = by_tenant.setdefault(c.tenant, [])
        events.append((c.at, 1, c))
        if c.answered_at is not None:
            events.append((max(c.answered_at, c.at), 2, c))
    for cb in callbacks:
        by_tenant.setdefault(cb.tenant, []).append((cb.answered_at, 0, cb))
    for events in by_tenant.values():
        events.sort(key=lambda e: (e[0], e[1], getattr(e[2], "key", "")))
    return by_tenant


def derive_requests(contacts: Iterable[SupportContact], callbacks: Iterable[Callback]) -> list[Request]:
    """The requests of the given calls and callbacks (any tenants), ordered by tenant then opening."""
    by_tenant = _events(contacts, callbacks)
    out: list[Request] = []
    for tenant in sorted(by_tenant):
        current: Request | None = None
        for at, kind, item in by_tenant[tenant]:
            if kind == 0 and current is not None:
                assert isinstance(item, Callback)
                current.reacted_at, current.reacted_by, current.reaction = at, "callback", item.key
                current = None
            elif kind == 1:
                assert isinstance(item, SupportContact)
                if current is None:
                    current = Request(tenant, item.requester, item.caller, item.at, item.why)
                    out.append(current)
                current.calls.append(item.key)
            elif kind == 2 and current is not None:
                assert isinstance(item, SupportContact)
                if item.key in current.calls:
                    current.reacted_at, current.reacted_by, current.reaction = at, "answer", item.key
                    current = None
    return out


def settled(contacts: Iterable[SupportContact], callbacks: Iterable[Callback]) -> set[str]:
    """The tenants whose events include one after which no request of theirs is open, whatever came before:
    a callback (it closes the open request, if any), or the answer of a call that arrived after every other
    call before it (the call joined the request open then, and only reactions, which close, came between).

    So the requests :func:`derive_requests` opens after that event, and whether one is open at the end, are
    the same whether or not earlier calls and callbacks are given: the request gauges derive a recent window
    of facts and need the whole history only for the tenants not settled in it."""
    out = set()
    for tenant, events in _events(contacts, callbacks).items():
        last_arrival: object = None
        for _at, kind, item in events:
            if kind == 0 or (kind == 2 and item is last_arrival):
                out.add(tenant)
                break
            if kind == 1:
                last_arrival = item
    return out


def idle_cut(requests: Sequence[Request], start: datetime | None, limit: datetime) -> datetime | None:
    """The latest instant ``c <= limit`` (and ``c >= start``) at which one tenant has no open request, in the
    replay of its facts from ``start`` on (None: its whole history; no request open at ``start``):
    ``requests`` are what :func:`derive_requests` gives for them, in opening order.

    At ``c`` the replay of the events before ``c`` has closed every request it opened, so the requests opened
    before ``c`` are complete (all reacted before ``c``), and the facts from ``c`` on derive the same later
    requests whether or not the earlier facts are given (a later answer of an earlier call joins nothing;
    the events from ``c`` on sort after all earlier ones). Either ``limit`` itself (the last request opened
    before it was reacted before it) or the opening of a request whose predecessor was reacted strictly
    earlier (at the same instant the order of the events would matter). None when no such instant is later
    than ``start``, or ``start`` itself is then the only one."""
    before = [r for r in requests if r.opened_at < limit]
    if start is not None and limit <= start:
        return None
    if not before or (before[-1].reacted_at is not None and before[-1].reacted_at < limit):
        return limit
    for k in range(len(before) - 1, -1, -1):
        previous = before[k - 1].reacted_at if k > 0 else None
        if k == 0 or (previous is not None and previous < before[k].opened_at):
            cut = before[k].opened_at
            return cut if start is None or cut > start else None
    return None  # pragma: no cover - k == 0 always returns


def assess(request: Request, calendar: Calendar, tz: ZoneInfo, target_seconds: int | None, now: datetime) -> Assessed:
    """Deadline, business seconds (to the reaction, or to ``now`` while unreacted) and status."""
    deadline = None if target_seconds is None else add_open_seconds(calendar, tz, request.opened_at, target_seconds)
    until = request.reacted_at if request.reacted_at is not None else max(now, request.opened_at)
    seconds = open_seconds(calendar, tz, request.opened_at, until)
    status: Status
    if request.reacted_at is not None:
        status = "breached" if deadline is not None and request.reacted_at > deadline else "met"
    else:
        status = "overdue" if deadline is not None and now >= deadline else "open"
    return Assessed(request, deadline, seconds, status)


@dataclass(frozen=True)
class ReactionFigures:
    """A tenant's reaction figures over the requests opened in a period."""

    requests: int
    met: int
    breached: int
    open: int
    overdue: int
    target_seconds: int | None
    median_business_seconds: float | None
    p95_business_seconds: float | None

    @property
    def share(self) -> float | None:
        """met / (met + breached + overdue): requests still open within their deadline are not judged yet."""
        judged = self.met + self.breached + self.overdue
        return None if judged == 0 else self.met / judged


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered, n = sorted(values), len(values)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@dataclass(frozen=True)
class Reacted:
    """Reacted requests already assessed, summarised: how many met and breached their deadline, and their
    business seconds (any order). Kept requests (:mod:`pbx_sla.store.kept_requests`) come back as this."""

    met: int = 0
    breached: int = 0
    business_seconds: tuple[float, ...] = ()


def reaction_figures(
    assessed: Iterable[Assessed], target_seconds: int | None, reacted_before: Reacted = Reacted()
) -> ReactionFigures:
    """Counts by status; median and p95 over the reacted requests' business seconds; ``reacted_before``:
    more reacted requests, summarised, counted with ``assessed``."""
    items = list(assessed)
    count = {s: sum(1 for a in items if a.status == s) for s in ("met", "breached", "open", "overdue")}
    count["met"] += reacted_before.met
    count["breached"] += reacted_before.breached
    reacted = [a.business_seconds for a in items if a.request.reacted_at is not None]
    reacted += reacted_before.business_seconds
    return ReactionFigures(
        len(items) + reacted_before.met + reacted_before.breached,
        count["met"],
        count["breached"],
        count["open"],
        count["overdue"],
        target_seconds,
        median(reacted),
        nearest_rank(reacted, 0.95),
    )


def _calendar_parts(calendar: Calendar) -> dict[str, Any]:
    return {
        "always": calendar.always,
        "hours": {str(d): [[r.start, r.end] for r in calendar.hours[d]] for d in sorted(calendar.hours)},
        "holidays": sorted(d.isoformat() for d in calendar.holidays),
    }


def derivation_digests(cat: Catalogue) -> dict[str, str]:
    """Per tenant whose requests are assessed (it has a tier, and the tier a calendar), a digest of every part
    of ``cat`` its derived and assessed requests and its support time depend on: the zone (deadlines, business
    time, local days) and the country code (a callback's dialled number is normalised with it); the support
    settings (staff, a callback's minimum length, the support line's contexts); its tier's reaction target
    and calendar (weekly hours, holidays; not the tier's or calendar's name, prices or other targets); its
    requesters (names, numbers, whether each has a PIN) and, should another tenant list one of its numbers first, that
    number (it is the other tenant's: :func:`pbx_sla.reports.requests._requester_phones`).

    Nothing else of the catalogue reaches them (the support calls carry their tenant as identified when they
    were made), so kept rows (:mod:`pbx_sla.store.kept_requests`) derived under one revision are those of
    another where the tenant's digest is the same: a revision that changes one tenant derives one tenant again.
    """
    common = {
        "timezone": cat.timezone,
        "country_code": cat.country_code,
        "staff": sorted(set(cat.support.staff)),
        "callback_min_seconds": cat.support.callback_min_seconds,
        "line_contexts": sorted(set(cat.support.line_contexts)),
    }
    owner: dict[str, str] = {}
    for t in cat.tenants.values():
        for r in t.requesters:
            for phone in r.phones:
                owner.setdefault(phone, t.id)
    calendars: dict[str, dict[str, Any]] = {}
    out = {}
    for t in cat.tenants.values():
        tier = cat.tiers.get(t.tier)
        calendar = cat.calendars.get(tier.calendar) if tier else None
        if tier is None or calendar is None:
            continue
        if tier.calendar not in calendars:
            calendars[tier.calendar] = _calendar_parts(calendar)
        parts = {
            **common,
            "reaction_target": tier.reaction_target,
            "calendar": calendars[tier.calendar],
            "requesters": sorted(
                ([r.name, sorted(r.phones), r.pin_hash is not None] for r in t.requesters), key=json.dumps
            ),
            "phones_of_others": sorted(p for r in t.requesters for p in r.phones if owner[p] != t.id),
        }
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        out[t.id] = hashlib.sha256(text.encode()).hexdigest()
    return out
