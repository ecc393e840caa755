"""The support-line decision: who is calling, for which tenant, and where the call goes.

Pure: (caller, dialled number, instant, catalogue, optional PIN outcome) → :class:`Decision`, which
carries exactly the channel variables listed in docs/support-line.md (``SUPPORT_ACTION``, ...).
The FastAGI server and the classic script both call :func:`decide`, so they cannot disagree.

Rules, in order (docs/support-line.md):

1. no catalogue → ``fallback`` / ``no-catalogue``;
2. the caller's number (normalised to E.164 like the catalogue's) belongs to a requester → that tenant,
   authorised (``authorised-number``); otherwise a PIN outcome ``ok`` names a requester of the tenant of
   the dialled DID → authorised (``pin-ok``);
3. otherwise the tenant comes from the dialled DID; if that tenant has requesters with PINs and no PIN
   was tried yet, the decision says :attr:`Decision.pin_needed` (the adapter asks, then decides again);
   else ``general`` with ``pin-failed`` / ``pin-locked`` / ``pin-none`` / ``unknown-caller``;
4. an authorised tenant outside its contract (start..end inclusive, local date) → ``general`` /
   ``contract-inactive``;
5. inside the tier's support hours → ``queue`` to the tier's queue at the tier's priority;
   outside → the tier's ``out_of_hours``: ``closed`` (``out-of-hours``), ``voicemail`` (``closed``,
   ``out-of-hours-voicemail``, queue empty) or ``queue:<name>`` (``queue``, ``out-of-hours-queue``).

``general`` and ``fallback`` leave ``SUPPORT_QUEUE`` empty with ``QUEUE_PRIO`` 0: the dialplan owns the
general queue (``SUPPORT_GENERAL_QUEUE``), the only place that also knows it when pbx-sla is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pbx_sla.domain.calendar import is_open
from pbx_sla.domain.catalogue import Catalogue, Requester, Tenant
from pbx_sla.domain.phone import normalise

Action = Literal["queue", "closed", "general", "fallback"]
PinStatus = Literal["ok", "failed", "locked", "none"]

#: every SUPPORT_REASON token a decision can carry (docs/support-line.md explains each)
REASONS = frozenset(
    {
        "authorised-number",
        "pin-ok",
        "pin-failed",
        "pin-locked",
        "pin-none",
        "unknown-caller",
        "contract-inactive",
        "out-of-hours",
        "out-of-hours-voicemail",
        "out-of-hours-queue",
        "no-catalogue",
    }
)

#: the channel variables set on every call, in the order they are sent
VARIABLES = (
    "SUPPORT_TENANT",
    "SUPPORT_TIER",
    "SUPPORT_AUTHORISED",
    "SUPPORT_IN_HOURS",
    "SUPPORT_ACTION",
    "SUPPORT_QUEUE",
    "QUEUE_PRIO",
    "SUPPORT_REASON",
    "SUPPORT_OUT_OF_HOURS",
)


@dataclass(frozen=True)
class PinOutcome:
    """What the PIN prompt gave: ``ok`` (with the requester it matched), ``failed`` (wrong PINs),
    ``locked`` (too many recent failures: not asked), ``none`` (nothing keyed in)."""

    status: PinStatus
    requester: str | None = None


@dataclass(frozen=True)
class Decision:
    tenant: str = ""
    tier: str = ""
    authorised: bool = False
    in_hours: bool = False
    action: Action = "general"
    queue: str = ""
    priority: int = 0
    reason: str = "unknown-caller"
    #: the tier's out-of-hours rule when it applied (closed | voicemail | queue), else ""
    out_of_hours: str = ""
    #: requester name when authorised (records only, never a channel variable)
    requester: str | None = None
    caller: str | None = None  # caller number as E.164, None when it is not a phone number
    dialled: str | None = None  # dialled number as E.164 (when it is one)
    #: True: ask for a PIN and decide again with the outcome; the other fields describe the call
    #: as it would go without one (general)
    pin_needed: bool = False
    #: PIN hashes to check when :attr:`pin_needed`: (requester name, encoded hash)
    pin_candidates: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def variables(self) -> dict[str, str]:
        """The channel variables, in :data:`VARIABLES` order, as strings."""
        return {
            "SUPPORT_TENANT": self.tenant,
            "SUPPORT_TIER": self.tier,
            "SUPPORT_AUTHORISED": "1" if self.authorised else "0",
            "SUPPORT_IN_HOURS": "1" if self.in_hours else "0",
            "SUPPORT_ACTION": self.action,
            "SUPPORT_QUEUE": self.queue,
            "QUEUE_PRIO": str(self.priority),
            "SUPPORT_REASON": self.reason,
            "SUPPORT_OUT_OF_HOURS": self.out_of_hours,
        }


@dataclass(frozen=True)
class RoutingIndex:
    """Lookups built once per catalogue: requester phone → (tenant, requester), DID → tenant."""

    phones: dict[str, tuple[Tenant, Requester]]
    dids: dict[str, Tenant]
    tz: ZoneInfo


def build_index(catalogue: Catalogue) -> RoutingIndex:
    phones: dict[str, tuple[Tenant, Requester]] = {}
    dids: dict[str, Tenant] = {}
    cc = catalogue.country_code
    for tenant in catalogue.tenants.values():
        for did in tenant.dids:
            dids[normalise(did, cc) or did] = tenant
        for requester in tenant.requesters:
            for phone in requester.phones:
                phones[normalise(phone, cc) or phone] = (tenant, requester)
    return RoutingIndex(phones, dids, ZoneInfo(catalogue.timezone))


_cache: tuple[Catalogue, RoutingIndex] | None = None


def index_for(catalogue: Catalogue) -> RoutingIndex:
    """The index of ``catalogue``, memoised for the catalogue object last seen (the daemon holds one)."""
    global _cache
    cached = _cache
    if cached is not None and cached[0] is catalogue:
        return cached[1]
    index = build_index(catalogue)
    _cache = (catalogue, index)
    return index


def _number(text: str | None, cc: str) -> str | None:
    if not text:
        return None
    try:
        return normalise(text, cc)
    except ValueError:
        return None


def _under_contract(tenant: Tenant, local_day: date) -> bool:
    return tenant.contract_start <= local_day and (tenant.contract_end is None or local_day <= tenant.contract_end)


def pin_candidates(tenant: Tenant) -> tuple[tuple[str, str], ...]:
    """(requester name, PIN hash) of every requester of ``tenant`` who has a PIN."""
    return tuple((r.name, r.pin_hash) for r in tenant.requesters if r.pin_hash)


def decide(
    caller: str | None,
    dialled: str | None,
    at: datetime,
    catalogue: Catalogue | None,
    pin: PinOutcome | None = None,
) -> Decision:
    """Route one support call; ``at`` must be aware. See the module docstring for the rules."""
    if catalogue is None:
        return Decision(action="fallback", reason="no-catalogue")
    index = index_for(catalogue)
    cc = catalogue.country_code
    number = _number(caller, cc)
    did = _number(dialled, cc)
    base = {"caller": number, "dialled": did}

    found = index.phones.get(number) if number else None
    did_tenant = index.dids.get(did) if did else None
    if found is not None:
        tenant, requester = found
        return _authorised(tenant, requester.name, "authorised-number", at, catalogue, index, base)
    if pin is not None and pin.status == "ok" and did_tenant is not None:
        names = {r.name for r in did_tenant.requesters if r.pin_hash}
        if pin.requester in names:
            return _authorised(did_tenant, pin.requester, "pin-ok", at, catalogue, index, base)

    tenant_fields = _tenant_fields(did_tenant, at, catalogue, index) if did_tenant else {}
    general = {**base, **tenant_fields, "action": "general", "queue": "", "priority": 0}
    candidates = pin_candidates(did_tenant) if did_tenant is not None else ()
    if pin is None:
        if candidates:
            return Decision(**general, reason="unknown-caller", pin_needed=True, pin_candidates=candidates)
        return Decision(**general, reason="unknown-caller")
    reason = {"ok": "pin-failed", "failed": "pin-failed", "locked": "pin-locked", "none": "pin-none"}[pin.status]
    return Decision(**general, reason=reason)


def _tenant_fields(tenant: Tenant, at: datetime, catalogue: Catalogue, index: RoutingIndex) -> dict[str, Any]:
    tier = catalogue.tiers.get(tenant.tier)
    in_hours = False
    if tier is not None:
        calendar = catalogue.calendars.get(tier.calendar)
        in_hours = calendar is not None and is_open(calendar, at, index.tz)
    return {"tenant": tenant.id, "tier": tenant.tier, "in_hours": in_hours}


def _authorised(
    tenant: Tenant,
    requester: str | None,
    reason: str,
    at: datetime,
    catalogue: Catalogue,
    index: RoutingIndex,
    base: dict[str, Any],
) -> Decision:
    fields = {**base, **_tenant_fields(tenant, at, catalogue, index), "authorised": True, "requester": requester}
    tier = catalogue.tiers.get(tenant.tier)
    if tier is None:  # a validated catalogue cannot get here; route safely anyway
        return Decision(**fields, action="general", reason="unknown-caller")
    if not _under_contract(tenant, at.astimezone(index.tz).date()):
        return Decision(**fields, action="general", reason="contract-inactive")
    if fields["in_hours"]:
        return Decision(**fields, action="queue", queue=tier.queue, priority=tier.priority, reason=reason)
    ooh = tier.out_of_hours
    if ooh.action == "queue" and ooh.queue:
        return Decision(
            **fields,
            action="queue",
            queue=ooh.queue,
            priority=tier.priority,
            reason="out-of-hours-queue",
            out_of_hours="queue",
        )
    if ooh.action == "voicemail":
        return Decision(**fields, action="closed", reason="out-of-hours-voicemail", out_of_hours="voicemail")
    return Decision(**fields, action="closed", reason="out-of-hours", out_of_hours="closed")
