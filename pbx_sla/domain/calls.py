"""Legs → calls, and who a call belongs to. Pure and order-independent: shuffled legs give the same calls.

Definitions (spec.md): a call is counted once by its ``linkedid`` (``uniqueid`` when none); its
disposition is the best of its legs (ANSWERED > BUSY > NO ANSWER > FAILED > CONGESTION); its day is the
calendar day, in the catalogue's zone, its first leg started; billable seconds are summed over all legs.
Its tenant is found from the account code, else the dialled DID, else the caller's number among the
requesters; within each rule the legs are tried in order (start, sequence). The SQL text
``calls_compute_sql()`` (sql/repeatable/calls_compute_sql.sql), which ``cdr_store_stage`` (every write) and
``calls_refresh`` (re-attribution) both run, implements the same rules for storage; the tests compare it with
this module.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pbx_sla.domain.cdr import CdrLeg, best_disposition, direction, trunk_of
from pbx_sla.domain.phone import normalise

#: buckets of calls per server, each stored under its own lock (pbx_sla.store.calls.lock_calls): the number
#: of connections ``cdr import`` stores on. Every writer must agree on it: changing it needs every daemon
#: and import stopped.
CALL_BUCKETS = 2


def call_bucket(call_key: str, buckets: int = CALL_BUCKETS) -> int:
    """The bucket of a call among ``buckets`` (stable across processes and versions: CRC-32 of its key)."""
    return zlib.crc32(call_key.encode()) % buckets


@dataclass(frozen=True)
class Directory:
    """The catalogue's attribution lookups (active rows only); numbers in E.164."""

    accountcodes: Mapping[str, str] = field(default_factory=dict)  # account code → tenant
    dids: Mapping[str, str] = field(default_factory=dict)  # DID → tenant
    phones: Mapping[str, str] = field(default_factory=dict)  # requester phone → tenant
    country_code: str | None = None
    trunks: frozenset[str] = frozenset()  # PJSIP endpoint names of known trunks (of the leg's server)


@dataclass(frozen=True)
class Call:
    server: str
    key: str  # linkedid, else uniqueid, else "leg:<fingerprint>"
    legs: int
    start: datetime
    end: datetime
    day: date
    disposition: str
    billsec: int
    caller: str | None  # E.164 of the first leg's caller, when it is a phone number
    dialled: str | None  # E.164 of the first leg's destination, when it is a phone number
    direction: str
    trunk: str | None
    tenant: str | None
    attributed_by: str | None  # accountcode | did | requester


def caller_number(leg: CdrLeg, country_code: str | None) -> str | None:
    """The caller as E.164 (from ``src``, else the caller ID), None when not a phone number."""
    if not country_code:
        return None
    return normalise(leg.src or leg.clid, country_code)


def dialled_number(leg: CdrLeg, country_code: str | None) -> str | None:
    """The dialled destination (``dst``) as E.164, None for extensions such as ``s`` or ``101``."""
    if not country_code:
        return None
    return normalise(leg.dst, country_code)


def attribute(legs: list[CdrLeg], directory: Directory) -> tuple[str | None, str | None]:
    """(tenant, rule) for legs already in order; (None, None) when no rule finds one."""
    for leg in legs:
        if leg.accountcode and leg.accountcode in directory.accountcodes:
            return directory.accountcodes[leg.accountcode], "accountcode"
    for leg in legs:
        did = dialled_number(leg, directory.country_code)
        if did and did in directory.dids:
            return directory.dids[did], "did"
    for leg in legs:
        phone = caller_number(leg, directory.country_code)
        if phone and phone in directory.phones:
            return directory.phones[phone], "requester"
    return None, None


def build_call(legs: Iterable[CdrLeg], directory: Directory, tz: ZoneInfo) -> Call:
    """One call from all of its legs (any order)."""
    ordered = sorted(legs, key=lambda leg: leg.order_key)
    if not ordered:
        raise ValueError("a call needs at least one leg")
    first = ordered[0]
    tenant, rule = attribute(ordered, directory)
    trunk = next((t for t in (trunk_of(leg, directory.trunks) for leg in ordered) if t), None)
    start = min(leg.start for leg in ordered)
    return Call(
        server=first.server,
        key=first.call_key,
        legs=len(ordered),
        start=start,
        end=max(leg.end for leg in ordered),
        day=start.astimezone(tz).date(),
        disposition=best_disposition([leg.disposition for leg in ordered]),
        billsec=sum(leg.billsec for leg in ordered),
        caller=caller_number(first, directory.country_code),
        dialled=dialled_number(first, directory.country_code),
        direction=direction(first, directory.trunks),
        trunk=trunk,
        tenant=tenant,
        attributed_by=rule,
    )


def build_calls(legs: Iterable[CdrLeg], directory: Directory, tz: ZoneInfo) -> list[Call]:
    """Group legs by (server, call key) and build each call; sorted by (start, server, key).

    The same leg given twice (same fingerprint) counts once, as in storage.
    """
    groups: dict[tuple[str, str], dict[object, CdrLeg]] = defaultdict(dict)
    for leg in legs:
        groups[(leg.server, leg.call_key)][leg.fingerprint] = leg
    calls = [build_call(group.values(), directory, tz) for group in groups.values()]
    return sorted(calls, key=lambda c: (c.start, c.server, c.key))
