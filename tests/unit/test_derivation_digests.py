"""``derivation_digests``: per tenant, a digest of the catalogue parts its kept support requests depend on. A
change to one of them changes the digests of exactly the tenants it reaches; any other change changes none."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pbx_sla.domain.catalogue import (
    Calendar,
    Catalogue,
    MaintenanceWindow,
    Requester,
    SupportSettings,
    Tenant,
    Tier,
    TimeRange,
    Trunk,
)
from pbx_sla.domain.requests import derivation_digests

BUSINESS = Calendar("business", False, {d: (TimeRange(540, 1080),) for d in range(5)}, frozenset({date(2026, 12, 24)}))
ALWAYS = Calendar("always", True)
BUSINESS_DAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def tier(name: str, calendar: str, reaction: int | None = 4 * 3600) -> Tier:
    return Tier(
        name=name, price_per_year=Decimal(1000), currency="CZK", calendar=calendar, queue=f"q-{name}",
        answer_target_seconds=30, reaction_target=reaction, reaction_share_target=Decimal("0.9"),
    )  # fmt: skip


def tenant(tid: str, tier_name: str, *requesters: Requester) -> Tenant:
    return Tenant(id=tid, name=f"tenant {tid}", tier=tier_name, employees=5, contract_start=date(2025, 1, 1),
                  requesters=requesters)  # fmt: skip


def base() -> Catalogue:
    tenants = {
        "acme": tenant("acme", "gold", Requester("Jana", ("+420777000001",)), Requester("Petr", (), "hash")),
        "bistro": tenant("bistro", "silver", Requester("Karel", ("+420603000003",))),
        "cafe": tenant("cafe", "silver", Requester("Eva", ("+420603000004", "+420603000005"))),
        "dental": tenant("dental", "bronze", Requester("Ota", ("+420603000006",))),
    }
    return Catalogue(
        timezone="Europe/Prague", country_code="420", calendars={"business": BUSINESS, "always": ALWAYS},
        tiers={"gold": tier("gold", "always"), "silver": tier("silver", "business"), "bronze": tier("bronze", "none")},
        tenants=tenants, trunks=(Trunk("trunk-a", "pbx1"),), support=SupportSettings(("agent1",), 30),
    )  # fmt: skip


def with_tenant(cat: Catalogue, tid: str, **changes: object) -> Catalogue:
    return dataclasses.replace(cat, tenants={**cat.tenants, tid: dataclasses.replace(cat.tenants[tid], **changes)})


def with_tier(cat: Catalogue, name: str, **changes: object) -> Catalogue:
    return dataclasses.replace(cat, tiers={**cat.tiers, name: dataclasses.replace(cat.tiers[name], **changes)})


def with_calendar(cat: Catalogue, name: str, **changes: object) -> Catalogue:
    calendars = {**cat.calendars, name: dataclasses.replace(cat.calendars[name], **changes)}
    return dataclasses.replace(cat, calendars=calendars)


def changed(before: Catalogue, after: Catalogue) -> set[str]:
    old, new = derivation_digests(before), derivation_digests(after)
    assert set(old) == set(new)
    return {t for t in old if old[t] != new[t]}


def test_only_tenants_with_a_tier_and_calendar():
    digests = derivation_digests(base())
    assert set(digests) == {"acme", "bistro", "cafe"}  # bronze's calendar does not exist: not assessed
    assert len(set(digests.values())) == 3
    assert derivation_digests(base()) == digests  # the same catalogue built again


ALL = {"acme", "bistro", "cafe"}
#: changes that reach the derivation, and the tenants whose digests they change
RELEVANT: list[tuple[str, Callable[[Catalogue], Catalogue], set[str]]] = [
    ("zone", lambda c: dataclasses.replace(c, timezone="Europe/Vienna"), ALL),
    ("country code", lambda c: dataclasses.replace(c, country_code="421"), ALL),
    ("staff", lambda c: dataclasses.replace(c, support=SupportSettings(("agent1", "agent2"), 30)), ALL),
    ("callback minimum", lambda c: dataclasses.replace(c, support=SupportSettings(("agent1",), 31)), ALL),
    ("line contexts", lambda c: dataclasses.replace(c, support=SupportSettings(("agent1",), 30, ("sl",))), ALL),
    ("silver's reaction target", lambda c: with_tier(c, "silver", reaction_target=3600), {"bistro", "cafe"}),
    ("gold's reaction target removed", lambda c: with_tier(c, "gold", reaction_target=None), {"acme"}),
    ("silver's calendar", lambda c: with_tier(c, "silver", calendar="always"), {"bistro", "cafe"}),
    ("business hours", lambda c: with_calendar(c, "business", hours={0: (TimeRange(480, 1080),)}), {"bistro", "cafe"}),
    ("a holiday", lambda c: with_calendar(c, "business", holidays=frozenset()), {"bistro", "cafe"}),
    ("always", lambda c: with_calendar(c, "always", always=False), {"acme"}),
    ("bistro's tier", lambda c: with_tenant(c, "bistro", tier="gold"), {"bistro"}),
    (
        "a number of cafe's",
        lambda c: with_tenant(c, "cafe", requesters=(Requester("Eva", ("+420603000004",)),)),
        {"cafe"},
    ),
    (
        "a requester of bistro's",
        lambda c: with_tenant(c, "bistro", requesters=(*c.tenants["bistro"].requesters, Requester("Ida", ("+4206",)))),
        {"bistro"},
    ),
    (
        "a requester's name",
        lambda c: with_tenant(c, "bistro", requesters=(Requester("Karel D.", ("+420603000003",)),)),
        {"bistro"},
    ),
    (
        "a PIN given",
        lambda c: with_tenant(c, "bistro", requesters=(Requester("Karel", ("+420603000003",), "h"),)),
        {"bistro"},
    ),
    (
        "acme lists bistro's number first",
        lambda c: with_tenant(c, "acme", requesters=(Requester("Jana", ("+420777000001", "+420603000003")),)),
        {"acme", "bistro"},  # acme's number now, and bistro's no more (phones are unique in a parsed file)
    ),
]
#: changes nothing derived reads
IRRELEVANT: list[tuple[str, Callable[[Catalogue], Catalogue]]] = [
    ("a tenant's name", lambda c: with_tenant(c, "acme", name="ACME a.s.")),
    ("employees", lambda c: with_tenant(c, "cafe", employees=50)),
    ("contract", lambda c: with_tenant(c, "cafe", contract_start=date(2024, 1, 1), contract_end=date(2027, 1, 1))),
    ("support hours", lambda c: with_tenant(c, "acme", support_hours_per_year=Decimal(20))),
    ("dids", lambda c: with_tenant(c, "bistro", dids=("+420221000222",), accountcodes=("b",), trunks=("trunk-a",))),
    ("a tier's price", lambda c: with_tier(with_tier(c, "silver", price_per_year=Decimal(2)), "gold", queue="x")),
    ("a tier's other targets", lambda c: with_tier(c, "gold", answer_target_seconds=10, reaction_share_target=None)),
    ("a PIN's hash", lambda c: with_tenant(c, "acme", requesters=tuple(
        dataclasses.replace(r, pin_hash="new") if r.pin_hash else r for r in c.tenants["acme"].requesters))),
    ("requesters' order", lambda c: with_tenant(c, "acme", requesters=c.tenants["acme"].requesters[::-1])),
    ("numbers' order", lambda c: with_tenant(
        c, "cafe", requesters=(Requester("Eva", ("+420603000005", "+420603000004")),))),
    ("staff order", lambda c: dataclasses.replace(c, support=SupportSettings(("agent1", "agent1"), 30))),
    ("an unused calendar", lambda c: dataclasses.replace(c, calendars={**c.calendars, "x": ALWAYS})),
    ("bronze's reaction target", lambda c: with_tier(c, "bronze", reaction_target=60)),
    ("trunks, maintenance", lambda c: dataclasses.replace(
        c, trunks=(), maintenance=(MaintenanceWindow(BUSINESS_DAY, BUSINESS_DAY),))),
]  # fmt: skip


@given(st.sampled_from(RELEVANT))
def test_a_change_the_derivation_reads_changes_the_tenants_it_reaches(case):
    _name, change, reached = case
    assert changed(base(), change(base())) == reached


@given(st.sampled_from(IRRELEVANT))
def test_any_other_change_changes_no_digest(case):
    _name, change = case
    assert changed(base(), change(base())) == set()


@given(st.lists(st.sampled_from(RELEVANT + [(n, c, set()) for n, c in IRRELEVANT]), max_size=4))
def test_changes_together_reach_the_union_of_their_tenants(cases):
    cat = base()
    for _name, change, _reached in cases:
        cat = change(cat)
    reached = set().union(*(r for _n, _c, r in cases)) if cases else set()
    # two changes may undo each other's effect on a digest (e.g. the same field changed twice), never add one
    assert changed(base(), cat) <= reached
    if len(cases) == 1:
        assert changed(base(), cat) == reached
