"""Retention by partition: a month partition past the age whose months have closed statements is dropped
whole (sql/1704 records it); a month not closed falls back to pseudonymising its rows. The rollup, `usage`
of the dropped month and its statement stay exact, a later `statement close` states no adjustment for the
dropped month, and a re-import of the dropped month's file stores nothing again."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from test_cdr_import import csv_line, fields, run_cli
from test_sla_report import apply_example, call, qev
from test_usage import generate

from pbx_sla.config import Retention
from pbx_sla.store import partitions
from pbx_sla.store.retention import apply_retention
from pbx_sla.store.support import QueueEventSink, SupportCallSink

LEGS_DAYS = SUPPORT_DAYS = 60


async def cli_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, *argv, "--format", "json") == 0, argv
    return json.loads(capsys.readouterr().out)


async def test_retention_drops_closed_months_and_pseudonymises_the_others(db, cli_env, tmp_path, capsys):
    await apply_example(db)
    january = generate(2026, 1, 41, 80)[0]
    march = [csv_line(fields(datetime(2026, 3, 10, 9, tzinfo=UTC) + timedelta(minutes=i), uid=f"m{i}.0",
                             linked=f"m{i}.0", acct="acme")) for i in range(5)]  # fmt: skip
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(january + march) + "\n", encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    await SupportCallSink().write(db, [call("s1", datetime(2026, 1, 15, 9, tzinfo=UTC))])
    await partitions.maintain(db)  # as the daemon's daily run: January's support call out of DEFAULT
    assert await db.fetchval("SELECT count(*) FROM support_call_results WHERE uniqueid = 's1'") == 1
    # the UTC month partition of January overlaps January and the first hour of February in Prague
    for month in ("2026-01", "2026-02"):
        assert await asyncio.to_thread(run_cli, "statement", "close", "--period", month) == 0
    (tmp_path / "pbx-sla.toml").write_text(
        f"[retention]\nlegs_days = {LEGS_DAYS}\nsupport_days = {SUPPORT_DAYS}\n", encoding="utf-8"
    )
    jan_legs = await db.fetchval("SELECT count(*) FROM cdr_legs_y2026m01")
    jan_calls = await db.fetchval("SELECT count(*) FROM calls_y2026m01")
    mar_legs = await db.fetchval("SELECT count(*) FROM cdr_legs_y2026m03")
    assert jan_legs > 100 and mar_legs == 5
    usage_jan = await cli_json(capsys, "usage", "--period", "2026-01")
    statement_jan = await cli_json(capsys, "statement", "show", "--period", "2026-01")
    rollup = [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")]

    dry = {t["table"]: t for t in (await cli_json(capsys, "retention", "apply", "--dry-run"))["tables"]}
    assert dry["cdr_legs"]["partitions_dropped"] == ["cdr_legs_y2026m01"]
    assert dry["cdr_legs"]["rows_dropped"] == jan_legs
    kept_old = await db.fetchval(  # December, February (their other local month is not closed), March
        "SELECT count(*) FROM cdr_legs WHERE start_at < now() - interval '60 days' "
        "AND tableoid <> 'cdr_legs_y2026m01'::regclass"
    )
    assert dry["cdr_legs"]["rows"] == kept_old and kept_old > mar_legs
    assert dry["support_calls"]["partitions_dropped"] == ["support_calls_y2026m01"]
    assert await db.fetchval("SELECT to_regclass('cdr_legs_y2026m01') IS NOT NULL")

    done = {t["table"]: t for t in (await cli_json(capsys, "retention", "apply"))["tables"]}
    assert done["cdr_legs"]["partitions_dropped"] == ["cdr_legs_y2026m01"]
    assert done["cdr_legs"]["rows_dropped"] == jan_legs and done["cdr_legs"]["rows"] == dry["cdr_legs"]["rows"]
    assert done["calls"]["partitions_dropped"] == ["calls_y2026m01"] and done["calls"]["rows_dropped"] == jan_calls
    assert done["support_calls"]["rows_dropped"] == 1
    for table in ("cdr_legs", "calls", "support_calls", "queue_events"):
        assert await db.fetchval("SELECT to_regclass($1) IS NULL", f"{table}_y2026m01"), table
    assert await db.fetchval("SELECT count(*) FROM cdr_legs_y2026m03 WHERE NOT pseudonymised") == 0
    dropped = {r["partition"]: r["rows"] for r in await db.fetch("SELECT partition, rows FROM history_dropped")}
    assert dropped["cdr_legs_y2026m01"] == jan_legs and dropped["support_calls_y2026m01"] == 1
    # the kept support outcomes (sql/1602) follow the drop: January's support call is gone from them too
    assert await db.fetchval("SELECT count(*) FROM support_call_results WHERE uniqueid = 's1'") == 0
    assert await db.fetch("SELECT * FROM support_call_results") == await db.fetch(
        "SELECT o.server, COALESCE(o.linkedid, o.uniqueid), o.uniqueid, o.linkedid, o.decided_at, o.tenant_id, "
        "o.tier, o.action, o.reason, o.authorised, o.joined_at, o.queue, o.outcome, o.wait_seconds, o.runs "
        "FROM support_call_outcomes o"
    )

    # what the dropped month fed is exact: the rollup, usage, the closed statement
    assert [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")] == rollup
    assert await cli_json(capsys, "usage", "--period", "2026-01") == usage_jan
    assert await cli_json(capsys, "statement", "show", "--period", "2026-01") == statement_jan
    # the next close does not recompute the dropped months (their support call is gone): no adjustment
    assert await asyncio.to_thread(run_cli, "statement", "close", "--period", "2026-03") == 0
    march_statement = await cli_json(capsys, "statement", "show", "--period", "2026-03")
    assert all(s["adjustments"] == [] for s in march_statement["statements"]), march_statement

    # the dropped month's file imported again: nothing stored again, nothing counted twice
    legs = await db.fetchval("SELECT count(*) FROM cdr_legs")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    assert [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")] == rollup
    assert await db.fetchval("SELECT count(*) FROM cdr_legs") == legs
    assert await db.fetchval("SELECT count(*) FROM cdr_legs WHERE start_at >= '2026-01-01 00:00Z' "
                             "AND start_at < '2026-02-01 00:00Z'") == 0  # fmt: skip

    # the next run: nothing left to pseudonymise; February's partitions (February and March in Prague) are
    # now droppable, March being closed
    again = {t["table"]: t for t in (await cli_json(capsys, "retention", "apply"))["tables"]}
    assert all(t["rows"] == 0 for t in again.values()), again
    assert again["cdr_legs"]["partitions_dropped"] == ["cdr_legs_y2026m02"]
    assert again["calls"]["partitions_dropped"] == ["calls_y2026m02"]
    assert [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")] == rollup


async def test_dropped_support_month_keeps_the_outcomes_of_calls_across_its_edge(db):
    """A support month dropped: a call whose only run was in it has no outcome left; a call with a run on each
    side of the edge is recomputed from what is left (its February run, with its queue events), exactly what
    the view gives; the other months' outcomes are untouched."""
    jan = datetime(2026, 1, 20, 9, tzinfo=UTC)
    edge_first, edge_second = datetime(2026, 1, 31, 23, 50, tzinfo=UTC), datetime(2026, 2, 1, 0, 10, tzinfo=UTC)
    march = datetime(2026, 3, 3, 9, tzinfo=UTC)
    runs = [call("j1", jan), call("e1", edge_first), call("e1", edge_second), call("m1", march)]
    events = [qev("j1", "QueueCallerJoin", jan + timedelta(seconds=1)),
              qev("e1", "QueueCallerJoin", edge_first + timedelta(seconds=1)),
              qev("e1", "QueueCallerAbandon", edge_first + timedelta(seconds=40), hold_time=39),
              qev("e1", "QueueCallerJoin", edge_second + timedelta(seconds=1)),
              qev("e1", "AgentConnect", edge_second + timedelta(seconds=21), hold_time=20),
              qev("m1", "QueueCallerJoin", march + timedelta(seconds=1))]  # fmt: skip
    await SupportCallSink().write(db, runs)
    await QueueEventSink().write(db, events)
    now = datetime(2026, 2, 2, tzinfo=UTC)
    await partitions.maintain(db, now=now)
    assert await db.fetchval("SELECT count(*) FROM support_calls_default") == 0
    columns = "server, call_key, uniqueid, decided_at, tenant_id, outcome, wait_seconds, runs"
    before = {r["call_key"]: r for r in await db.fetch(f"SELECT {columns} FROM support_call_results")}
    assert (before["e1"]["runs"], before["e1"]["decided_at"]) == (2, edge_first)
    await db.execute("INSERT INTO statement_closes (period, code_version, tenants) VALUES ('2026-01', 't', 0)")

    report = await apply_retention(db, Retention(support_days=1), now)
    tables = {t["table"]: t for t in report}
    assert tables["support_calls"]["partitions_dropped"] == ["support_calls_y2026m01"]
    assert tables["support_calls"]["rows_dropped"] == 2  # j1 and e1's first run
    assert tables["queue_events"]["rows_dropped"] == 3
    after = {r["call_key"]: r for r in await db.fetch(f"SELECT {columns} FROM support_call_results")}
    view = {
        r["call_key"]: r
        for r in await db.fetch(
            f"SELECT {columns} FROM (SELECT *, COALESCE(linkedid, uniqueid) AS call_key FROM support_call_outcomes) o"
        )
    }
    assert after == view  # the table is what the view gives for what is left
    assert set(after) == {"e1", "m1"} and after["m1"] == before["m1"]
    assert (after["e1"]["runs"], after["e1"]["decided_at"], after["e1"]["outcome"]) == (1, edge_second, "answered")
    assert after["e1"]["wait_seconds"] == 20
