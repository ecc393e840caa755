"""The kept support requests (sql/1720, ``support_figures``: what ``sla``, and so the dashboard, reads) against
the full derivation they replace (``support_history`` + ``tenant_reaction`` + ``tenant_support_hours`` over
each tenant's whole history), on PostgreSQL: hand-made and random facts, judged at many instants in and out of
order so that cuts are stored, moved on and ignored; late facts of every kind stored after the rows were kept
(support calls, queue events, callbacks, AGI-failure legs, a new queue member, deletes); catalogue changes (only the
tenants a revision changes are derived again); a REPEATABLE READ snapshot, which reads what is kept and stores nothing.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from test_requests_report import ACME, BISTRO, catalogue, leg, qev, store_facts, support_call, z

from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.reports import requests as reports
from pbx_sla.reports.period import Period, month_period
from pbx_sla.reports.requests import support_figures, support_history, tenant_reaction, tenant_support_hours
from pbx_sla.store import requests as store_requests
from pbx_sla.store import retention
from pbx_sla.store.calls import store_rows
from pbx_sla.store.catalogue import apply_catalogue, latest_revision, load_catalogue, revision_catalogue
from pbx_sla.store.support import QueueEventSink, SupportCallSink

PRAGUE = ZoneInfo("Europe/Prague")
TENANTS = ["acme", "bistro"]
DECEMBER = month_period(2026, 12, PRAGUE)
PERIODS = [DECEMBER, month_period(2026, 11, PRAGUE), Period(z(2, 0), z(5, 12), PRAGUE)]


async def full(db, period: Period, now: datetime, tenants: list[str], servers=None) -> dict:
    cat = await load_catalogue(db)
    history = await support_history(db, cat, now, tenants)
    return {
        t: (tenant_reaction(history, period, t, servers), tenant_support_hours(history, period, t)) for t in tenants
    }


async def fast(db, period: Period, now: datetime, tenants: list[str], servers=None) -> dict:
    cat = await load_catalogue(db)
    revision = await latest_revision(db)
    support = await support_figures(db, cat, revision.id, now, tenants, period, servers)
    return {t: (support.reaction(t), tenant_support_hours(support, period, t)) for t in tenants}


async def kept_requests(db) -> int:
    return await db.fetchval("SELECT count(*) FROM support_kept_requests")


async def same(db, now: datetime, periods=PERIODS, servers_list=(None, ["pbx1"], ["pbx2"])) -> None:
    for period in periods:
        for tenants in (TENANTS, ["acme"]):
            for servers in servers_list:
                want = await full(db, period, now, tenants, servers)
                assert await fast(db, period, now, tenants, servers) == want, (now, period, tenants, servers)


@pytest.fixture
def short_margins(monkeypatch):
    """Cuts an hour before ``now``, moved on when two hours older: a test's few days see many of them."""
    monkeypatch.setattr(reports, "KEEP_MARGIN", timedelta(hours=1))
    monkeypatch.setattr(reports, "REFRESH_AFTER", timedelta(hours=2))


@pytest.fixture
async def catalogued(db, cli_env):
    await apply_catalogue(db, parse_catalogue(catalogue(), "contracts.toml"), "contracts.toml")
    return db


async def test_hand_made_facts_at_many_instants(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    nows = [z(7, 12), z(1, 9), z(2, 9, 0, 10), z(2, 12, 30), z(3, 9), z(5, 12), z(7, 12), z(28, 0), z(3, 9), z(28, 0)]
    seen = 0
    for now in nows:
        await same(db, now)
        seen = max(seen, await kept_requests(db))
    assert seen >= 3  # acme's first three requests were kept (reacted by 2 Dec 14:00)
    cut = await db.fetchval("SELECT cut FROM support_kept_tenants WHERE tenant_id = 'acme'")
    assert cut == z(3, 8)  # ... and its cut stops at its unreacted 3 Dec request, derived at each report


async def test_random_calls_and_callbacks(catalogued, short_margins):
    db = catalogued
    rnd = random.Random(1720)
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
            events.append(qev(uid, "AgentComplete", answer + timedelta(seconds=90), talk_time=rnd.randint(1, 900)))
        else:
            events.append(qev(uid, "QueueCallerAbandon", at + timedelta(seconds=30), hold_time=29))
            if kind < 0.75:
                cb = at + timedelta(minutes=rnd.randint(10, 3 * 24 * 60))
                legs.append(leg(f"cb{n}", "agent1", number.replace("+420", ""), cb, rnd.choice([10, 120])))
    await SupportCallSink().write(db, calls)
    await QueueEventSink().write(db, events)
    await store_rows(db, legs, "ami")
    nows = [z(1, 0) + timedelta(hours=h) for h in range(0, 8 * 24, 11)]
    seen = 0
    for now in nows + nows[::-3]:
        await same(db, now, [DECEMBER, Period(z(3, 0), z(4, 0), PRAGUE)], (None, ["pbx2"]))
        seen = max(seen, await kept_requests(db))
    assert seen > 20


async def test_late_facts_delete_what_they_reach(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    # agent3 called acme on 3 Dec (not staff yet: no callback)
    await store_rows(db, [leg("cb7", "agent3", "777000001", z(3, 9, 30), 300)], "ami")
    now = z(28, 0)

    async def kept_after(at: datetime) -> int:
        return await db.fetchval("SELECT count(*) FROM support_kept_tenants WHERE cut > $1", at)

    async def kept() -> set[str]:
        return {r["tenant_id"] for r in await db.fetch("SELECT tenant_id FROM support_kept_tenants")}

    await same(db, now)
    assert await kept_after(z(1, 0)) == 2
    # a late support call of acme on 2 Dec, before acme's cut (its open 3 Dec request), abandoned: acme's rows
    # go, bistro's (its cut is later too) stay
    await SupportCallSink().write(db, [support_call("late1", z(2, 20), "acme", ACME)])
    assert await kept() == {"bistro"}
    await same(db, now)
    assert await db.fetchval("SELECT cut FROM support_kept_tenants WHERE tenant_id = 'acme'") == z(2, 20)
    # its outcome: the call opened the request open at acme's cut, read after the cut: nothing kept changes
    await QueueEventSink().write(db, [qev("late1", "QueueCallerAbandon", z(2, 20, 1), hold_time=60)])
    assert await kept() == {"acme", "bistro"}
    await same(db, now)
    # an answer of the 3 Dec call, after acme's cut: nothing kept changes
    await QueueEventSink().write(db, [qev("a4", "AgentConnect", z(3, 8, 3), hold_time=180)])
    assert await kept() == {"acme", "bistro"}
    await same(db, now)
    # a late run of bistro on acme's answered 2 Dec channel, before acme's run: the channel is bistro's now
    await SupportCallSink().write(db, [{**support_call("a3", z(2, 8, 59), "bistro", BISTRO)}])
    assert await kept() == set()
    await same(db, now)
    # a late callback to bistro
    await store_rows(db, [leg("cb8", "agent1", "603000003", z(6, 9), 200)], "ami")
    assert await kept_after(z(6, 9)) == 0
    await same(db, now)
    # a late AGI failure: acme's number on the support line on 5 Dec, no support-call record
    await store_rows(
        db,
        [leg("f2", "anonymous", "+420221000111", z(5, 10), 40, app="Queue", dstchannel="", src=ACME,
             dcontext="support-line")],
        "ami",
    )  # fmt: skip
    assert await kept_after(z(5, 10)) == 0
    await same(db, now)
    # ... and a queue event of that channel
    await QueueEventSink().write(db, [qev("f2", "QueueCallerAbandon", z(5, 10, 1), hold_time=40)])
    await same(db, now)
    # agent3 answers a queue call on 20 Dec: a queue member, so its 3 Dec call to acme is a callback
    await store_rows(
        db, [leg("q9", "trunk-a", "+420221000111", z(20, 9), 60, app="Queue", dstchannel="PJSIP/agent3-0001")], "ami"
    )
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") == 0
    await same(db, now)
    # deleting a support call (retention, hand edits) deletes everything kept
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") > 0
    await db.execute("DELETE FROM support_calls WHERE uniqueid = 'a2'")
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") == 0
    await same(db, now)
    # a support-call update in a column requests do not read keeps them; one they read does not
    await db.execute("UPDATE support_calls SET caller_name = 'x' WHERE uniqueid = 'a1'")
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") > 0
    await db.execute("UPDATE support_calls SET reason = 'pin-ok' WHERE uniqueid = 'a1'")
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") == 0
    await same(db, now)


async def test_a_fact_after_the_cut_keeps_the_rows(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    now = z(7, 12)
    await same(db, now)
    cuts = dict(await db.fetch("SELECT tenant_id, cut FROM support_kept_tenants"))
    assert cuts and max(cuts.values()) <= now - timedelta(hours=1)
    await SupportCallSink().write(db, [support_call("new1", now - timedelta(minutes=5), "bistro", BISTRO)])
    await QueueEventSink().write(db, [qev("new1", "QueueCallerAbandon", now - timedelta(minutes=4), hold_time=60)])
    assert dict(await db.fetch("SELECT tenant_id, cut FROM support_kept_tenants")) == cuts
    await same(db, now)


async def kept_rows(db) -> dict[str, tuple[int, datetime]]:
    """Per kept tenant: the revision its rows were stored under and when they were stored."""
    rows = await db.fetch("SELECT tenant_id, revision_id, computed_at FROM support_kept_tenants")
    return {r["tenant_id"]: (r["revision_id"], r["computed_at"]) for r in rows}


async def revise(db, data: dict) -> None:
    await apply_catalogue(db, parse_catalogue(data, "contracts.toml"), "contracts.toml")


async def test_a_new_catalogue_revision_derives_the_tenants_it_changes(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    now = z(28, 0)
    await same(db, now)
    first = await kept_rows(db)
    assert set(first) == {"acme", "bistro"} and {r for r, _ in first.values()} == {1}
    data = catalogue()
    data["tiers"]["tier3"] |= {"reaction_target": "30m"}  # acme's requests are judged again
    await revise(db, data)
    before = await full(db, DECEMBER, now, TENANTS)
    await same(db, now)
    after = await kept_rows(db)
    assert after["acme"][0] == 2 and after["acme"][1] > first["acme"][1]
    assert after["bistro"] == first["bistro"]  # tier1's tenant: its rows as stored under revision 1
    reaction = (await fast(db, DECEMBER, now, ["acme"]))["acme"][0]
    assert reaction == before["acme"][0] and reaction.breached == 2  # the answer after 20 s still met 30 min


async def test_a_revision_of_one_tenants_requesters_derives_that_tenant(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    # agent1 called a number of bistro's Karel on Monday 7 Dec 9:15 Prague, an hour before the staff phone's
    # callback: not a requester's number yet, so no callback
    await store_rows(db, [leg("cb9", "agent1", "603000099", z(7, 8, 15), 90)], "ami")
    now = z(28, 0)
    await same(db, now)
    first = await kept_rows(db)
    unchanged = (await fast(db, DECEMBER, now, ["bistro"]))["bistro"]
    data = catalogue()
    karel = next(t for t in data["tenants"] if t["id"] == "bistro")["requesters"][0]
    karel["phones"] = [*karel["phones"], "+420603000099"]
    await revise(db, data)
    await same(db, now)
    after = await kept_rows(db)
    assert after["acme"] == first["acme"]
    assert after["bistro"][0] == 2 and after["bistro"][1] > first["bistro"][1]
    # the kept rows of revision 1 would still give the old reaction: agent1's call reacts an hour earlier now
    reaction = (await fast(db, DECEMBER, now, ["bistro"]))["bistro"][0]
    assert reaction != unchanged[0] and reaction == (await full(db, DECEMBER, now, ["bistro"]))["bistro"][0]


async def test_a_revision_of_what_no_derivation_reads_keeps_every_tenant(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    now = z(28, 0)
    await same(db, now)
    first = await kept_rows(db)
    data = catalogue()
    next(t for t in data["tenants"] if t["id"] == "acme")["name"] = "ACME a.s."
    data["tiers"]["tier1"]["price_per_year"] = 99999
    await revise(db, data)
    assert await db.fetchval("SELECT max(id) FROM catalogue_revisions") == 2
    await same(db, now)
    assert await kept_rows(db) == first


async def test_a_revision_of_the_support_staff_derives_every_tenant(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    now = z(28, 0)
    await same(db, now)
    first = await kept_rows(db)
    data = catalogue()
    data["support"]["staff"] = ["agent1"]  # the staff phone's callback to bistro is none any more
    await revise(db, data)
    await same(db, now)
    after = await kept_rows(db)
    assert {t: r for t, (r, _) in after.items()} == {"acme": 2, "bistro": 2}
    assert all(after[t][1] > first[t][1] for t in first)


async def test_a_repeatable_read_snapshot_stores_nothing(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    now = datetime(2026, 12, 28, tzinfo=UTC)
    async with db.transaction(isolation="repeatable_read"):
        want = await full(db, DECEMBER, now, TENANTS)
        assert await fast(db, DECEMBER, now, TENANTS) == want
        assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") == 0
    await same(db, now)
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") == 2
    async with db.transaction(isolation="repeatable_read"):  # reads the kept rows
        assert await fast(db, DECEMBER, now, TENANTS) == want


async def test_dropping_a_history_partition_forgets_what_is_kept(catalogued, short_margins):
    db = catalogued
    await store_facts(db)
    await same(db, z(28, 0))
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") == 2
    name = await db.fetchval(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'queue_events'::regclass AND c.relname <> 'queue_events_default' ORDER BY 1 LIMIT 1"
    )
    assert name is not None
    # retention drops whole months (no statement trigger sees their rows go)
    await retention._drop(db, "queue_events", {"name": name, "lo": z(1, 0), "hi": z(1, 0)}, dry_run=False)
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants") == 0
    await same(db, z(28, 0))


async def test_a_channel_run_for_two_tenants_is_the_first_runs(catalogued, short_margins):
    """A caller sent back to the support line and identified as another tenant: one contact, the first run's,
    also when that run is before its tenant's cut and the other run after the other tenant's cut."""
    db = catalogued
    await store_facts(db)
    # bistro's request of 20 Dec stays open: its cut stays there; acme's (answered) run of the channel is
    # before acme's cut (its unreacted 3 Dec request), bistro's run after bistro's
    await SupportCallSink().write(db, [support_call("b9", z(20, 9), "bistro", BISTRO)])
    await QueueEventSink().write(db, [qev("b9", "QueueCallerAbandon", z(20, 9, 1), hold_time=60)])
    twice = [support_call("mx", z(2, 15), "acme", ACME), support_call("mx", z(26, 9), "bistro", BISTRO)]
    await SupportCallSink().write(db, twice)
    await QueueEventSink().write(db, [qev("mx", "AgentConnect", z(2, 15, 0, 30), hold_time=30)])
    for now in (z(28, 0), z(28, 0), z(30, 12)):
        await same(db, now)
        cuts = dict(await db.fetch("SELECT tenant_id, cut FROM support_kept_tenants"))
        assert cuts["bistro"] == z(20, 9) < z(26, 9) and cuts["acme"] == z(3, 8) > z(2, 15)


async def test_a_staff_leg_started_before_a_cut_and_answered_after_it(catalogued, short_margins):
    """Reports after a cut read staff legs from the earliest start of one answered after the cut: a leg that
    rang for days before its answer (kept in legs_from) is still read, and one stored later deletes the rows."""
    db = catalogued
    await store_facts(db)
    await SupportCallSink().write(db, [support_call("b9", z(27, 9), "bistro", BISTRO)])
    long_ring = leg("cb9", "agent1", "603000003", z(27, 23, 30), 120)._replace(start=int(z(20, 9).timestamp()))
    await store_rows(db, [long_ring], "ami")
    for now in (z(28, 0), z(28, 0)):  # the cut, then a report reading from it
        await same(db, now, [DECEMBER])
        kept = await db.fetchrow("SELECT cut, legs_from FROM support_kept_tenants WHERE tenant_id = 'bistro'")
        assert kept["cut"] == z(27, 9) and kept["legs_from"] == z(20, 9)
    late = leg("cb10", "agent1", "603000003", z(27, 23, 40), 60)._replace(start=int(z(19, 9).timestamp()))
    await store_rows(db, [late], "ami")
    assert await db.fetchval("SELECT count(*) FROM support_kept_tenants WHERE cut > $1", z(19, 9)) == 0
    await same(db, z(28, 0), [DECEMBER])


async def test_the_catalogue_is_parsed_once_per_revision(catalogued):
    db = catalogued
    first = await revision_catalogue(db)
    assert first is not None and first[1] == await load_catalogue(db)
    again = await revision_catalogue(db)
    assert again is not None and again[1] is first[1]  # the parse of the same revision, not a new one
    data = catalogue()
    data["tiers"]["tier3"] |= {"reaction_target": "30m"}
    await apply_catalogue(db, parse_catalogue(data, "contracts.toml"), "contracts.toml")
    new = await revision_catalogue(db)
    assert new is not None and new[0] > first[0] and new[1] == await load_catalogue(db)
    assert new[1].tiers["tier3"].reaction_target == 1800 != first[1].tiers["tier3"].reaction_target


async def test_a_request_still_open_is_tried_again_once_a_day(catalogued, short_margins):
    """acme's 3 Dec request is never reacted: its cut stays there, and reports try to move it on only once
    REFRESH_AFTER (2 hours here) has passed since the last try, not on every report."""
    db = catalogued
    await store_facts(db)

    async def kept() -> tuple:
        return tuple(await db.fetchrow("SELECT cut, checked FROM support_kept_tenants WHERE tenant_id = 'acme'"))

    await same(db, z(28, 0))
    assert await kept() == (z(3, 8), z(28, 0))
    await same(db, z(28, 1))
    assert await kept() == (z(3, 8), z(28, 0))
    await same(db, z(28, 3))
    assert await kept() == (z(3, 8), z(28, 3))


@pytest.mark.parametrize("whole", [0, 50])
async def test_channels_read_in_one_pass_or_by_index(catalogued, short_margins, monkeypatch, whole):
    """contact_facts_from reads every channel in one pass for many tenants read whole, else the channels of
    their runs by index: the same contacts (a late earlier run of another tenant on a channel included)."""
    db = catalogued
    monkeypatch.setattr(store_requests, "WHOLE_CHANNELS", whole)
    await store_facts(db)
    await SupportCallSink().write(db, [support_call("a3", z(2, 8, 59), "bistro", BISTRO)])
    for now in (z(28, 0), z(3, 9)):
        await db.execute("DELETE FROM support_kept_tenants")
        await same(db, now)
