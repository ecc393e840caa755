"""sql/1703: a database built at the previous head (versions up to 1702, the call rules as they were then, and
the later migrations that do not touch the history tables) with history in several months is converted to month
partitions; every row and every report figure is identical before and after, and the write paths stay idempotent
on the partitioned tables.

The previous head's two rule files that 1703 changed are kept in tests/fixtures/sql_1702/ (the others are
unchanged since), so the old database is written by the old rules: legs by the real `cdr import`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from test_cdr_import import csv_line, fields, run_cli, seed_catalogue
from test_sla_report import apply_example, store_calls, store_trunk_a
from test_usage import generate

from pbx_sla.store import migrate, partitions

OLD_RULES = Path(__file__).parent.parent / "fixtures" / "sql_1702"
HISTORY = ("cdr_legs", "calls", "support_calls", "queue_events", "qos_legs")
MONTHS = ("2025-12", "2026-01", "2026-02", "2026-11")
#: every report that reads the history tables, per month
REPORTS = (("usage",), ("sla",), ("trunks",), ("qos",), ("requests",))


#: the migrations that partition the history (1703) and drop its months (1704); every other one, the later ones
#: too, is applied to the "previous head" so that today's report code can read it (e.g. 1705's trunk_known_days,
#: which the trunk availability reads) and the figures before and after the conversion come from the same code
PARTITIONING = (1703, 1704)


def previous_head() -> migrate.Schema:
    """The schema as the previous head built it (versions below 1703, its rule files), plus the later migrations
    that do not touch the history tables (:data:`PARTITIONING` excepted)."""
    versioned = [m for m in migrate.discover() if m.version not in PARTITIONING]
    old = {p.stem: p.read_text(encoding="utf-8") for p in OLD_RULES.glob("*.sql")}
    repeatables = [
        migrate.Repeatable(r.name, r.path, old[r.name]) if r.name in old else r for r in migrate.discover_repeatables()
    ]
    return migrate.Schema(versioned, repeatables)


async def contents(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the history tables and the rollup, in one order."""
    out = {}
    for table in (*HISTORY, "usage_daily"):
        rows = await conn.fetch(f"SELECT * FROM {table}")
        out[table] = sorted(tuple(map(repr, r.values())) for r in rows)
    return out


async def figures(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = {}
    for report in REPORTS:
        for month in MONTHS:
            capsys.readouterr()
            assert await asyncio.to_thread(run_cli, *report, "--period", month, "--format", "json") == 0, report
            figures = json.loads(capsys.readouterr().out)
            figures.pop("now", None)  # requests: the time it was asked
            out[f"{report[0]} {month}"] = figures
    return out


async def seed_events(conn: asyncpg.Connection) -> None:
    """Support calls, queue events and QoS legs in three months (raw rows, as the sinks of 1702 wrote them)."""
    for i, at in enumerate(
        (
            datetime(2025, 12, 20, 9, tzinfo=UTC),
            datetime(2026, 1, 15, 9, tzinfo=UTC),
            datetime(2026, 11, 3, 9, tzinfo=UTC),
        )
    ):
        uid = f"{i}.0"  # the linkedid of a generated call
        await conn.execute(
            """INSERT INTO support_calls (server, uniqueid, linkedid, decided_at, caller, caller_e164, channel,
                                          tenant_id, requester, authorised, in_hours, tier, action, reason, queue)
               VALUES ('pbx1', $1, $1, $2, '777000001', '+420777000001', 'PJSIP/trunk-a-1', 'acme', 'jana',
                       true, true, 'tier3', 'queue', 'authorised', 'q')""",
            uid,
            at,
        )
        for n, (event, extra) in enumerate((("QueueCallerJoin", None), ("AgentConnect", 12), ("AgentComplete", 12))):
            await conn.execute(
                """INSERT INTO queue_events (server, uniqueid, linkedid, event, at, queue, hold_time, talk_time,
                                             member)
                   VALUES ('pbx1', $1, $1, $2, $3, 'q', $4, $5, 'PJSIP/agent')""",
                uid,
                event,
                at + timedelta(seconds=5 + 20 * n),
                extra,
                60 if event == "AgentComplete" else None,
            )
        await conn.execute(
            """INSERT INTO qos_legs (server, uniqueid, linkedid, channel, endpoint, at, codec, received, lost,
                                     jitter_ms, jitter_max_ms, rtt_ms)
               VALUES ('pbx1', $1, $1, 'PJSIP/trunk-a-1', 'trunk-a', $2, 'ulaw', 5000, $3, 2.5, 7.0, 40.0)""",
            uid,
            at + timedelta(minutes=3),
            10 * (i + 1),
        )


async def test_1703_converts_a_database_of_the_previous_head(
    empty_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PBX_SLA_DSN", empty_dsn)
    monkeypatch.setenv("PBX_SLA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PBX_SLA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn, previous_head())
        versions = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        assert 1702 in versions and not versions & set(PARTITIONING)
        await apply_example(conn)  # examples/contracts.toml: tenants acme and bistro, trunk-a
        await store_calls(conn)  # the sla test's support calls and queue events in November
        await store_trunk_a(conn)
        rows = generate(2025, 12, 31, 40)[0] + generate(2026, 1, 32, 60)[0] + generate(2026, 11, 33, 30)[0]
        master = tmp_path / "Master.csv"
        master.write_text("\n".join(rows) + "\n", encoding="utf-8")
        assert await asyncio.to_thread(run_cli, "cdr", "import", str(master), "--server", "pbx1") == 0
        await seed_events(conn)
        assert await conn.fetchval("SELECT count(*) FROM cdr_legs") > 200
        before, reports_before = await contents(conn), await figures(capsys)
        assert reports_before["usage 2026-01"]["tenants"], "the reports must have something to compare"

        # the view on calls and qos_legs of a later migration's rule (1710: qos_leg_figures) exists here only
        # because this database has the later migrations before 1703; a real database gets it after 1703 (the
        # rule files follow every versioned file), so it goes, and the upgrade below makes it again
        await conn.execute("DROP VIEW qos_leg_figures")
        applied = await migrate.upgrade(conn)  # the current schema: 1703 and the current rules

        assert [m.version for m in applied] == list(PARTITIONING)
        kinds = dict(
            await conn.fetch("SELECT relname, relkind::text FROM pg_class WHERE relname = ANY($1)", list(HISTORY))
        )
        assert kinds == {t: "p" for t in HISTORY}
        for table in HISTORY:  # a partition per month with rows (and the months ahead); DEFAULT empty
            names = [p[0] for p in await partitions.months(conn, table)]
            assert f"{table}_y2025m12" in names and f"{table}_y2026m01" in names, names
            assert await conn.fetchval(f"SELECT count(*) FROM {table}_default") == 0
        assert await conn.fetchval("SELECT count(*) FROM cdr_legs_y2026m11") > 0
        assert await contents(conn) == before
        assert await figures(capsys) == reports_before

        # the write paths on the partitioned tables: the same file again stores nothing ...
        capsys.readouterr()
        assert await asyncio.to_thread(run_cli, "cdr", "import", str(master), "--server", "pbx1") == 0
        assert ", 0 imported," in capsys.readouterr().out
        assert await contents(conn) == before
        # ... and read under another zone it is refused, nothing stored twice
        assert (
            await asyncio.to_thread(
                run_cli, "cdr", "import", str(master), "--server", "pbx1", "--timezone", "America/New_York"
            )
            == 1
        )
        assert await contents(conn) == before
    finally:
        await conn.close()


async def test_a_late_earlier_leg_moves_its_call_to_its_month(db, cli_env, tmp_path, capsys):
    """A call is keyed (server, call_key, started_at): a leg that arrives late and starts in the previous
    month moves the call (and its rollup day) there, once; the replay of both legs changes nothing."""

    await seed_catalogue(db)
    late = datetime(2026, 2, 28, 22, 59, 50, tzinfo=UTC)  # 23:59:50 in Prague: February
    first = datetime(2026, 3, 1, 0, 0, 20, tzinfo=UTC)  # 01:00:20 in Prague: March (partitions are UTC months)
    rows_second = [csv_line(fields(first, uid="7.1", linked="7.0", seq=2, acct="acme"))]
    rows_first = [csv_line(fields(late, uid="7.0", linked="7.0", seq=1))]
    for n, rows in enumerate((rows_second, rows_first, rows_second + rows_first)):
        path = tmp_path / "Master.csv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
        if n == 0:
            part = await db.fetchval("SELECT tableoid::regclass::text FROM calls")
            assert part == "calls_y2026m03"
    calls = await db.fetch("SELECT tableoid::regclass::text AS part, started_at, legs, day FROM calls")
    assert [(c["part"], c["started_at"], c["legs"], str(c["day"])) for c in calls] == [
        ("calls_y2026m02", late, 2, "2026-02-28")
    ]
    assert [
        tuple(r) for r in await db.fetch("SELECT tenant_id, day::text, calls FROM usage_daily WHERE calls <> 0")
    ] == [("acme", "2026-02-28", 1)]
    assert await db.fetchval("SELECT count(*) FROM cdr_legs") == 2


async def test_reports_read_only_the_periods_partitions(db):
    """The planner prunes a month's report to that month's partitions (EXPLAIN)."""
    await partitions.maintain(db, now=datetime(2026, 1, 1, tzinfo=UTC), ahead=3)
    plan = "\n".join(
        r[0]
        for r in await db.fetch(
            """EXPLAIN SELECT count(*) FROM support_call_outcomes
               WHERE decided_at >= '2026-02-01 00:00+01' AND decided_at < '2026-03-01 00:00+01'"""
        )
    )
    # the view's support calls of the period (alias f): February in Prague starts on 31 January in UTC; the
    # other runs of each call and their queue events are looked up by key (an index probe per partition)
    period = [
        line for line in plan.splitlines() if " on support_calls_" in line and line.endswith(")") and " f_" in line
    ]
    assert len(period) == 2 and "y2026m01 f_" in period[0] and "y2026m02 f_" in period[1], plan
    plan = "\n".join(
        r[0]
        for r in await db.fetch(
            "EXPLAIN SELECT * FROM qos_legs WHERE at >= '2026-02-01 00:00+00' AND at < '2026-03-01 00:00+00'"
        )
    )
    assert "qos_legs_y2026m02" in plan and "qos_legs_y2026m01" not in plan and "qos_legs_default" not in plan, plan


async def test_rows_of_a_month_without_partition_wait_in_default_and_move_out(db):
    await db.execute(
        """INSERT INTO queue_events (server, uniqueid, event, at) VALUES ('pbx1', '1.1', 'QueueCallerJoin',
           '2019-05-04 10:00Z'), ('pbx1', '1.1', 'AgentConnect', '2019-05-04 10:01Z')"""
    )
    assert await db.fetchval("SELECT count(*) FROM queue_events_default") == 2
    made = await partitions.maintain(db)
    assert made["queue_events"] == 1
    assert await db.fetchval("SELECT count(*) FROM queue_events_default") == 0
    assert await db.fetchval("SELECT count(*) FROM queue_events_y2019m05") == 2
    # the moved partition has the table's keys: a replay is still ignored
    await db.execute(
        """INSERT INTO queue_events (server, uniqueid, event, at) VALUES ('pbx1', '1.1', 'QueueCallerJoin',
           '2019-05-04 10:00Z') ON CONFLICT (server, uniqueid, event, at) DO NOTHING"""
    )
    assert await db.fetchval("SELECT count(*) FROM queue_events") == 2
    assert (await partitions.maintain(db))["queue_events"] == 0
