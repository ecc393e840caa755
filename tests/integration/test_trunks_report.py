"""Trunk observations stored in PostgreSQL → the ``trunks`` report and ``status`` trunk states.

Fixture day (catalogue zone Europe/Prague, report ``--from 2026-11-02 --to 2026-11-03`` =
2026-11-01T23:00Z .. 2026-11-02T23:00Z, 86 400 s). Expected figures are worked out by hand in comments.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pbx_sla import cli
from pbx_sla.domain.trunks import combine
from pbx_sla.reports import trunks as report
from pbx_sla.reports.period import Period, month_period
from pbx_sla.store.trunks import TrunkObservationSink, current_states, observation_record_data

PRAGUE = ZoneInfo("Europe/Prague")
DAY = Period(datetime(2026, 11, 1, 23, tzinfo=UTC), datetime(2026, 11, 2, 23, tzinfo=UTC), PRAGUE)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def o(trunk: str, at: str, status: str, source: str = "contact", key: str | None = None, rtt: int | None = None):
    return observation_record_data(
        server="pbx1",
        trunk=trunk,
        at=z(at),
        source=source,
        key=key if key is not None else (f"sip:{trunk}@127.0.0.1" if source == "contact" else ""),
        status=status,
        rtt_usec=rtt,
    )


OBSERVATIONS = [
    # session 1 (login 2026-11-01 20:00, resynced 20:00:05, lost 2026-11-02 10:00)
    o("trunk-a", "2026-11-01 20:00:01", "Reachable", rtt=900),
    o("trunk-b", "2026-11-01 20:00:01", "Reachable"),
    o("trunk-b", "2026-11-01 21:00:00", "Unreachable"),
    o("trunk-b", "2026-11-01 21:30:00", "Reachable"),
    o("staff", "2026-11-01 20:00:01", "NoContacts", source="endpoint"),
    o("trunk-a", "2026-11-02 08:00:00", "Unreachable"),
    o("trunk-a", "2026-11-02 08:30:00", "Reachable", rtt=1000),
    # session 2 (login 11:00, resynced 11:00:02, live, last seen 2026-11-02 23:30)
    o("trunk-a", "2026-11-02 11:00:01", "Reachable", rtt=1100),
    o("trunk-b", "2026-11-02 11:00:01", "Reachable", rtt=2500),
    o("agent1", "2026-11-02 11:00:01", "Reachable"),
    o("trunk-a", "2026-11-02 15:00:00", "Unreachable"),
    o("trunk-a", "2026-11-02 15:10:00", "Reachable", rtt=1200),
]


async def seed(db) -> None:
    await db.execute("INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420')")
    await db.execute(
        """INSERT INTO trunks (server, name, availability_target, in_catalogue, first_seen) VALUES
           ('pbx1', 'trunk-a', 0.999, true, '2026-11-20T00:00Z'),
           ('pbx1', 'trunk-b', NULL, true, '2026-11-20T00:00Z')"""
    )
    await db.execute(
        """INSERT INTO ami_sessions (server, session_id, login_at, resynced_at, last_seen_at, lost_at, lost_reason)
           VALUES ('pbx1', 's1', '2026-11-01T20:00Z', '2026-11-01T20:00:05Z', '2026-11-02T09:59:50Z',
                   '2026-11-02T10:00Z', 'connection-lost'),
                  ('pbx1', 's2', '2026-11-02T11:00Z', '2026-11-02T11:00:02Z', '2026-11-02T23:30Z', NULL, NULL)"""
    )
    await db.execute(
        """INSERT INTO maintenance_windows (server, trunk, during, reason) VALUES
           ('pbx1', 'trunk-a', tstzrange('2026-11-02T15:05Z', '2026-11-02T15:20Z'), 'carrier'),
           ('pbx1', 'trunk-b', tstzrange('2026-10-01T00:00Z', '2026-10-02T00:00Z'), 'other month'),
           ('pbx9', NULL, tstzrange('2026-11-02T00:00Z', '2026-11-03T00:00Z'), 'other server')"""
    )
    sink = TrunkObservationSink()
    async with db.transaction():
        await sink.write(db, OBSERVATIONS)


async def run_cli(argv: list[str]) -> int:
    """``pbx-sla`` in-process; its own event loop needs a thread of its own."""
    return await asyncio.to_thread(cli.main, argv)


def by_trunk(rows):
    return {r.trunk: r for r in rows}


async def test_hand_computed_day(db):
    await seed(db)
    rows = by_trunk(await report.trunk_availability(db, DAY))
    # agent1 reported Reachable: registered as a PBX-only trunk; staff (no contact, never qualified) is not
    assert sorted(rows) == ["agent1", "trunk-a", "trunk-b"]
    a = rows["trunk-a"].summary
    # unknown 10:00..11:00:02 = 3602; maintenance 15:05..15:20 = 900;
    # down 08:00..08:30 (1800) + 15:00..15:05 (300) = 2100; up = 86400 - 3602 - 900 - 2100 = 79798
    assert (a.up, a.down, a.unknown, a.maintenance) == tuple(timedelta(seconds=s) for s in (79798, 2100, 3602, 900))
    assert [(x.start, x.end) for x in a.outages] == [
        (z("2026-11-02 08:00"), z("2026-11-02 08:30")),
        (z("2026-11-02 15:00"), z("2026-11-02 15:05")),
    ]
    assert rows["trunk-a"].availability == pytest.approx(79798 / 81898)
    assert rows["trunk-a"].breach is True
    # trunk-b: reachable again since 21:30 the evening before; only the reconnect gap is unknown
    b = rows["trunk-b"].summary
    assert (b.up, b.down, b.unknown) == (timedelta(seconds=86400 - 3602), timedelta(0), timedelta(seconds=3602))
    assert rows["trunk-b"].breach is False
    # agent1: known from session 2's resync (11:00:02) to the end of the day = 11 h 59 min 58 s
    assert rows["agent1"].summary.up == timedelta(seconds=11 * 3600 + 59 * 60 + 58)
    assert rows["agent1"].in_catalogue is False

    combined = combine([rows["trunk-a"].summary, rows["trunk-b"].summary])
    assert (combined.up.total_seconds(), combined.down.total_seconds()) == (79798 + 82798, 2100)


async def test_replayed_batches_change_nothing(db):
    await seed(db)
    before = await db.fetchval("SELECT count(*) FROM trunk_observations")
    async with db.transaction():
        await TrunkObservationSink().write(db, OBSERVATIONS + OBSERVATIONS[:3])
    assert await db.fetchval("SELECT count(*) FROM trunk_observations") == before == len(OBSERVATIONS)
    rows = by_trunk(await report.trunk_availability(db, DAY))
    assert rows["trunk-a"].summary.down == timedelta(seconds=2100)


async def test_filter_by_trunks_and_server(db):
    await seed(db)
    rows = await report.trunk_availability(db, DAY, [("pbx1", "trunk-b"), ("pbx2", "trunk-b")])
    assert [(r.server, r.trunk) for r in rows] == [("pbx1", "trunk-b")]
    assert await report.trunk_availability(db, DAY, servers=["pbx2"]) == []
    assert await report.trunk_availability(db, DAY, []) == []


async def test_dst_month_is_745_hours(db):
    await seed(db)
    october = month_period(2026, 10, PRAGUE)
    await db.execute(
        """INSERT INTO ami_sessions (server, session_id, login_at, resynced_at, lost_at)
           VALUES ('pbx1', 'oct', '2026-09-30T12:00Z', '2026-09-30T12:00:01Z', '2026-11-01T00:00Z')"""
    )
    async with db.transaction():
        await TrunkObservationSink().write(db, [o("trunk-a", "2026-09-30 12:00:00.5", "Reachable")])
    rows = by_trunk(await report.trunk_availability(db, october))
    # October 2026 in Prague: 31 days + the extra hour of 25 October = 745 h, all up
    assert rows["trunk-a"].summary.up == timedelta(hours=745)
    assert rows["trunk-a"].availability == 1.0
    # trunk-b's maintenance on 1 October (00:00Z..24:00Z = 24 h) is excluded; it had no observation: unknown
    assert rows["trunk-b"].summary.maintenance == timedelta(hours=24)
    assert rows["trunk-b"].availability is None and rows["trunk-b"].breach is False


async def test_current_states_for_status(db):
    await seed(db)
    states = {s["trunk"]: s for s in await current_states(db)}
    assert states["trunk-a"]["state"] == "up"
    assert states["trunk-a"]["since"] == z("2026-11-02 15:10")
    assert states["trunk-a"]["rtt_ms"] == 1.2
    assert states["trunk-b"]["since"] == z("2026-11-02 11:00:01") and states["trunk-b"]["rtt_ms"] == 2.5
    assert states["agent1"]["in_catalogue"] is False
    await db.execute("UPDATE ami_sessions SET lost_at = '2026-11-02T23:40Z' WHERE session_id = 's2'")
    states = {s["trunk"]: s for s in await current_states(db)}
    assert states["trunk-a"]["state"] == "unknown" and states["trunk-a"]["since"] == z("2026-11-02 23:40")


async def test_cli_json_csv_and_table(db, cli_env, capsys):
    await seed(db)
    assert await run_cli(["trunks", "--from", "2026-11-02", "--to", "2026-11-03", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["period"] == {"from": "2026-11-02T00:00:00+01:00", "to": "2026-11-03T00:00:00+01:00"}
    a = next(t for t in data["trunks"] if t["trunk"] == "trunk-a")
    assert {k: a[k] for k in ("server", "target", "breach", "up_seconds", "down_seconds", "unknown_seconds")} == {
        "server": "pbx1",
        "target": 0.999,
        "breach": True,
        "up_seconds": 79798,
        "down_seconds": 2100,
        "unknown_seconds": 3602,
    }
    assert a["maintenance_seconds"] == 900 and a["outage_count"] == 2 and a["mttr_seconds"] == 1050
    assert a["outages"][0] == {
        "start": "2026-11-02T09:00:00+01:00",
        "end": "2026-11-02T09:30:00+01:00",
        "seconds": 1800,
    }

    assert (
        await run_cli(["trunks", "--from", "2026-11-02", "--to", "2026-11-03", "--format", "csv", "--server", "pbx1"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("server,trunk,in_catalogue,availability,target,breach,up_seconds")
    assert len(lines) == 4 and lines[2].startswith("pbx1,trunk-a,True,")

    assert await run_cli(["trunks", "--period", "2026-11"]) == 0
    out = capsys.readouterr().out
    assert "trunk-a" in out and "mttr" in out

    assert await run_cli(["trunks", "--period", "2026-13"]) == 2
