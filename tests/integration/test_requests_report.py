"""`pbx-sla requests`, the `sla` reaction figures and prepaid support hours against PostgreSQL: support
calls, queue events and CDR legs stored through the real sinks, a fixed clock (``--now``). Every expected
figure is worked out by hand in the comments.

Tenants (examples/contracts.toml plus the request keys): acme is tier3 (24/7, reaction 4 h, 95 % of requests,
a reaction credit rule), bistro is tier1 (Mon-Fri 09:00-18:00 Prague, reaction 4 h). Staff endpoints:
agent1 and staff; agent2 counts as a queue member (it answered a Queue leg).
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import tomllib
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pbx_sla import cli
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.cdr import LegRow, LocalClock, read_leg
from pbx_sla.store.calls import store_rows
from pbx_sla.store.catalogue import apply_catalogue
from pbx_sla.store.support import QueueEventSink, SupportCallSink

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"
NOW = "2026-12-07T13:00:00+01:00"  # Monday 7 Dec 2026, 13:00 Prague = 12:00 UTC


def z(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)


def catalogue() -> dict:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["support"] = {"staff": ["agent1", "staff"], "callback_min_seconds": 20}
    data["tiers"]["tier1"] |= {"reaction_target": "4h"}
    data["tiers"]["tier3"] |= {"reaction_target": "4h", "reaction_share_target": 0.95}
    data["tiers"]["tier3"]["credits"].append({"below": 0.9, "percent": 5, "metric": "reaction"})
    acme = next(t for t in data["tenants"] if t["id"] == "acme")
    acme["support_hours_per_year"] = 20
    acme["support_packages"] = [{"hours": "7.5", "start": "2026-06-01", "end": "2026-12-31"}]
    return data


def support_call(
    uid: str, at: datetime, tenant: str, caller: str, action: str = "queue", reason: str = "authorised-number"
):
    return {
        "uniqueid": uid, "linkedid": uid, "server": "pbx1", "caller": caller, "caller_e164": caller,
        "dialled": "+420221000111", "tenant": tenant,
        "requester": "Jana Novakova" if tenant == "acme" else "Karel Dvorak",
        "authorised": True, "in_hours": action == "queue", "tier": "tier3" if tenant == "acme" else "tier1",
        "action": action, "reason": reason, "queue": "support-premium" if action == "queue" else None,
        "decided_at": at.isoformat(),
    }  # fmt: skip


def qev(uid: str, event: str, at: datetime, **extra) -> dict:
    return {"server": "pbx1", "uniqueid": uid, "linkedid": uid, "event": event, "at": at.isoformat(),
            "queue": "support-premium", **extra}  # fmt: skip


def leg(uid: str, endpoint: str, dst: str, answer: datetime, billsec: int, *, app: str = "Dial",
        dstchannel: str = "PJSIP/trunk-a-00000009", src: str = "", dcontext: str = "staff") -> LegRow:  # fmt: skip
    """One answered CDR leg as cdr_csv writes it (21 columns, times in UTC), read like every leg."""
    fmt = "%Y-%m-%d %H:%M:%S"
    start, end = answer - timedelta(seconds=5), answer + timedelta(seconds=billsec)
    row = [
        "", src or endpoint, dst, dcontext, f'"{endpoint}" <{endpoint}>', f"PJSIP/{endpoint}-0000000{len(uid)}",
        dstchannel, app, "", start.strftime(fmt), answer.strftime(fmt), end.strftime(fmt), str(billsec + 5),
        str(billsec), "ANSWERED", "DOCUMENTATION", uid, "", "", uid, "",
    ]  # fmt: skip
    return read_leg("pbx1", row, LocalClock(ZoneInfo("UTC")))


async def run_cli(*args: str) -> tuple[int, str]:
    """The real console entry point (it runs its own event loop: in a thread)."""
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with redirect_stdout(out):
            code = await asyncio.to_thread(cli.main, list(args))
    finally:
        root.handlers[:], root.level = handlers, level
    return code, out.getvalue()


ACME, BISTRO = "+420777000001", "+420603000003"


async def store_facts(db, *, with_bistro_callback: bool = True) -> None:
    calls = [
        # acme request 1: abandoned twice (the second joins), called back by agent2 5 h after the first
        support_call("a1", z(1, 10), "acme", ACME),
        support_call("a2", z(1, 10, 30), "acme", ACME),
        # acme request 2: answered live after 20 s, 300 s of talk
        support_call("a3", z(2, 9), "acme", ACME),
        # acme request 3: abandoned, never reacted to
        support_call("a4", z(3, 8), "acme", ACME),
        # bistro: Friday 4 Dec 19:30 Prague, closed; again on Saturday (joins)
        support_call("b1", z(4, 18, 30), "bistro", BISTRO, "closed", "out-of-hours"),
        support_call("b2", z(5, 10), "bistro", BISTRO, "closed", "out-of-hours"),
        # unauthorised / no tenant: no request
        {**support_call("x1", z(2, 11), "acme", "+420600111222"), "authorised": False},
    ]
    events = []
    for uid, at in (("a1", z(1, 10)), ("a2", z(1, 10, 30)), ("a4", z(3, 8))):
        events += [qev(uid, "QueueCallerJoin", at + timedelta(seconds=1)),
                   qev(uid, "QueueCallerAbandon", at + timedelta(seconds=61), hold_time=60)]  # fmt: skip
    events += [
        qev("a3", "QueueCallerJoin", z(2, 9, 0, 1)),
        qev("a3", "AgentConnect", z(2, 9, 0, 20), hold_time=19, member="Agent Two"),
        qev("a3", "AgentComplete", z(2, 9, 5, 20), hold_time=19, talk_time=300, reason="caller"),
    ]
    events += [qev("f1", "QueueCallerJoin", z(2, 12, 0, 6)), qev("f1", "QueueCallerAbandon", z(2, 12, 1), hold_time=54)]
    await SupportCallSink().write(db, calls)
    await QueueEventSink().write(db, events)
    legs = [
        # the queue leg of a3 answered by agent2: agent2 is a queue member
        leg(
            "a3",
            "trunk-a",
            "+420221000111",
            z(2, 9, 0, 20),
            300,
            app="Queue",
            dstchannel="PJSIP/agent2-00000001",
            src=ACME,
        ),
        # agent2 calls acme back in national format: 600 s, answered 1 Dec 15:00 → reacts to request 1
        leg("cb1", "agent2", "777000001", z(1, 15), 600),
        # too short (10 s < 20 s) and not by staff (trunk-a): not callbacks
        leg("cb2", "agent1", "777000001", z(3, 9), 10),
        leg("cb3", "trunk-a", "777000001", z(3, 9, 30), 400),
    ]
    # acme request 3: the AGI server was down; the dialplan's failure route queued Petr's call (no support-call
    # record: found by its CDR leg in the support-line context), he abandoned; agent1 called back an hour later
    legs.append(leg("f1", "anonymous", "+420221000111", z(2, 12, 0, 5), 70, app="Queue", dstchannel="",
                    src="+420777000002", dcontext="support-line"))  # fmt: skip
    legs.append(leg("cb5", "agent1", "+420777000002", z(2, 13), 60))
    if with_bistro_callback:
        # the staff phone calls bistro on Monday 7 Dec 10:15 Prague, 120 s
        legs.append(leg("cb4", "staff", "00420603000003", z(7, 9, 15), 120))
    await store_rows(db, legs, "ami")


@pytest.fixture
async def loaded(db, cli_env):
    cat = parse_catalogue(catalogue(), "contracts.toml")
    await apply_catalogue(db, cat, "contracts.toml")
    await store_facts(db)
    return db


async def requests_json(*extra: str) -> dict:
    code, text = await run_cli("requests", "--period", "2026-12", "--now", NOW, "--format", "json", *extra)
    assert code == 0, text
    return json.loads(text)


async def test_requests_report(loaded):
    report = await requests_json()
    assert report["now"] == "2026-12-07T13:00:00+01:00"
    got = [
        (r["tenant"], r["opened_at"], r["why"], r["calls"], r["deadline"], r["reacted_at"], r["reacted_by"],
         r["business_seconds"], r["status"])
        for r in report["requests"]
    ]  # fmt: skip
    assert got == [
        # 24/7: business time is wall time; 5 h > 4 h
        ("acme", "2026-12-01T11:00:00+01:00", "abandoned", 2, "2026-12-01T15:00:00+01:00",
         "2026-12-01T16:00:00+01:00", "callback", 18000.0, "breached"),
        ("acme", "2026-12-02T10:00:00+01:00", "answered", 1, "2026-12-02T14:00:00+01:00",
         "2026-12-02T10:00:20+01:00", "answer", 20.0, "met"),
        ("acme", "2026-12-02T13:00:00+01:00", "agi-failure", 1, "2026-12-02T17:00:00+01:00",
         "2026-12-02T14:00:00+01:00", "callback", 3600.0, "met"),
        # unreacted since 3 Dec 09:00 Prague: 4 days 4 h by now, past its deadline
        ("acme", "2026-12-03T09:00:00+01:00", "abandoned", 1, "2026-12-03T13:00:00+01:00", None, None,
         4 * 86400.0 + 4 * 3600, "overdue"),
        # Friday 19:30: the clock starts Monday 09:00, 4 business hours → Monday 13:00; reacted Monday 10:15
        ("bistro", "2026-12-04T19:30:00+01:00", "closed", 2, "2026-12-07T13:00:00+01:00",
         "2026-12-07T10:15:00+01:00", "callback", 4500.0, "met"),
    ]  # fmt: skip
    assert [r["requester"] for r in report["requests"]] == ["Jana Novakova", "Jana Novakova", "Petr Svoboda",
                                                            "Jana Novakova", "Karel Dvorak"]  # fmt: skip
    required = {"tenant", "requester", "opened_at", "why", "deadline", "reacted_at", "reacted_by",
                "business_seconds", "status"}  # fmt: skip
    assert all(required <= set(r) for r in report["requests"])

    only_open = await requests_json("--open")
    assert [(r["tenant"], r["status"]) for r in only_open["requests"]] == [("acme", "overdue")]
    bistro = await requests_json("--tenant", "bistro")
    assert [r["tenant"] for r in bistro["requests"]] == ["bistro"]
    code, text = await run_cli("requests", "--period", "2026-12", "--now", NOW)
    assert code == 0 and "overdue" in text and "callback" in text
    code, _ = await run_cli("requests", "--period", "2026-12", "--now", "2026-12-07T13:00:00")
    assert code == 2  # no offset: a usage error


async def test_a_late_cdr_leg_reacts_on_the_next_report(db, cli_env):
    cat = parse_catalogue(catalogue(), "contracts.toml")
    await apply_catalogue(db, cat, "contracts.toml")
    await store_facts(db, with_bistro_callback=False)
    before = (await requests_json("--tenant", "bistro"))["requests"]
    # as of Monday 13:00 the Friday-evening request reached its deadline unreacted
    assert [(r["status"], r["business_seconds"], r["deadline"]) for r in before] == [
        ("overdue", 14400.0, "2026-12-07T13:00:00+01:00")
    ]
    await store_rows(db, [leg("cb4", "staff", "00420603000003", z(7, 9, 15), 120)], "ami")
    after = (await requests_json("--tenant", "bistro"))["requests"]
    assert [(r["status"], r["reacted_by"], r["business_seconds"]) for r in after] == [("met", "callback", 4500.0)]


async def test_sla_reaction_figures_breach_credit_and_support_hours(loaded):
    code, text = await run_cli("sla", "--period", "2026-12", "--now", NOW, "--format", "json")
    assert code == 0, text
    tenants = {t["tenant"]: t for t in json.loads(text)["tenants"]}
    acme, bistro = tenants["acme"], tenants["bistro"]
    # 4 requests: breached, met, met, overdue → share 2 / (2 + 1 + 1) = 0.5; the reacted ones took 18000, 20
    # and 3600 s:
    # median 3600, p95 (the 3rd of 3) 18000
    assert acme["reaction"] == {
        "requests": 4, "met": 2, "breached": 1, "open": 0, "overdue": 1, "share": 0.5,
        "target_seconds": 14400, "median_business_seconds": 3600.0, "p95_business_seconds": 18000.0,
    }  # fmt: skip
    breaches = {b["metric"]: (b["target"], b["actual"]) for b in acme["breaches"]}
    assert breaches["reaction"] == (0.95, 0.5)
    # credits: only the reaction rule (below 0.9 → 5 %) triggers (acme's trunk was never observed);
    # fee 96000 * 31 / 365 = 8153.424… → 8153.42; 5 % = 407.671 → 407.67
    assert acme["credit"] == {"percent": 5.0, "amount": "407.67", "currency": "CZK"}
    # prepaid hours on 31 Dec: 20 h (contract year 2026) + 7.5 h package; used: 300 s talk + 600 s and 60 s
    # callbacks = 960 s = 0.2667 h; remaining 99000 - 960 = 98040 s = 27.2333 h
    assert acme["support_hours"] == {"bought": "27.50", "used": "0.27", "remaining": "27.23", "overage": "0.00"}
    assert bistro["support_hours"] is None  # bistro bought no hours
    assert bistro["reaction"]["requests"] == 1 and bistro["reaction"]["share"] == 1.0
    assert bistro["reaction"]["target_seconds"] == 14400
    code, text = await run_cli("sla", "--period", "2026-12", "--now", NOW)
    assert code == 0 and "2/4" in text and "27.23 of 27.50 h" in text


async def test_usage_shows_support_hours(loaded):
    code, text = await run_cli("usage", "--period", "2026-12", "--format", "json")
    assert code == 0, text
    tenants = {t["tenant"]: t for t in json.loads(text)["tenants"]}
    assert tenants["acme"]["support_hours"]["used"] == "0.27"
    assert tenants["bistro"]["support_hours"] is None


async def test_a_channel_that_ran_the_support_agi_twice_is_one_contact(loaded):
    """The answered caller of a3 was sent back to the support line after the talk: a second AGI run on the same
    channel (stored since every run is kept). The reports are those of test_requests_report and
    test_sla_reaction_figures_breach_credit_and_support_hours: still one answered request, and the channel's
    300 s of talk counted once in the prepaid hours (0.27 h used, not 0.35)."""
    await SupportCallSink().write(loaded, [support_call("a3", z(2, 9, 6), "acme", ACME)])
    assert await loaded.fetchval("SELECT count(*) FROM support_calls WHERE uniqueid = 'a3'") == 2
    report = await requests_json("--tenant", "acme")
    assert [(r["opened_at"], r["why"], r["calls"], r["status"]) for r in report["requests"]] == [
        ("2026-12-01T11:00:00+01:00", "abandoned", 2, "breached"),
        ("2026-12-02T10:00:00+01:00", "answered", 1, "met"),
        ("2026-12-02T13:00:00+01:00", "agi-failure", 1, "met"),
        ("2026-12-03T09:00:00+01:00", "abandoned", 1, "overdue"),
    ]
    code, text = await run_cli("sla", "--period", "2026-12", "--now", NOW, "--format", "json")
    assert code == 0, text
    acme = next(t for t in json.loads(text)["tenants"] if t["tenant"] == "acme")
    assert acme["support_hours"]["used"] == "0.27"
    assert acme["reaction"]["requests"] == 4
