"""The support-line decision: table of calls (number formats, hours, holidays, DST, tiers, PINs) and
properties over arbitrary callers and instants. Expected values are written out by hand or computed
from the example catalogue's text, not by the routing code."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbx_sla.domain.catalogue import OutOfHours
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.pins import seal_pins
from pbx_sla.domain.routing import REASONS, VARIABLES, PinOutcome, decide

ROOT = Path(__file__).resolve().parents[2]
PRAGUE = ZoneInfo("Europe/Prague")
ACME_DID = "+420221000111"
BISTRO_DID = "+420221000222"


def _load():
    data = tomllib.loads((ROOT / "examples" / "contracts.toml").read_text(encoding="utf-8"))
    return seal_pins(parse_catalogue(data, "contracts.toml"), {})


CAT = _load()


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=PRAGUE)


def with_tier(cat, tenant_id: str, **tier_changes):
    tenant = cat.tenants[tenant_id]
    tier = dataclasses.replace(cat.tiers[tenant.tier], **tier_changes)
    return dataclasses.replace(cat, tiers={**cat.tiers, tier.name: tier})


MON = local(2026, 11, 23, 10, 0)  # Monday 10:00, winter time
SAT = local(2026, 11, 28, 10, 0)

# (id, caller, dialled, at, pin, expected variables (subset), extra expectations)
CASES = [
    (
        "e164",
        "+420777000001",
        ACME_DID,
        MON,
        None,
        dict(
            SUPPORT_TENANT="acme",
            SUPPORT_TIER="tier3",
            SUPPORT_AUTHORISED="1",
            SUPPORT_IN_HOURS="1",
            SUPPORT_ACTION="queue",
            SUPPORT_QUEUE="support-premium",
            QUEUE_PRIO="5",
            SUPPORT_REASON="authorised-number",
            SUPPORT_OUT_OF_HOURS="",
        ),
    ),
    (
        "national",
        "777000001",
        ACME_DID,
        MON,
        None,
        dict(SUPPORT_TENANT="acme", SUPPORT_ACTION="queue", SUPPORT_REASON="authorised-number"),
    ),
    (
        "intl-00",
        "00420777000001",
        "7000",
        MON,
        None,
        dict(SUPPORT_TENANT="acme", SUPPORT_ACTION="queue", SUPPORT_AUTHORISED="1"),
    ),
    (
        "cc-without-plus",
        "420777000001",
        "support",
        SAT,
        None,
        dict(SUPPORT_TENANT="acme", SUPPORT_ACTION="queue", SUPPORT_IN_HOURS="1"),
    ),  # 24/7 tier
    ("spaced", "777 000 001", "", MON, None, dict(SUPPORT_TENANT="acme", SUPPORT_AUTHORISED="1")),
    ("callerid-wrapped", '"Jana" <+420777000001>', ACME_DID, MON, None, dict(SUPPORT_TENANT="acme")),
    ("fixed-line-national", "221000199", ACME_DID, MON, None, dict(SUPPORT_TENANT="acme")),
    (
        "requester-wins-over-did",
        "+420603000003",
        ACME_DID,
        MON,
        None,
        dict(SUPPORT_TENANT="bistro", SUPPORT_TIER="tier1", SUPPORT_QUEUE="support-basic", QUEUE_PRIO="1"),
    ),
    (
        "business-open",
        "+420603000003",
        BISTRO_DID,
        MON,
        None,
        dict(SUPPORT_ACTION="queue", SUPPORT_IN_HOURS="1", SUPPORT_REASON="authorised-number"),
    ),
    (
        "business-saturday",
        "+420603000003",
        BISTRO_DID,
        SAT,
        None,
        dict(
            SUPPORT_TENANT="bistro",
            SUPPORT_AUTHORISED="1",
            SUPPORT_IN_HOURS="0",
            SUPPORT_ACTION="closed",
            SUPPORT_QUEUE="",
            SUPPORT_REASON="out-of-hours",
            SUPPORT_OUT_OF_HOURS="closed",
        ),
    ),
    (
        "business-before-9",
        "+420603000003",
        BISTRO_DID,
        local(2026, 11, 23, 8, 59, 59),
        None,
        dict(SUPPORT_ACTION="closed", SUPPORT_IN_HOURS="0"),
    ),
    (
        "business-18-closed",
        "+420603000003",
        BISTRO_DID,
        local(2026, 11, 23, 18, 0),
        None,
        dict(SUPPORT_ACTION="closed"),
    ),
    (
        "holiday",
        "+420603000003",
        BISTRO_DID,
        local(2026, 12, 24, 10, 0),
        None,
        dict(SUPPORT_ACTION="closed", SUPPORT_REASON="out-of-hours"),
    ),
    (
        "dst-spring-monday-0859",
        "+420603000003",
        BISTRO_DID,
        datetime(2026, 3, 30, 6, 59, tzinfo=UTC),
        None,
        dict(SUPPORT_IN_HOURS="0"),
    ),
    (
        "dst-spring-monday-0900",
        "+420603000003",
        BISTRO_DID,
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
        None,
        dict(SUPPORT_IN_HOURS="1"),
    ),
    (
        "dst-autumn-friday-1759",
        "+420603000003",
        BISTRO_DID,
        datetime(2026, 10, 23, 15, 59, tzinfo=UTC),
        None,
        dict(SUPPORT_IN_HOURS="1"),
    ),
    (
        "dst-autumn-monday-0900",
        "+420603000003",
        BISTRO_DID,
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
        None,
        dict(SUPPORT_IN_HOURS="1"),
    ),
    (
        "dst-autumn-monday-0800",
        "+420603000003",
        BISTRO_DID,
        datetime(2026, 10, 26, 7, 0, tzinfo=UTC),
        None,
        dict(SUPPORT_IN_HOURS="0"),
    ),
    (
        "before-contract",
        "+420603000003",
        BISTRO_DID,
        local(2026, 2, 16, 10, 0),
        None,
        dict(
            SUPPORT_TENANT="bistro",
            SUPPORT_AUTHORISED="1",
            SUPPORT_ACTION="general",
            SUPPORT_QUEUE="",
            QUEUE_PRIO="0",
            SUPPORT_REASON="contract-inactive",
        ),
    ),
    ("contract-last-day", "+420603000003", BISTRO_DID, local(2027, 2, 26, 10, 0), None, dict(SUPPORT_ACTION="queue")),
    (
        "after-contract",
        "+420603000003",
        BISTRO_DID,
        local(2027, 3, 1, 10, 0),
        None,
        dict(SUPPORT_REASON="contract-inactive"),
    ),
    (
        "unknown-to-tenant-without-pins",
        "+420600111222",
        BISTRO_DID,
        MON,
        None,
        dict(
            SUPPORT_TENANT="bistro",
            SUPPORT_TIER="tier1",
            SUPPORT_AUTHORISED="0",
            SUPPORT_IN_HOURS="1",
            SUPPORT_ACTION="general",
            SUPPORT_QUEUE="",
            QUEUE_PRIO="0",
            SUPPORT_REASON="unknown-caller",
        ),
    ),
    (
        "unknown-to-general-number",
        "+420600111222",
        "7000",
        MON,
        None,
        dict(
            SUPPORT_TENANT="",
            SUPPORT_TIER="",
            SUPPORT_AUTHORISED="0",
            SUPPORT_IN_HOURS="0",
            SUPPORT_ACTION="general",
            SUPPORT_REASON="unknown-caller",
        ),
    ),
    ("anonymous", "anonymous", "7000", MON, None, dict(SUPPORT_ACTION="general", SUPPORT_REASON="unknown-caller")),
    (
        "pin-ok",
        "+420600111222",
        ACME_DID,
        MON,
        PinOutcome("ok", "Petr Svoboda"),
        dict(
            SUPPORT_TENANT="acme",
            SUPPORT_AUTHORISED="1",
            SUPPORT_ACTION="queue",
            SUPPORT_QUEUE="support-premium",
            QUEUE_PRIO="5",
            SUPPORT_REASON="pin-ok",
        ),
    ),
    (
        "pin-ok-national-did",
        "anonymous",
        "221000111",
        MON,
        PinOutcome("ok", "Petr Svoboda"),
        dict(SUPPORT_REASON="pin-ok"),
    ),
    (
        "pin-ok-but-not-this-tenant",
        "+420600111222",
        ACME_DID,
        MON,
        PinOutcome("ok", "Karel Dvorak"),
        dict(SUPPORT_AUTHORISED="0", SUPPORT_ACTION="general", SUPPORT_REASON="pin-failed"),
    ),
    (
        "pin-failed",
        "+420600111222",
        ACME_DID,
        MON,
        PinOutcome("failed"),
        dict(
            SUPPORT_TENANT="acme",
            SUPPORT_AUTHORISED="0",
            SUPPORT_ACTION="general",
            SUPPORT_QUEUE="",
            QUEUE_PRIO="0",
            SUPPORT_REASON="pin-failed",
        ),
    ),
    ("pin-locked", "+420600111222", ACME_DID, MON, PinOutcome("locked"), dict(SUPPORT_REASON="pin-locked")),
    ("pin-none", "+420600111222", ACME_DID, MON, PinOutcome("none"), dict(SUPPORT_REASON="pin-none")),
]


@pytest.mark.parametrize(("caller", "dialled", "at", "pin", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_decision_table(caller, dialled, at, pin, expected):
    variables = decide(caller, dialled, at, CAT, pin).variables()
    assert list(variables) == list(VARIABLES)
    assert {k: variables[k] for k in expected} == expected


def test_unknown_caller_to_a_did_with_pins_asks_for_a_pin():
    d = decide("+420600111222", ACME_DID, MON, CAT)
    assert d.pin_needed
    assert [name for name, _ in d.pin_candidates] == ["Petr Svoboda"]
    assert d.pin_candidates[0][1].startswith("scrypt$")
    # without a PIN the call would go to the general line
    assert (d.action, d.tenant, d.authorised) == ("general", "acme", False)


def test_no_pin_asked_when_number_known_or_no_did():
    assert not decide("+420777000002", ACME_DID, MON, CAT).pin_needed
    assert not decide("+420600111222", "7000", MON, CAT).pin_needed
    assert not decide("+420600111222", ACME_DID, MON, CAT, PinOutcome("failed")).pin_needed


def test_no_catalogue_is_fallback():
    d = decide("+420777000001", ACME_DID, MON, None)
    assert d.variables() == {
        "SUPPORT_TENANT": "", "SUPPORT_TIER": "", "SUPPORT_AUTHORISED": "0", "SUPPORT_IN_HOURS": "0",
        "SUPPORT_ACTION": "fallback", "SUPPORT_QUEUE": "", "QUEUE_PRIO": "0", "SUPPORT_REASON": "no-catalogue",
        "SUPPORT_OUT_OF_HOURS": "",
    }  # fmt: skip


def test_voicemail_out_of_hours_is_closed_without_queue():
    cat = with_tier(CAT, "bistro", out_of_hours=OutOfHours("voicemail"))
    d = decide("+420603000003", BISTRO_DID, SAT, cat)
    assert (d.action, d.queue, d.reason, d.out_of_hours, d.in_hours) == (
        "closed", "", "out-of-hours-voicemail", "voicemail", False)  # fmt: skip


def test_on_call_queue_out_of_hours():
    cat = with_tier(CAT, "bistro", out_of_hours=OutOfHours("queue", "support-oncall"), priority=7)
    d = decide("+420603000003", BISTRO_DID, SAT, cat)
    assert (d.action, d.queue, d.priority, d.reason, d.out_of_hours) == (
        "queue", "support-oncall", 7, "out-of-hours-queue", "queue")  # fmt: skip
    # and in hours the tier's own queue
    assert decide("+420603000003", BISTRO_DID, MON, cat).queue == "support-basic"


def test_index_follows_a_new_catalogue():
    d1 = decide("+420777000001", ACME_DID, MON, CAT)
    tenant = CAT.tenants["acme"]
    moved = dataclasses.replace(CAT, tenants={**CAT.tenants, "acme": dataclasses.replace(tenant, tier="tier1")})
    d2 = decide("+420777000001", ACME_DID, MON, moved)
    assert (d1.tier, d2.tier) == ("tier3", "tier1")


# --- properties ---------------------------------------------------------------------------------

HOLIDAYS = {date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)}


def business_open(at: datetime) -> bool:
    """Independent reading of calendars.business in examples/contracts.toml."""
    t = at.astimezone(PRAGUE)
    return t.weekday() < 5 and 9 <= t.hour < 18 and t.date() not in HOLIDAYS


instants = st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2027, 2, 28), timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(at=instants)
def test_business_hours_property(at):
    d = decide("+420603000003", BISTRO_DID, at, CAT)
    assert d.in_hours == business_open(at)
    assert d.action == ("queue" if business_open(at) else "closed")
    assert (d.queue == "support-basic") == business_open(at)


def formats(national: str):
    """Ways a caller ID may carry the Czech number with 9 national digits ``national``."""
    spaced = " ".join(national[i : i + 3] for i in range(0, 9, 3))
    return st.sampled_from([
        "+420" + national, "00420" + national, "420" + national, national, spaced, "+420 " + spaced,
        "+420-" + national[:3] + "-" + national[3:], f'"Someone" <+420{national}>', f"sip:+420{national}@pbx",
        f"tel:+420{national}",
    ])  # fmt: skip


REQUESTERS = {"777000001": "acme", "221000199": "acme", "777000002": "acme", "603000003": "bistro"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), national=st.sampled_from(sorted(REQUESTERS)), dialled=st.sampled_from(
    ["", "7000", "support", ACME_DID, BISTRO_DID, "221000222"]), at=instants)  # fmt: skip
def test_every_number_format_finds_the_requester(data, national, dialled, at):
    caller = data.draw(formats(national))
    d = decide(caller, dialled, at, CAT)
    assert d.tenant == REQUESTERS[national]
    assert d.authorised and d.reason in {"authorised-number", "out-of-hours", "contract-inactive"}
    assert not d.pin_needed


text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=400, deadline=None)
@given(caller=st.one_of(text, st.from_regex(r"\+?[0-9 ]{0,16}", fullmatch=True)), dialled=text, at=instants,
       pin=st.one_of(st.none(), st.builds(PinOutcome, st.sampled_from(["ok", "failed", "locked", "none"]),
                                          st.one_of(st.none(), text))))  # fmt: skip
def test_any_input_gives_a_well_formed_decision(caller, dialled, at, pin):
    d = decide(caller, dialled, at, CAT, pin)
    v = d.variables()
    assert d.reason in REASONS
    assert v["SUPPORT_ACTION"] in {"queue", "closed", "general"}
    assert v["SUPPORT_AUTHORISED"] in {"0", "1"} and v["SUPPORT_IN_HOURS"] in {"0", "1"}
    assert int(v["QUEUE_PRIO"]) >= 0
    assert (v["SUPPORT_QUEUE"] != "") == (v["SUPPORT_ACTION"] == "queue")
    assert v["SUPPORT_TENANT"] in {"", "acme", "bistro"}
    if d.authorised:
        assert d.tenant and d.requester
    else:
        assert d.action == "general"
    # nothing the caller typed reaches a variable
    assert all(value in _allowed_values() for value in (v["SUPPORT_TENANT"], v["SUPPORT_TIER"], v["SUPPORT_QUEUE"]))


def _allowed_values() -> set[str]:
    return {"", "acme", "bistro", *CAT.tiers, "support-basic", "support-premium", "support-oncall"}


@settings(max_examples=200, deadline=None)
@given(
    priority=st.integers(0, 100),
    queue=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    ooh=st.sampled_from(["closed", "voicemail", "queue"]),
    at=instants,
)
def test_tier_terms_drive_the_route(priority, queue, ooh, at):
    out = OutOfHours("queue", "oncall-" + queue) if ooh == "queue" else OutOfHours(ooh)
    cat = with_tier(CAT, "bistro", priority=priority, queue=queue, out_of_hours=out)
    d = decide("+420603000003", BISTRO_DID, at, cat)
    if business_open(at):
        assert (d.action, d.queue, d.priority) == ("queue", queue, priority)
    elif ooh == "queue":
        assert (d.action, d.queue, d.priority) == ("queue", "oncall-" + queue, priority)
    else:
        assert (d.action, d.queue, d.out_of_hours) == ("closed", "", ooh)


def test_dst_day_lengths_do_not_shift_hours():
    # every minute of the autumn change day (25 local hours, Sunday) is closed; Monday opens at 09:00 local
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # Sun 00:00 CEST
    t = start
    while t < start + timedelta(hours=25):
        assert not decide("+420603000003", BISTRO_DID, t, CAT).in_hours
        t += timedelta(minutes=17)
