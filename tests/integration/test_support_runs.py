"""Several AGI runs per support call (issue 12 item 7): every run is recorded with its own decision and
outcome, and the `sla` report counts the call once. Expected figures worked out by hand in the comments.
Before the fix the second run on a channel was dropped (first (server, uniqueid) won) and runs on two
channels of one call counted as two calls."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from test_sla_report import apply_example, call, qev, run_cli, t

from pbx_sla.store.support import QueueEventSink, SupportCallSink


def run(uid: str, at, linkedid: str, **changes) -> dict:
    return {**call(uid, at), "linkedid": linkedid, **changes}


@pytest.fixture
async def runs(db, cli_env):
    await apply_example(db)
    m1a = t(12, 9)  # unknown caller, wrong PIN: general queue, which gives up after 60 s ...
    m1b = t(12, 9, 1, 5)  # ... and sends the caller back to the support line: right PIN, premium queue
    calls = [
        run("m1", m1a, "m1", action="general", reason="pin-failed", authorised=False, tier=None, queue=None,
            requester=None),
        run("m1", m1b, "m1", reason="pin-ok"),
        # one call, two channels: answered on the first, transferred to a new channel that runs the AGI again
        run("m2a", t(13, 9), "m2"),
        run("m2b", t(13, 9, 5), "m2"),
    ]  # fmt: skip
    events = [
        qev("m1", "QueueCallerJoin", m1a + timedelta(seconds=1), queue="general"),
        qev("m1", "QueueCallerLeave", m1a + timedelta(seconds=61), queue="general"),
        qev("m1", "QueueCallerJoin", m1b + timedelta(seconds=1)),
        qev("m1", "AgentConnect", m1b + timedelta(seconds=21), hold_time=20),
        qev("m2a", "QueueCallerJoin", t(13, 9, 0, 1)),
        qev("m2a", "AgentConnect", t(13, 9, 0, 11), hold_time=10),
        qev("m2b", "QueueCallerJoin", t(13, 9, 5, 1)),
        qev("m2b", "AgentConnect", t(13, 9, 5, 41), hold_time=40),
    ]
    for _ in range(2):  # the second time is a replay: nothing changes
        await SupportCallSink().write(db, calls)
        await QueueEventSink().write(db, events)
    return db


async def test_every_run_is_recorded_with_its_own_outcome(runs):
    query = "SELECT uniqueid, reason, outcome, wait_seconds, queue FROM support_call_runs ORDER BY decided_at"
    rows = [tuple(r) for r in await runs.fetch(query)]
    assert rows == [
        ("m1", "pin-failed", "abandoned", 60.0, "general"),  # the queue gave up: leave - join
        ("m1", "pin-ok", "answered", 20.0, "support-premium"),  # its own join and connect only
        ("m2a", "authorised-number", "answered", 10.0, "support-premium"),
        ("m2b", "authorised-number", "answered", 40.0, "support-premium"),
    ]


async def test_a_call_is_counted_once_by_linkedid(runs):
    rows = [tuple(r) for r in await runs.fetch(
        "SELECT linkedid, runs, outcome, wait_seconds, reason, queue, decided_at FROM support_call_outcomes "
        "ORDER BY linkedid")]  # fmt: skip
    assert rows == [
        # answered on its second run; the caller waited 60 s in the general queue, then 20 s: 80 s
        ("m1", 2, "answered", 80.0, "pin-ok", "support-premium", t(12, 9)),
        # answered on its first run after 10 s; what happened after the transfer is not a second call
        ("m2", 2, "answered", 10.0, "authorised-number", "support-premium", t(13, 9)),
    ]


async def test_sla_report_counts_calls_not_runs(runs):
    code, text = await run_cli("sla", "--period", "2026-11", "--tenant", "acme", "--format", "json")
    assert code == 0
    [acme] = json.loads(text)["tenants"]
    # 2 calls (4 runs); both answered; within tier3's 30 s: m2 (10 s), not m1 (80 s)
    assert (acme["support_calls"], acme["answered"], acme["abandoned"], acme["answered_within_target"]) == (
        2, 2, 0, 1)  # fmt: skip
    assert acme["service_level"] == pytest.approx(0.5)
