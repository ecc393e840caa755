"""Kept known trunk states (``trunk_known_days``, pbx_sla.store.trunk_days) on PostgreSQL.

The ``trunks`` report (days over by ``now`` read as kept, the rest replayed) must give exactly the summaries of
the direct replay of the whole period (:func:`load_timeline` + :func:`trunk_summary`, the code before the days
were kept), on random sessions, observations and maintenance windows, for report times before, inside and
after the period; and stay so after late observations, session changes and deletions (the triggers).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from pbx_sla.domain.trunks import Interval, trunk_summary
from pbx_sla.reports import trunks as report
from pbx_sla.reports.period import Period, month_period
from pbx_sla.store.trunks import load_timeline

PRAGUE = ZoneInfo("Europe/Prague")
T0 = datetime(2026, 3, 1, tzinfo=UTC)
STATUSES = {
    "contact": ["Reachable", "Unreachable", "Unknown", "Removed"],
    "peer": ["Reachable", "Unreachable"],
    "registration": ["Registered", "Rejected"],
    "endpoint": ["NoContacts"],
}
TRUNKS = [("pbx1", "t-a"), ("pbx1", "t-b"), ("pbx2", "t-c")]


def m(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


async def direct(conn: asyncpg.Connection, period: Period) -> list[tuple[str, str, object]]:
    bounds = Interval(period.start, period.end)
    return [
        (t.info.server, t.info.trunk, trunk_summary(bounds, t.sessions, t.observations, t.maintenance))
        for t in await load_timeline(conn, period)
    ]


async def kept(conn: asyncpg.Connection, period: Period, now: datetime) -> list[tuple[str, str, object]]:
    return [(r.server, r.trunk, r.summary) for r in await report.trunk_availability(conn, period, now=now)]


async def seed(conn: asyncpg.Connection, rnd: random.Random) -> None:
    await conn.execute("TRUNCATE tenant_trunks, trunks, ami_sessions, trunk_observations, maintenance_windows")
    await conn.executemany(
        "INSERT INTO trunks (server, name, availability_target, in_catalogue) VALUES ($1, $2, 0.999, true)", TRUNKS
    )
    sessions = []
    for server in ("pbx1", "pbx2"):
        at = rnd.randint(-3000, 600)
        for n in range(rnd.randint(1, 6)):
            login = m(at)
            end = at + rnd.randint(30, 3 * 24 * 60)
            resynced = None if rnd.random() < 0.15 else m(at + rnd.randint(0, 5))
            live = n > 2 and rnd.random() < 0.3
            sessions.append((server, f"{server}-{n}", login, resynced, m(end), None if live else m(end)))
            at = end + rnd.randint(-120, 600)  # sometimes overlapping the next one
    await conn.executemany(
        """INSERT INTO ami_sessions (server, session_id, login_at, resynced_at, last_seen_at, lost_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        sessions,
    )
    obs = set()
    for server, trunk in TRUNKS:
        for _ in range(rnd.randint(0, 60)):
            source = rnd.choice(list(STATUSES))
            key = rnd.choice(["sip:a", "sip:b"]) if source in ("contact", "registration") else ""
            at = m(rnd.randint(-3000, 12 * 24 * 60))
            obs.add((server, trunk, at, source, key, rnd.choice(STATUSES[source])))
            if rnd.random() < 0.2:  # another status of the same key at the same instant
                obs.add((server, trunk, at, source, key, rnd.choice(STATUSES[source])))
    await conn.executemany(
        "INSERT INTO trunk_observations (server, trunk, at, source, key, status) VALUES ($1, $2, $3, $4, $5, $6)",
        sorted(obs),
    )
    for _ in range(rnd.randint(0, 3)):
        a = m(rnd.randint(-100, 10 * 24 * 60))
        trunk = rnd.choice([None, "t-a", "t-c"])
        await conn.execute(
            "INSERT INTO maintenance_windows (server, trunk, during, reason) VALUES ($1, $2, tstzrange($3, $4), 'x')",
            None if trunk is None else ("pbx2" if trunk == "t-c" else "pbx1"),
            trunk,
            a,
            a + timedelta(minutes=rnd.randint(1, 900)),
        )


async def test_kept_days_equal_the_direct_replay_on_random_histories(db):
    rnd = random.Random(16)
    periods = [
        Period(m(0), m(10 * 24 * 60), PRAGUE),  # whole UTC days
        Period(datetime(2026, 3, 2, 23, tzinfo=UTC), datetime(2026, 3, 6, 23, tzinfo=UTC), PRAGUE),  # Prague days
        Period(m(37), m(5 * 24 * 60 + 13), PRAGUE),  # partial first and last days
    ]
    checked = 0
    for _ in range(12):
        await seed(db, rnd)
        for period in periods:
            want = await direct(db, period)
            for now in (m(-60), m(2 * 24 * 60 + 7), m(4 * 24 * 60), m(30 * 24 * 60)):
                assert await kept(db, period, now) == want, (period, now)
                checked += 1
            # what is kept now, read back (a second report recomputes nothing) gives the same
            before = await db.fetch("SELECT server, trunk, day, computed_at FROM trunk_known_days ORDER BY 1, 2, 3")
            assert await kept(db, period, m(30 * 24 * 60)) == want
            after = await db.fetch("SELECT server, trunk, day, computed_at FROM trunk_known_days ORDER BY 1, 2, 3")
            assert before == after and before
    assert checked == 12 * 3 * 4


async def test_late_changes_delete_the_days_they_change(db):
    rnd = random.Random(1705)
    period = Period(m(0), m(10 * 24 * 60), PRAGUE)
    later = m(60 * 24 * 60)
    for _ in range(6):
        await seed(db, rnd)
        assert await kept(db, period, later) == await direct(db, period)
        days = await db.fetchval("SELECT count(*) FROM trunk_known_days")
        assert days == len(TRUNKS) * 10
        # a late observation in the middle of the period: its trunk's days from then on go
        await db.execute(
            """INSERT INTO trunk_observations (server, trunk, at, source, key, status)
               VALUES ('pbx1', 't-a', $1, 'contact', 'sip:a', 'Unreachable')""",
            m(4 * 24 * 60 + 30),
        )
        gone = await db.fetch("SELECT day FROM trunk_known_days WHERE server = 'pbx1' AND trunk = 't-a' ORDER BY day")
        assert [r["day"] for r in gone] == [(m(0) + timedelta(days=d)).date() for d in range(4)]
        assert await kept(db, period, later) == await direct(db, period)
        # a session's end moved (the daemon pinged again), a resync time set, a session removed
        await db.execute("UPDATE ami_sessions SET last_seen_at = last_seen_at + interval '5 hours', "
                         "lost_at = lost_at + interval '5 hours' WHERE session_id = 'pbx1-1'")  # fmt: skip
        assert await kept(db, period, later) == await direct(db, period)
        await db.execute(
            "UPDATE ami_sessions SET resynced_at = login_at + interval '1 minute' WHERE session_id = 'pbx2-0'"
        )
        assert await kept(db, period, later) == await direct(db, period)
        await db.execute("DELETE FROM ami_sessions WHERE session_id = 'pbx2-1'")
        assert await kept(db, period, later) == await direct(db, period)
        await db.execute("DELETE FROM trunk_observations WHERE trunk = 't-b' AND at > $1", m(3 * 24 * 60))
        assert await kept(db, period, later) == await direct(db, period)
        # maintenance is applied at report time: changing it needs no kept day to change
        await db.execute("UPDATE maintenance_windows SET active = false")
        assert await kept(db, period, later) == await direct(db, period)


async def test_an_unchanged_ping_keeps_the_days(db):
    rnd = random.Random(3)
    await seed(db, rnd)
    period = month_period(2026, 3, PRAGUE)
    await kept(db, period, datetime(2026, 12, 1, tzinfo=UTC))
    days = await db.fetchval("SELECT count(*) FROM trunk_known_days")
    await db.execute("UPDATE ami_sessions SET last_seen_at = last_seen_at")  # nothing moved
    assert await db.fetchval("SELECT count(*) FROM trunk_known_days") == days


async def test_days_deleted_again_before_they_are_read_are_replayed(db, monkeypatch):
    """A change that deletes freshly stored days before they are read back: those trunks are replayed."""
    from pbx_sla.store import trunk_days

    async def stored_then_deleted(conn, infos, first, last):
        return {}  # nothing kept, nothing handed back

    monkeypatch.setattr(trunk_days, "_compute", stored_then_deleted)
    rnd = random.Random(7)
    for _ in range(4):
        await seed(db, rnd)
        period = Period(m(37), m(5 * 24 * 60 + 13), PRAGUE)
        assert await kept(db, period, m(3 * 24 * 60 + 5)) == await direct(db, period)
        assert await db.fetchval("SELECT count(*) FROM trunk_known_days") == 0


async def test_one_snapshot_transactions_replay_and_keep_nothing(db):
    """In a repeatable-read transaction (``statement close``) missing days are replayed, not stored: a change
    committed after its snapshot would never be deleted from them."""
    await seed(db, random.Random(11))
    period = Period(m(0), m(6 * 24 * 60), PRAGUE)
    want = await direct(db, period)
    async with db.transaction(isolation="repeatable_read"):
        assert await kept(db, period, m(30 * 24 * 60)) == want
        assert await db.fetchval("SELECT count(*) FROM trunk_known_days") == 0
    assert await kept(db, period, m(30 * 24 * 60)) == want
    assert await db.fetchval("SELECT count(*) FROM trunk_known_days") == len(TRUNKS) * 6


async def test_updates_moving_keys_and_truncates_delete_the_days_they_change(db):
    """The trigger paths the late-change test leaves out: an UPDATE of an observation (to an earlier time and to
    another trunk: both the old and the new trunk's days go), an UPDATE of a session's key, and TRUNCATE."""
    rnd = random.Random(1706)
    period = Period(m(0), m(10 * 24 * 60), PRAGUE)
    later = m(60 * 24 * 60)

    async def days_of(server: str, trunk: str) -> list[int]:
        rows = await db.fetch(
            "SELECT day FROM trunk_known_days WHERE server = $1 AND trunk = $2 ORDER BY day", server, trunk
        )
        return [(r["day"] - m(0).date()).days for r in rows]

    for _ in range(4):
        await seed(db, rnd)
        await db.execute(
            """INSERT INTO trunk_observations (server, trunk, at, source, key, status)
               VALUES ('pbx1', 't-a', $1, 'contact', 'sip:z', 'Reachable')""",
            m(6 * 24 * 60 + 1),
        )
        assert await kept(db, period, later) == await direct(db, period)
        assert await days_of("pbx1", "t-a") == list(range(10)) == await days_of("pbx1", "t-b")
        # moved to t-b and two days earlier: t-a from day 6 on (its old place), t-b from day 4 on (the new)
        await db.execute(
            """UPDATE trunk_observations SET trunk = 't-b', at = at - interval '2 days'
                WHERE server = 'pbx1' AND trunk = 't-a' AND key = 'sip:z'"""
        )
        assert await days_of("pbx1", "t-a") == list(range(6))
        assert await days_of("pbx1", "t-b") == list(range(4))
        assert await days_of("pbx2", "t-c") == list(range(10))
        assert await kept(db, period, later) == await direct(db, period)
        # a session renamed (its key changed): the old and the new key both count from its login on
        login = await db.fetchval("SELECT min(login_at) FROM ami_sessions WHERE server = 'pbx2'")
        await db.execute("UPDATE ami_sessions SET session_id = session_id || '-renamed' WHERE server = 'pbx2'")
        first = max(0, (login.date() - m(0).date()).days)
        assert await days_of("pbx2", "t-c") == list(range(first))
        assert await days_of("pbx1", "t-a") == list(range(10))
        assert await kept(db, period, later) == await direct(db, period)
        for table in ("trunk_observations", "ami_sessions"):
            assert await db.fetchval("SELECT count(*) FROM trunk_known_days") == len(TRUNKS) * 10
            await db.execute(f"TRUNCATE {table}")
            assert await db.fetchval("SELECT count(*) FROM trunk_known_days") == 0
            assert await kept(db, period, later) == await direct(db, period)
