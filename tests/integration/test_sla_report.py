"""`pbx-sla sla` against PostgreSQL: support calls and queue events stored through the sinks, trunk
observations for availability; every expected figure below is worked out by hand in the comments."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tomllib
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbx_sla import cli
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.store.catalogue import apply_catalogue
from pbx_sla.store.support import QueueEventSink, SupportCallSink

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"
START = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 2026-11-01 00:00 Europe/Prague (CET)
END = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


async def apply_example(db):
    cat = parse_catalogue(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")), str(EXAMPLE))
    await apply_catalogue(db, cat, str(EXAMPLE))


def call(uid: str, at: datetime, tenant: str | None = "acme", action="queue", server="pbx1") -> dict:
    return {
        "uniqueid": uid, "linkedid": uid, "server": server, "caller": "+420777000001", "caller_e164": "+420777000001",
        "caller_name": "Jana", "channel": "PJSIP/x", "dialled": "+420221000111", "tenant": tenant,
        "requester": "Jana Novakova", "authorised": True, "in_hours": True, "tier": "tier3", "action": action,
        "reason": "authorised-number", "queue": "support-premium", "priority": 5, "decided_at": at.isoformat(),
        "latency_ms": 1.5, "pin_attempts": 0, "via": "fastagi",
    }  # fmt: skip


def qev(uid: str, event: str, at: datetime, server="pbx1", **extra) -> dict:
    return {"server": server, "uniqueid": uid, "linkedid": uid, "event": event, "at": at.isoformat(),
            "queue": "support-premium", **extra}  # fmt: skip


def t(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


async def store_calls(db):
    calls, events = [], []

    def answered(uid, at, wait):
        calls.append(call(uid, at))
        events.append(qev(uid, "QueueCallerJoin", at + timedelta(seconds=1), position=1))
        events.append(qev(uid, "AgentConnect", at + timedelta(seconds=1 + wait), hold_time=wait, ring_time=3))
        events.append(qev(uid, "AgentComplete", at + timedelta(seconds=100 + wait), hold_time=wait, talk_time=99,
                          reason="caller"))  # fmt: skip
        events.append(qev(uid, "QueueCallerLeave", at + timedelta(seconds=1 + wait)))

    def abandoned(uid, at, wait):
        calls.append(call(uid, at))
        events.append(qev(uid, "QueueCallerJoin", at + timedelta(seconds=1)))
        events.append(qev(uid, "QueueCallerAbandon", at + timedelta(seconds=1 + wait), hold_time=wait))
        events.append(qev(uid, "QueueCallerLeave", at + timedelta(seconds=1 + wait)))

    answered("a1", t(2, 9), 10)  # within the 30 s target of tier3
    answered("a2", t(3, 9), 30)  # exactly the target: within
    answered("a3", t(4, 9), 31)  # late
    abandoned("b1", t(5, 9), 5)  # abandoned within target: not held against
    abandoned("b2", t(6, 9), 50)  # abandoned after the target
    # the queue gave up (timeout): joined, left after 600 s, never answered → abandoned after target
    calls.append(call("c1", t(7, 9)))
    events += [qev("c1", "QueueCallerJoin", t(7, 9, 0, 1)), qev("c1", "QueueCallerLeave", t(7, 9, 10, 1))]
    calls.append(call("d1", t(8, 9), action="closed"))  # never queued
    # before the period (Oct 31 23:59 local is 22:59 UTC): not counted
    calls.append(call("x1", START - timedelta(minutes=1)))
    events.append(qev("x1", "QueueCallerJoin", START))
    # AGI server could not tell the server: joins the queue events of its uniqueid anyway
    calls.append(call("u1", t(9, 9), server="unknown"))
    events += [qev("u1", "QueueCallerJoin", t(9, 9, 0, 1)), qev("u1", "AgentConnect", t(9, 9, 0, 21), hold_time=20)]
    # a call without a tenant (general line): in no tenant's figures
    calls.append(call("g1", t(10, 9), tenant=None, action="general"))

    await SupportCallSink().write(db, calls)
    await QueueEventSink().write(db, events)
    # replays change nothing
    await SupportCallSink().write(db, calls[:3])
    await QueueEventSink().write(db, events)


async def store_trunk_a(db):
    """trunk-a: observed all month, down for exactly one hour on 10 Nov; the example catalogue's
    maintenance window (1 Nov 02:00-04:00 +01:00) is excluded."""
    await db.execute(
        """INSERT INTO ami_sessions (server, session_id, login_at, resynced_at, last_seen_at)
           VALUES ('pbx1', 's1', $1, $1, $2)""",
        START - timedelta(hours=1),
        END + timedelta(hours=1),
    )
    for at, status in (
        (START - timedelta(minutes=30), "Reachable"),
        (t(10, 10), "Unreachable"),
        (t(10, 11), "Reachable"),
    ):
        await db.execute(
            "INSERT INTO trunk_observations (server, trunk, at, source, status) VALUES ('pbx1', 'trunk-a', $1, "
            "'peer', $2)",
            at,
            status,
        )


async def run_cli(*args: str) -> tuple[int, str]:
    """The real console entry point (it runs its own event loop: in a thread)."""
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with redirect_stdout(out):
            code = await asyncio.to_thread(cli.main, list(args))
    finally:  # cli.main points logging at this test's stderr: give the next test its own
        root.handlers[:], root.level = handlers, level
    return code, out.getvalue()


@pytest.fixture
async def loaded(db, cli_env):
    await apply_example(db)
    await store_calls(db)
    await store_trunk_a(db)
    return db


async def test_sla_json(loaded):
    code, text = await run_cli("sla", "--period", "2026-11", "--format", "json")
    assert code == 0
    report = json.loads(text)
    assert report["period"] == {"from": "2026-11-01T00:00:00+01:00", "to": "2026-12-01T00:00:00+01:00"}
    acme, bistro = report["tenants"]
    assert acme["tenant"] == "acme" and acme["tier"] == "tier3"
    # a1 a2 a3 b1 b2 c1 d1 u1 = 8 support calls; answered a1 a2 a3 u1; abandoned b1 b2 c1
    assert (acme["support_calls"], acme["answered"], acme["abandoned"]) == (8, 4, 3)
    # within 30 s: a1 (10), a2 (30), u1 (20); late: a3; abandoned after target: b2, c1
    assert acme["answered_within_target"] == 3
    assert acme["service_level"] == pytest.approx(3 / (4 + 2))
    assert acme["service_level_target"] == 0.9
    # 720 h month; 2 h maintenance; 1 h down → 717 h up of 718 h observed
    assert acme["availability"] == pytest.approx(717 / 718, abs=1e-6)
    assert acme["availability_target"] == 0.999
    assert {b["metric"]: (b["target"], b["actual"]) for b in acme["breaches"]} == {
        "service_level": (0.9, pytest.approx(0.5)),
        "availability": (0.999, pytest.approx(717 / 718, abs=1e-6)),
    }
    # tier3 credits: below 0.999 → 5 %, below 0.995 → 15 %: 0.998607 triggers 5 % only.
    # fee: 96000 * 30 / 365 = 7890.410958… → 7890.41; 5 % = 394.5205 → 394.52
    assert acme["credit"] == {"percent": 5.0, "amount": "394.52", "currency": "CZK"}
    # bistro: no trunks, no calls: nothing measured, no breach, no credit
    assert bistro["tenant"] == "bistro"
    assert (bistro["support_calls"], bistro["service_level"], bistro["availability"]) == (0, None, None)
    assert bistro["breaches"] == [] and bistro["credit"] == {"percent": 0.0, "amount": "0.00", "currency": "CZK"}
    required = {"tenant", "tier", "support_calls", "answered", "abandoned", "answered_within_target",
                "service_level", "service_level_target", "availability", "availability_target", "breaches",
                "credit"}  # fmt: skip
    assert required <= set(acme)


async def test_sla_tenant_filter_and_table(loaded):
    code, text = await run_cli("sla", "--period", "2026-11", "--tenant", "bistro", "--format", "json")
    assert code == 0 and [x["tenant"] for x in json.loads(text)["tenants"]] == ["bistro"]
    code, text = await run_cli("sla", "--period", "2026-11")
    assert code == 0 and "acme" in text and "50.00 %" in text
    code, text = await run_cli("sla", "--period", "2026-11", "--format", "csv")
    assert code == 0 and text.splitlines()[0].startswith("tenant,tier,calls")


async def test_sla_unknown_tenant_is_usage_error(loaded, capsys):
    code, _ = await run_cli("sla", "--period", "2026-11", "--tenant", "nobody")
    assert code == 2


async def test_outcome_view(loaded):
    rows = {r["uniqueid"]: (r["outcome"], r["wait_seconds"]) for r in await loaded.fetch(
        "SELECT uniqueid, outcome, wait_seconds FROM support_call_outcomes")}  # fmt: skip
    assert rows["a3"] == ("answered", 31)
    assert rows["b1"] == ("abandoned", 5)
    assert rows["c1"] == ("abandoned", 600)
    assert rows["d1"] == ("not-queued", None)
    assert rows["u1"] == ("answered", 20)
    assert await loaded.fetchval("SELECT count(*) FROM queue_events") == 23  # 3*4 + 2*3 + 2 + 1 + 2
