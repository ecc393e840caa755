"""The request gauges (``unreacted_by_tenant``, bounded to recent facts) against the full derivation they
replaced (``support_history(...).unreacted()`` counted per tenant), on PostgreSQL: the hand-made facts of
test_requests_report and random support calls, queue outcomes and callbacks, at many instants and with
windows short enough that every stage (short window, long window, whole history) decides some tenants.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from test_requests_report import ACME, BISTRO, catalogue, leg, qev, store_facts, support_call, z

from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.reports import requests as reports
from pbx_sla.reports.requests import Unreacted, support_history, unreacted_by_tenant
from pbx_sla.store.calls import store_rows
from pbx_sla.store.catalogue import apply_catalogue, load_catalogue
from pbx_sla.store.support import QueueEventSink, SupportCallSink

WINDOWS = [(timedelta(hours=1), timedelta(days=1)), (timedelta(days=2),), reports.GAUGE_WINDOWS, ()]


async def full_derivation(db, now) -> dict[str, Unreacted]:
    """The gauges as computed before they were bounded: every request of the whole history."""
    cat = await load_catalogue(db)
    assert cat is not None
    counts = {t: [0, 0] for t in cat.tenants}
    for a in (await support_history(db, cat, now)).unreacted():
        counts[a.request.tenant][0] += 1
        counts[a.request.tenant][1] += a.status == "overdue"
    return {t: Unreacted(n, o) for t, (n, o) in counts.items()}


async def compare(db, monkeypatch, nows) -> int:
    nonzero = 0
    for now in nows:
        want = await full_derivation(db, now)
        nonzero += sum(1 for u in want.values() if u.open)
        for windows in WINDOWS:
            monkeypatch.setattr(reports, "GAUGE_WINDOWS", windows)
            assert await unreacted_by_tenant(db, now) == want, (now, windows)
    return nonzero


@pytest.fixture
async def catalogued(db, cli_env):
    await apply_catalogue(db, parse_catalogue(catalogue(), "contracts.toml"), "contracts.toml")
    return db


async def test_hand_made_facts(catalogued, monkeypatch):
    await store_facts(catalogued)
    nows = [z(1, 9), z(1, 10, 45), z(1, 16), z(2, 9, 0, 10), z(2, 12, 30), z(3, 9), z(5, 12), z(7, 12), z(28, 0)]
    assert await compare(catalogued, monkeypatch, nows) > 0


async def test_random_calls_and_callbacks(catalogued, monkeypatch):
    rnd = random.Random(16)
    calls, events, legs = [], [], []
    for n in range(150):
        tenant, number = rnd.choice([("acme", ACME), ("bistro", BISTRO)])
        at = z(1, 0) + timedelta(minutes=rnd.randint(0, 6 * 24 * 60))
        uid = f"r{n}"
        calls.append(support_call(uid, at, tenant, number))
        kind = rnd.random()
        events.append(qev(uid, "QueueCallerJoin", at + timedelta(seconds=1)))
        if kind < 0.5:
            answer = at + timedelta(seconds=rnd.randint(2, 8 * 3600))  # sometimes after the next call arrived
            events.append(qev(uid, "AgentConnect", answer, hold_time=1))
        else:
            events.append(qev(uid, "QueueCallerAbandon", at + timedelta(seconds=30), hold_time=29))
            if kind < 0.75:
                cb = at + timedelta(minutes=rnd.randint(10, 3 * 24 * 60))
                legs.append(leg(f"cb{n}", "agent1", number.replace("+420", ""), cb, rnd.choice([10, 120])))
    await SupportCallSink().write(catalogued, calls)
    await QueueEventSink().write(catalogued, events)
    await store_rows(catalogued, legs, "ami")
    nows = [z(1, 0) + timedelta(hours=h) for h in range(0, 8 * 24, 7)]
    assert await compare(catalogued, monkeypatch, nows) > 0
