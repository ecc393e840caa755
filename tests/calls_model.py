"""The definitions of a call (docs/calls.md, "Definitions") written plainly in Python, one leg at a time:
the tests' independent computation of what the SQL call computation (``cdr_store_stage``) must store.

Not used by pbx-sla itself; kept deliberately simple (no batching, no buckets), so that a disagreement
with the stored calls points at the SQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from pbx_sla.domain.cdr import DISPOSITIONS, LegRow
from pbx_sla.domain.phone import normalise


@dataclass(frozen=True)
class Directory:
    """The catalogue's attribution lookups (active rows only); numbers in E.164."""

    accountcodes: Mapping[str, str] = field(default_factory=dict)  # account code → tenant
    dids: Mapping[str, str] = field(default_factory=dict)  # DID → tenant
    phones: Mapping[str, str] = field(default_factory=dict)  # requester phone → tenant
    country_code: str | None = None
    trunks: frozenset[str] = frozenset()  # endpoint names of the catalogue's trunks


@dataclass(frozen=True)
class Call:
    server: str
    key: str
    legs: int
    start: datetime
    end: datetime
    day: date
    disposition: str
    billsec: int
    caller: str | None
    dialled: str | None
    direction: str
    trunk: str | None
    tenant: str | None
    attributed_by: str | None


def _number(text: str, cc: str | None) -> str | None:
    return normalise(text, cc) if cc else None


def _order(leg: LegRow) -> tuple:
    return (leg.start, 2**31 if leg.sequence is None else leg.sequence, leg.uniqueid, leg.fingerprint)


def _attribute(legs: list[LegRow], d: Directory) -> tuple[str | None, str | None]:
    for leg in legs:
        if leg.accountcode and leg.accountcode in d.accountcodes:
            return d.accountcodes[leg.accountcode], "accountcode"
    for leg in legs:
        did = _number(leg.dst, d.country_code)
        if did and did in d.dids:
            return d.dids[did], "did"
    for leg in legs:
        phone = _number(leg.src or leg.clid, d.country_code)
        if phone and phone in d.phones:
            return d.phones[phone], "requester"
    return None, None


def _direction(leg: LegRow, trunks: frozenset[str]) -> str:
    if leg.src_endpoint in trunks:
        return "inbound"
    if leg.dst_endpoint in trunks:
        return "outbound"
    return "internal"


def build_call(legs: Iterable[LegRow], d: Directory, tz: ZoneInfo) -> Call:
    ordered = sorted(legs, key=_order)
    first = ordered[0]
    tenant, rule = _attribute(ordered, d)
    trunk = next((e for leg in ordered for e in (leg.src_endpoint, leg.dst_endpoint) if e in d.trunks), None)
    start = datetime.fromtimestamp(min(leg.start for leg in ordered), UTC)
    return Call(
        server=first.server,
        key=first.call_key,
        legs=len(ordered),
        start=start,
        end=datetime.fromtimestamp(max(leg.end for leg in ordered), UTC),
        day=start.astimezone(tz).date(),
        disposition=min((leg.disposition for leg in ordered), key=DISPOSITIONS.index),
        billsec=sum(leg.billsec for leg in ordered),
        caller=_number(first.src or first.clid, d.country_code),
        dialled=_number(first.dst, d.country_code),
        direction=_direction(first, d.trunks),
        trunk=trunk,
        tenant=tenant,
        attributed_by=rule,
    )


def build_calls(legs: Iterable[LegRow], d: Directory, tz: ZoneInfo) -> list[Call]:
    """Legs grouped by (server, call key), the same leg (fingerprint) counted once; sorted by start."""
    groups: dict[tuple[str, str], dict[str, LegRow]] = defaultdict(dict)
    for leg in legs:
        groups[(leg.server, leg.call_key)][leg.fingerprint] = leg
    calls = [build_call(group.values(), d, tz) for group in groups.values()]
    return sorted(calls, key=lambda c: (c.start, c.server, c.key))
