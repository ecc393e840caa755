"""`sla` (and `qos`) of a month read only that month's partitions' rows: history in the other months' partitions
(calls, trunk legs, support calls and their queue events) leaves every figure of the month as it was, for all
tenants and for one (`--tenant` reads only that tenant's legs); a trunk leg whose call started more than the
40 days the lookup tries first is still attributed to its tenant (the fallback over every month)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from test_qos_report import hangup, main_var
from test_qos_report import store as store_qos
from test_sla_report import call, qev, store_calls

from pbx_sla.domain import qos as q
from pbx_sla.reports.period import month_period
from pbx_sla.reports.qos import qos_report
from pbx_sla.reports.sla import sla_report
from pbx_sla.store import partitions
from pbx_sla.store.qos import QosLegSink
from pbx_sla.store.support import QueueEventSink, SupportCallSink

PERIOD = month_period(2026, 11, ZoneInfo("Europe/Prague"))
NOW = datetime(2026, 12, 20, tzinfo=UTC)
#: instants in other UTC months than the period's (which reads 2026-10's last hour and 2026-11)
OTHER_MONTHS = [datetime(y, m, 12, 10, tzinfo=UTC) for y, m in ((2025, 11), (2026, 1), (2026, 6), (2026, 9))] + [
    datetime(2026, 10, 20, 10, tzinfo=UTC),
    datetime(2026, 12, 5, 10, tzinfo=UTC),
]


async def add_call(db, key: str, started: datetime, tenant: str | None) -> None:
    await db.execute(
        """INSERT INTO calls (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                              direction, trunk, tenant_id)
           VALUES ('pbx1', $1, $1, 2, $2::timestamptz, $2::timestamptz + interval '2 minutes', $3, 'ANSWERED', 60,
                   'inbound', 'trunk-a', $4)""",
        key,
        started,
        started.date(),
        tenant,
    )


async def other_months(db) -> None:
    """Calls with trunk legs of both tenants and support calls (answered, abandoned) in the other months."""
    legs, runs, events = [], [], []
    for n, at in enumerate(OTHER_MONTHS):
        for tenant in ("acme", "bistro"):
            key = f"H{n}{tenant}"
            await add_call(db, key, at, tenant)
            legs.append(hangup(f"{key}.1", key, f"PJSIP/trunk-a-9{n}", at + timedelta(minutes=2),
                               main_var(800, 200, 0.040)))  # fmt: skip
        uid = f"hs{n}"
        runs.append(call(uid, at))
        events.append(qev(uid, "QueueCallerJoin", at + timedelta(seconds=1)))
        events.append(qev(uid, "QueueCallerAbandon" if n % 2 else "AgentConnect", at + timedelta(seconds=90),
                          hold_time=89))  # fmt: skip
    records = [q.hangup_record("pbx1", e) for e in legs]
    await QosLegSink().write(db, [r for r in records if r is not None])
    await SupportCallSink().write(db, runs)
    await QueueEventSink().write(db, events)


async def reports(db) -> tuple[dict, dict, dict]:
    full = await sla_report(db, PERIOD, now=NOW)
    one = await sla_report(db, PERIOD, "acme", now=NOW)
    return full, one, await qos_report(db, PERIOD)


async def test_month_figures_do_not_move_with_other_months_history(db) -> None:
    await store_qos(db)
    await store_calls(db)
    await partitions.maintain(db, now=NOW)
    before = await reports(db)
    acme = next(t for t in before[0]["tenants"] if t["tenant"] == "acme")
    assert acme["qos"]["legs_measured"] == 2 and acme["support_calls"] > 0  # the month has figures to keep
    assert before[1]["tenants"] == [acme]  # --tenant: the same figures as in the full report

    await other_months(db)
    await partitions.maintain(db, now=NOW)  # the other months' rows out of DEFAULT into their month partitions
    for month in ("y2025m11", "y2026m01", "y2026m06", "y2026m09"):
        for table in ("calls", "qos_legs", "support_calls", "queue_events"):
            assert await db.fetchval(f"SELECT count(*) FROM {table}_{month}") > 0, (table, month)
    assert await db.fetchval("SELECT count(*) FROM calls_default") == 0
    assert await reports(db) == before

    # a trunk leg of the month whose call started 60 days before its hangup (past the 40 days tried first):
    # found in its own month's partition all the same
    await add_call(db, "F1", datetime(2026, 9, 10, 9, tzinfo=UTC), "bistro")
    record = q.hangup_record("pbx1", hangup("F1.1", "F1", "PJSIP/trunk-a-77", datetime(2026, 11, 9, 9, tzinfo=UTC),
                                            main_var(1000, 0, 0.005)))  # fmt: skip
    assert record is not None
    await QosLegSink().write(db, [record])
    full, _, qos = await reports(db)
    bistro = next(t for t in full["tenants"] if t["tenant"] == "bistro")
    assert bistro["qos"]["legs_measured"] == 1 and bistro["qos"]["packets_received"] == 1000
    assert (await sla_report(db, PERIOD, "bistro", now=NOW))["tenants"] == [bistro]
    assert next(t for t in qos["tenants"] if t["tenant"] == "bistro")["legs_measured"] == 1
