"""The call definitions as stored (the real path: legs read by ``read_leg``, stored by ``cdr_store_stage``):
one call per linkedid, best disposition, first leg's day, attribution order, direction from the catalogue's
trunks. Expected figures are written out by hand from the definitions in docs/calls.md."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import asyncpg
from test_cdr_import import seed_catalogue

from pbx_sla.domain.cdr import LocalClock, read_leg
from pbx_sla.store.calls import CdrLegSink

PRAGUE = ZoneInfo("Europe/Prague")


def row(start, end, disp="ANSWERED", billsec=10, acct="", src="100", dst="200", uid="1.1", linked="1.1", seq=1,
        chan="PJSIP/phone-00000001", dchan="PJSIP/agent-00000002", answer=None):  # fmt: skip
    duration = billsec + 2
    return [acct, src, dst, "ctx", f'"x" <{src}>', chan, dchan, "Dial", "", start,
            answer if answer is not None else (start if disp == "ANSWERED" else ""), end, str(duration),
            str(billsec), disp, "DOCUMENTATION", uid, "", "", linked, str(seq)]  # fmt: skip


async def store(db: asyncpg.Connection, *rows: list[str]) -> dict[str, asyncpg.Record]:
    """Store the rows as the daemon does (one transaction) and return the calls by key."""
    clock = LocalClock(PRAGUE)
    async with db.transaction():
        await CdrLegSink("ami").write_legs(db, [read_leg("pbx1", r, clock) for r in rows])
    return {r["call_key"]: r for r in await db.fetch("SELECT * FROM calls")}


async def test_multi_leg_call_counts_once_with_best_disposition_and_first_day(db):
    await seed_catalogue(db)
    calls = await store(
        db,
        row("2026-03-10 23:59:58", "2026-03-11 00:00:10", "NO ANSWER", 0, uid="5.1", linked="5.1", seq=1),
        row("2026-03-11 00:00:10", "2026-03-11 00:00:12", "BUSY", 0, uid="5.1", linked="5.1", seq=2),
        row("2026-03-11 00:00:12", "2026-03-11 00:01:12", "ANSWERED", 60, uid="5.2", linked="5.1", seq=3),
    )
    (call,) = calls.values()
    assert call["call_key"] == "5.1" and call["legs"] == 3
    assert call["disposition"] == "ANSWERED"
    assert call["billsec"] == 60
    assert call["day"] == date(2026, 3, 10)  # the first leg started before local midnight


async def test_disposition_ranking(db):
    await seed_catalogue(db)
    cases = [
        (["FAILED", "CONGESTION"], "FAILED"),
        (["CONGESTION", "NO ANSWER"], "NO ANSWER"),
        (["NO ANSWER", "BUSY"], "BUSY"),
        (["CONGESTION"], "CONGESTION"),
    ]
    rows = [
        row(f"2026-03-10 10:00:0{j}", "2026-03-10 10:00:09", d, 0, uid=f"{i}.{j}", linked=f"{i}.0", seq=j)
        for i, (disps, _) in enumerate(cases)
        for j, d in enumerate(disps)
    ]
    calls = await store(db, *rows)
    assert {k: c["disposition"] for k, c in calls.items()} == {f"{i}.0": best for i, (_, best) in enumerate(cases)}


async def test_call_without_linkedid_groups_by_uniqueid_and_same_leg_twice_counts_once(db):
    await seed_catalogue(db)
    a = row("2026-03-10 10:00:00", "2026-03-10 10:01:00", uid="9.1", linked="")
    calls = await store(db, a, a, row("2026-03-10 11:00:00", "2026-03-10 11:01:00", uid="9.2", linked=""))
    assert sorted(calls) == ["9.1", "9.2"]
    assert calls["9.1"]["legs"] == 1


async def test_attribution_accountcode_then_did_then_requester(db):
    await seed_catalogue(db)
    by_acct = row("2026-03-10 10:00:00", "2026-03-10 10:01:00", acct="bistro", src="777000001", dst="221000111")
    by_did = row("2026-03-10 10:00:00", "2026-03-10 10:01:00", acct="nobody", src="777000001", dst="221000222",
                 uid="2.1", linked="2.1")  # fmt: skip
    by_phone = row("2026-03-10 10:00:00", "2026-03-10 10:01:00", src="+420 603 000 003", dst="s", uid="3.1",
                   linked="3.1")  # fmt: skip
    nobody = row("2026-03-10 10:00:00", "2026-03-10 10:01:00", src="anonymous", dst="s", uid="4.1", linked="4.1")
    calls = await store(db, by_acct, by_did, by_phone, nobody)
    got = {k: (c["tenant_id"], c["attributed_by"]) for k, c in calls.items()}
    assert got == {
        "1.1": ("bistro", "accountcode"),
        "2.1": ("bistro", "did"),
        "3.1": ("bistro", "requester"),
        "4.1": (None, None),
    }
    assert calls["3.1"]["caller_e164"] == "+420603000003"


async def test_accountcode_on_a_later_leg_still_attributes(db):
    await seed_catalogue(db)
    calls = await store(
        db,
        row("2026-03-10 10:00:00", "2026-03-10 10:00:05", "NO ANSWER", 0, dst="221000222", seq=1),
        row("2026-03-10 10:00:05", "2026-03-10 10:01:00", acct="acme", uid="1.2", seq=2),
    )
    assert (calls["1.1"]["tenant_id"], calls["1.1"]["attributed_by"]) == ("acme", "accountcode")


async def test_direction_from_a_catalogue_trunk(db):
    await seed_catalogue(db)  # trunk-a is the catalogue's trunk of pbx1
    calls = await store(db, row("2026-03-10 10:00:00", "2026-03-10 10:01:00", chan="PJSIP/trunk-a-0000001"))
    assert (calls["1.1"]["direction"], calls["1.1"]["trunk"]) == ("inbound", "trunk-a")
