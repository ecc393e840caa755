"""The daemon's kept-days task (pbx_sla.features.trunk_days) on PostgreSQL: after a run every trunk's closed
UTC days of this and last month are kept (today never), a report then reads them without storing anything
and gives the figures of the direct replay; a late observation's deleted days are stored again by the next
run; a database whose default isolation is REPEATABLE READ still gets them (the task reads in READ COMMITTED).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import asyncpg
from test_trunk_days_store import PRAGUE, TRUNKS, direct, kept, m, seed

from pbx_sla.features import trunk_days as feature
from pbx_sla.reports.period import month_period

NOW = datetime(2026, 4, 10, 12, 30, tzinfo=UTC)  # seed() writes around 2026-02-27 .. 2026-03-13
FIRST, LAST = date(2026, 2, 28), date(2026, 4, 9)  # the day before March 1st .. yesterday


async def rows(db: asyncpg.Connection) -> list[tuple[str, str, date, datetime]]:
    return [
        tuple(r)
        for r in await db.fetch("SELECT server, trunk, day, computed_at FROM trunk_known_days ORDER BY 1, 2, 3")
    ]


def all_days() -> list[tuple[str, str, date]]:
    count = (LAST - FIRST).days + 1
    return [(s, t, FIRST + timedelta(days=n)) for s, t in TRUNKS for n in range(count)]


async def test_a_run_keeps_the_closed_days_and_the_reports_only_read_them(db, db_dsn):
    await seed(db, random.Random(1))
    result = await feature.run_once(db_dsn, now=NOW)
    assert [r[:3] for r in await rows(db)] == all_days()
    assert result == {"trunks": 3, "first_day": "2026-02-28", "last_day": "2026-04-09", "days_stored": 3 * 41}
    before = await rows(db)
    for period in (month_period(2026, 3, PRAGUE), month_period(2026, 4, PRAGUE)):
        assert await kept(db, period, NOW) == await direct(db, period)
    assert await rows(db) == before  # read, nothing stored again
    again = await feature.run_once(db_dsn, now=NOW)
    assert again["days_stored"] == 0 and await rows(db) == before
    # the next day: only that day is added, today still not
    await feature.run_once(db_dsn, now=NOW + timedelta(days=1))
    added = [r[:3] for r in await rows(db) if r not in before]
    assert added == [(s, t, date(2026, 4, 10)) for s, t in TRUNKS]


async def test_days_a_late_observation_deleted_are_stored_by_the_next_run(db, db_dsn):
    await seed(db, random.Random(2))
    await feature.run_once(db_dsn, now=NOW)
    before = await rows(db)
    await db.execute(
        """INSERT INTO trunk_observations (server, trunk, at, source, key, status)
           VALUES ('pbx1', 't-a', $1, 'contact', 'sip:a', 'Unreachable')""",
        m(4 * 24 * 60 + 30),
    )
    assert len(await rows(db)) < len(before)  # the trigger deleted t-a's days from March 5th on
    result = await feature.run_once(db_dsn, now=NOW)
    after = await rows(db)
    assert [r[:3] for r in after] == all_days()
    restored = [r[:3] for r in after if r not in before]
    assert restored == [("pbx1", "t-a", date(2026, 3, 5) + timedelta(days=n)) for n in range(36)]
    assert result["days_stored"] == 36
    period = month_period(2026, 3, PRAGUE)
    assert await kept(db, period, NOW) == await direct(db, period)
    assert await rows(db) == after


async def test_a_repeatable_read_default_still_gets_the_days(db, db_dsn):
    await seed(db, random.Random(3))
    name = await db.fetchval("SELECT current_database()")
    await db.execute(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'")
    await feature.run_once(db_dsn, now=NOW)
    assert [r[:3] for r in await rows(db)] == all_days()
