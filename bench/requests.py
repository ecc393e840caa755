"""Benchmark: business-time arithmetic and the `requests` / `sla` reports over a year of support traffic.

    .venv/bin/python bench/requests.py [--tenants 300] [--calls-per-day 60] [--dsn ADMIN_DSN]

1. Deadlines (48 business hours, Mon-Fri 09:00-18:00 Prague with holidays) and open seconds over spans of
   up to 10 days, from 400 random instants of 2026: the interval arithmetic of
   ``pbx_sla.domain.business_time`` against the minute-by-minute reference the property tests use
   (``calendar.is_open`` per minute), alternating, in the same run.
2. A year of support calls (--calls-per-day over --tenants tenants; a third abandoned or closed, so requests
   open; staff callbacks to requesters, a few short or by other endpoints), stored through the real sinks;
   then `requests_report` and `sla_report` for December (the whole history is read: requests are derived at
   report time), median of 5. Baseline in the same run: `support_outcomes` for December, what `sla` read
   before requests existed.

Creates and drops its own database on the server of --dsn (default: the machine's PostgreSQL).
``BENCH_PROFILE=1`` (or ``=sla``) prints a cProfile of one requests (or sla) report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_sla.domain.business_time import add_open_seconds, open_seconds  # noqa: E402
from pbx_sla.domain.calendar import is_open  # noqa: E402
from pbx_sla.domain.catalogue import (  # noqa: E402
    Calendar,
    Catalogue,
    OutOfHours,
    Requester,
    SupportSettings,
    Tenant,
    Tier,
    TimeRange,
)
from pbx_sla.domain.cdr import LocalClock, read_leg  # noqa: E402
from pbx_sla.reports.period import month_period  # noqa: E402
from pbx_sla.reports.requests import requests_report, unreacted_by_tenant  # noqa: E402
from pbx_sla.reports.sla import sla_report  # noqa: E402
from pbx_sla.store import migrate  # noqa: E402
from pbx_sla.store.calls import store_rows  # noqa: E402
from pbx_sla.store.catalogue import apply_catalogue  # noqa: E402
from pbx_sla.store.requests import (  # noqa: E402
    agi_failure_facts,
    contact_facts,
    queue_member_endpoints,
    staff_calls,
)
from pbx_sla.store.support import QueueEventSink, SupportCallSink, service_by_tenant, support_outcomes  # noqa: E402

PRAGUE = ZoneInfo("Europe/Prague")
HOLIDAYS = frozenset({date(2026, 1, 1), date(2026, 4, 6), date(2026, 5, 1), date(2026, 12, 24), date(2026, 12, 25)})
BUSINESS = Calendar("business", False, {d: (TimeRange(540, 1080),) for d in range(5)}, HOLIDAYS)
MINUTE = timedelta(minutes=1)
FMT = "%Y-%m-%d %H:%M:%S"
NOW = datetime(2027, 1, 5, 12, tzinfo=UTC)


def with_db(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def reference_deadline(start: datetime, minutes: int) -> datetime:
    t, seen = start, 0
    while True:
        if is_open(BUSINESS, t, PRAGUE):
            seen += 1
            if seen == minutes:
                return t + MINUTE
        t += MINUTE


def reference_open_seconds(start: datetime, end: datetime) -> float:
    t, n = start, 0
    while t < end:
        n += is_open(BUSINESS, t, PRAGUE)
        t += MINUTE
    return n * 60.0


def bench_business_time(samples: int) -> list[str]:
    rnd = random.Random(3)
    year = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [year + rnd.randint(0, 364 * 1440) * MINUTE for _ in range(samples)]
    spans = [rnd.randint(0, 10 * 1440) * MINUTE for _ in range(samples)]
    timings: dict[str, list[float]] = {k: [] for k in ("ours deadline", "ref deadline", "ours span", "ref span")}
    for round_ in range(4):  # alternate ours / reference, 4 rounds of a quarter of the samples each
        part = slice(round_ * samples // 4, (round_ + 1) * samples // 4)
        t0 = time.perf_counter()
        ours = [add_open_seconds(BUSINESS, PRAGUE, s, 48 * 3600) for s in starts[part]]
        t1 = time.perf_counter()
        ref = [reference_deadline(s, 48 * 60) for s in starts[part]]
        t2 = time.perf_counter()
        assert ours == ref
        o_span = [open_seconds(BUSINESS, PRAGUE, s, s + d) for s, d in zip(starts[part], spans[part], strict=True)]
        t3 = time.perf_counter()
        r_span = [reference_open_seconds(s, s + d) for s, d in zip(starts[part], spans[part], strict=True)]
        t4 = time.perf_counter()
        assert o_span == r_span
        n = len(starts[part])
        timings["ours deadline"].append((t1 - t0) / n)
        timings["ref deadline"].append((t2 - t1) / n)
        timings["ours span"].append((t3 - t2) / n)
        timings["ref span"].append((t4 - t3) / n)
    return [f"| {k} | {statistics.median(v) * 1e6:,.0f} µs | {min(v) * 1e6:,.0f}-{max(v) * 1e6:,.0f} µs |"
            for k, v in timings.items()]  # fmt: skip


def catalogue(tenants: int) -> Catalogue:
    tier = Tier(
        name="t", price_per_year=Decimal(25000), currency="CZK", calendar="business", queue="q",
        out_of_hours=OutOfHours("closed"), answer_target_seconds=60, service_level_target=Decimal("0.8"),
        reaction_target=4 * 3600, reaction_share_target=Decimal("0.9"),
    )  # fmt: skip
    ts = {
        f"t{i:04d}": Tenant(
            id=f"t{i:04d}",
            name=f"Tenant {i}",
            tier="t",
            employees=10,
            contract_start=date(2026, 1, 1),
            requesters=(Requester(f"r{i}", (f"+4207{i:08d}",)),),
            support_hours_per_year=Decimal(20),
        )
        for i in range(tenants)
    }
    return Catalogue(
        timezone="Europe/Prague", country_code="420", calendars={"business": BUSINESS}, tiers={"t": tier},
        tenants=ts, support=SupportSettings(("staff1", "staff2"), 30),
    )  # fmt: skip


def traffic(tenants: int, per_day: int, seed: int = 11):
    rnd = random.Random(seed)
    clock = LocalClock(ZoneInfo("UTC"))
    calls, events, legs = [], [], []
    day = datetime(2026, 1, 1, 7, tzinfo=UTC)
    n = 0
    while day < NOW - timedelta(days=1):
        for _ in range(per_day):
            n += 1
            i = rnd.randrange(tenants)
            at = day + timedelta(seconds=rnd.randint(0, 12 * 3600))
            uid = f"u{n}"
            number = f"+4207{i:08d}"
            kind = rnd.random()
            calls.append({
                "server": "pbx1", "uniqueid": uid, "linkedid": uid, "decided_at": at.isoformat(), "caller": number,
                "caller_e164": number, "tenant": f"t{i:04d}", "requester": f"r{i}", "authorised": True,
                "in_hours": True, "tier": "t", "action": "closed" if kind < 0.1 else "queue",
                "reason": "out-of-hours" if kind < 0.1 else "authorised-number", "queue": "q",
            })  # fmt: skip
            if kind >= 0.1:
                join = at + timedelta(seconds=1)
                events.append({"server": "pbx1", "uniqueid": uid, "event": "QueueCallerJoin", "at": join.isoformat()})
                if kind < 0.33:
                    gone = join + timedelta(seconds=rnd.randint(5, 300))
                    events.append({"server": "pbx1", "uniqueid": uid, "event": "QueueCallerAbandon",
                                   "at": gone.isoformat(), "hold_time": 60})  # fmt: skip
                else:
                    wait = rnd.randint(2, 120)
                    answer = join + timedelta(seconds=wait)
                    events.append({"server": "pbx1", "uniqueid": uid, "event": "AgentConnect",
                                   "at": answer.isoformat(), "hold_time": wait})  # fmt: skip
                    events.append({"server": "pbx1", "uniqueid": uid, "event": "AgentComplete",
                                   "at": (answer + timedelta(seconds=200)).isoformat(), "talk_time": 200})  # fmt: skip
            if kind < 0.33:  # a callback within a day; some too short, some by a non-staff endpoint
                answer = at + timedelta(seconds=rnd.randint(600, 86400))
                billsec = rnd.choice([10, 120, 300])
                endpoint = rnd.choice(["staff1", "staff2", "staff1", "trunk-a"])
                start, end = answer - timedelta(seconds=5), answer + timedelta(seconds=billsec)
                row = [
                    "", endpoint, "00420" + number[4:], "staff", "", f"PJSIP/{endpoint}-{n:08x}",
                    f"PJSIP/trunk-a-{n:08x}", "Dial", "", start.strftime(FMT), answer.strftime(FMT),
                    end.strftime(FMT), str(billsec + 5), str(billsec), "ANSWERED", "DOCUMENTATION", f"cb{n}", "",
                    "", f"cb{n}", "",
                ]  # fmt: skip
                legs.append(read_leg("pbx1", row, clock))
        day += timedelta(days=1)
    return calls, events, legs


async def timed(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def bench_reports(dsn: str, tenants: int, per_day: int) -> list[str]:
    admin = await asyncpg.connect(dsn)
    name = f"pbx_sla_bench_requests_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    out = []
    try:
        conn = await asyncpg.connect(with_db(dsn, name))
        try:
            await migrate.upgrade(conn)
            await apply_catalogue(conn, catalogue(tenants), "bench")
            calls, events, legs = traffic(tenants, per_day)
            t0 = time.perf_counter()
            for i in range(0, len(calls), 5000):
                await SupportCallSink().write(conn, calls[i : i + 5000])
            t1 = time.perf_counter()
            for i in range(0, len(events), 5000):
                await QueueEventSink().write(conn, events[i : i + 5000])
            t2 = time.perf_counter()
            for i in range(0, len(legs), 5000):
                await store_rows(conn, legs[i : i + 5000], "csv")
            await conn.execute("ANALYZE")
            period = month_period(2026, 12, PRAGUE)
            n_requests = len((await requests_report(conn, period, NOW))["requests"])
            if os.environ.get("BENCH_PROFILE"):
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
                if os.environ["BENCH_PROFILE"] == "sla":
                    await sla_report(conn, period, None, NOW)
                else:
                    await requests_report(conn, period, NOW)
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            out.append(f"stored: {len(calls):,} support calls, {len(events):,} queue events, {len(legs):,} staff legs;"
                       f" {n_requests:,} requests opened in December; writing the support calls took {t1 - t0:.1f} s"
                       f" and the queue events {t2 - t1:.1f} s (the sinks, batches of 5,000)")  # fmt: skip
            rows = []
            contexts = ("support-line", "support-line-classic")
            numbers = {f"+4207{i:08d}": (f"t{i:04d}", f"r{i}") for i in range(tenants)}
            for label, fn in (
                ("baseline: support_outcomes (December)", lambda: support_outcomes(conn, period.start, period.end)),
                ("requests_report (December, all tenants)", lambda: requests_report(conn, period, NOW)),
                ("requests_report --tenant", lambda: requests_report(conn, period, NOW, "t0001")),
                ("  of which contact_facts (all tenants, all history)", lambda: contact_facts(conn, NOW, None)),
                ("  of which agi_failure_facts", lambda: agi_failure_facts(conn, NOW, contexts, numbers)),
                ("  of which staff_calls", lambda: staff_calls(conn, ["staff1", "staff2"], NOW)),
                ("  of which queue_member_endpoints", lambda: queue_member_endpoints(conn)),
                ("sla_report (December, all tenants)", lambda: sla_report(conn, period, None, NOW)),
                ("sla_report --tenant", lambda: sla_report(conn, period, "t0001", NOW)),
                (
                    "  of which service_by_tenant (December, all tenants)",
                    lambda: service_by_tenant(conn, period.start, period.end),
                ),
                ("unreacted_by_tenant (the /metrics refresh's request gauges)", lambda: unreacted_by_tenant(conn, NOW)),
            ):
                rows.append(f"| {label} | {await timed(fn):.3f} s |")
            out += rows
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--calls-per-day", type=int, default=60)
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%MZ}, load average {os.getloadavg()}, {os.cpu_count()} cores")
    print("| business time (per call) | median of 4 rounds | range |")
    print("|---|---|---|")
    for line in bench_business_time(args.samples):
        print(line)
    for line in await bench_reports(args.dsn, args.tenants, args.calls_per_day):
        print(line)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
