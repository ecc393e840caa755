"""Benchmark: dashboard pages and ``/metrics`` at scale.

    .venv/bin/python bench/web.py [--calls 10000000] [--tenants 500] [--trunks 100] [--support-calls 50000]
                                  [--runs 7] [--dsn ADMIN_DSN] [--keep NAME] [--catalogue] [--profile]
                                  [--judged-at INSTANT]

Data (own database, dropped at the end): ``--calls`` calls over 2026-01..06 across ``--tenants`` tenants and
their daily rollup, as ``bench/cdr.py`` builds them (same function); ``--trunks`` trunks on 2 servers with a
daemon session per server per day and a weekly flap per trunk, as ``bench/trunks_report.py`` generates them;
each tenant on one trunk; ``--support-calls`` support calls in March (80 % answered after 5-60 s, the rest
abandoned). Month measured: 2026-03.

``--catalogue``: before measuring, apply a catalogue document (``apply_catalogue``, as ``pbx-sla catalogue
apply`` does) naming the same tenants, tiers and trunks, with support hours (Mon-Fri 09:00-18:00 Prague with
holidays, ``bench/requests.py``'s calendar), a 4-hour reaction target (90 %), one requester per tenant, 20
prepaid support hours a year and two staff endpoints; the support calls get the tenant's requester and number.
``sla`` (the overview and tenant page) then derives every tenant's support requests and reaction figures, as
in production. Without it no revision exists and ``sla`` derives none. Applied once; on a ``--keep`` database it
stays applied (a later run without ``--catalogue`` measures with it too).
``--profile``: print a cProfile (top 25 by cumulative time) of one overview render after the runs.
``--judged-at INSTANT``: ``sla`` (pages and baselines) judges support requests as of INSTANT (ISO; e.g.
``2026-03-20T12:00Z``, mid-month: the requests after the kept cuts are derived at each view, as on a live month)
instead of the wall clock (every March request then lies before the cuts).
When the code measured keeps support requests (sql/1720): each invocation starts with none kept (the tables
emptied and vacuumed; the warm-up view stores them), a row times the overview with none kept before each
run (the view after a catalogue change or a late fact reaching every tenant), and one the overview after a late
support call of one tenant (``t7``, on 5 March: stored before each run, deleted after the last). The output
names the directory ``pbx_sla`` was imported from (for runs of an older checkout's code by this script).

Times, median and worst of ``--runs``, server side (the work of one request, in-process, no HTTP):

* each page: its report calls + HTML rendering (``pbx_sla.web.dashboard`` data functions + ``pages``); the
  overview also as the first view of the month, with no trunk day kept yet (``trunk_known_days`` emptied
  before each run, when the schema has it);
  baseline in the same runs: the report calls alone, i.e. what ``pbx-sla trunks/usage/sla --format json``
  compute for the same page;
* ``/metrics`` with ``--tenants`` tenants and ``--trunks`` trunks: ``generate_latest`` of the daemon's registry
  (5 dispositions per tenant, open and overdue support requests per tenant (synthetic values without
  ``--catalogue``; with it, the refresh's own), 3 states + RTT per trunk, AGI counters over 12 action/reason pairs);
  baseline: ``generate_latest`` of a registry holding only the process collector;
* the same requests over loopback HTTP through the aiohttp server (client wall time), for reference;
* the background refresh of the database-derived metrics (``database_figures``);
* per page, the CPU one request cost: this process (``time.process_time``) and the connection's PostgreSQL
  backend (``/proc/PID/stat``, so only for a server on this machine), means over the runs (the kernel counts
  in 10 ms ticks): what the wall time would be on an idle machine, give or take the round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from decimal import Decimal  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from cdr import load_calls, seed, with_db  # noqa: E402
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest  # noqa: E402
from trunks_report import generate  # noqa: E402

import pbx_sla  # noqa: E402
from pbx_sla.ami.collector import ServerStatus  # noqa: E402
from pbx_sla.config import HttpSettings  # noqa: E402
from pbx_sla.domain.catalogue import (  # noqa: E402
    Catalogue,
    CreditRule,
    OutOfHours,
    Requester,
    SupportSettings,
    Tenant,
    Tier,
    Trunk,
)
from pbx_sla.reports import sla as sla_report  # noqa: E402
from pbx_sla.reports import trunks as trunks_report  # noqa: E402
from pbx_sla.reports import usage as usage_report  # noqa: E402
from pbx_sla.reports.period import month_period  # noqa: E402
from pbx_sla.reports.requests import Unreacted  # noqa: E402
from pbx_sla.store import migrate  # noqa: E402
from pbx_sla.store.catalogue import apply_catalogue, load_catalogue  # noqa: E402
from pbx_sla.store.trunks import current_states  # noqa: E402
from pbx_sla.web import pages  # noqa: E402
from pbx_sla.web.dashboard import SERVER_SETTINGS, Dashboard, overview_data, tenant_data, trunk_data  # noqa: E402
from pbx_sla.web.metrics import DaemonMetrics, DatabaseFigures, database_figures  # noqa: E402
from pbx_sla.web.server import HttpServer, build_app  # noqa: E402

PRAGUE = ZoneInfo("Europe/Prague")
YEAR = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)


async def load(conn: asyncpg.Connection, calls: int, tenants: int, trunks: int, support: int) -> dict[str, float]:
    took = {}
    t = time.perf_counter()
    await seed(conn, tenants)
    await conn.execute("UPDATE tiers SET service_level_target = 0.8, availability_target = 0.999, "
                       """credits = '[{"metric": "availability", "below": 0.999, "percent": 5}]'""")  # fmt: skip
    await load_calls(conn, calls, tenants)
    took["calls"] = time.perf_counter() - t
    t = time.perf_counter()
    names, sessions, obs = generate(trunks, 2, 7 * 24 * 60, *YEAR)
    await conn.executemany(
        "INSERT INTO trunks (server, name, availability_target, in_catalogue) VALUES ($1, $2, 0.999, true)", names
    )
    await conn.copy_records_to_table("ami_sessions", records=sessions,
                                     columns=["server", "session_id", "login_at", "resynced_at", "last_seen_at",
                                              "lost_at"])  # fmt: skip
    await conn.copy_records_to_table("trunk_observations", records=obs,
                                     columns=["server", "trunk", "at", "source", "key", "status", "rtt_usec",
                                              "polled"])  # fmt: skip
    await conn.executemany(
        "INSERT INTO tenant_trunks (tenant_id, server, trunk) VALUES ($1, $2, $3)",
        [(f"t{i}", *names[i % len(names)]) for i in range(tenants)],
    )
    # the last session of each server stays open (daemon running) so `status` has live states
    await conn.execute(
        """UPDATE ami_sessions SET lost_at = NULL, last_seen_at = $1
           WHERE (server, login_at) IN (SELECT server, max(login_at) FROM ami_sessions GROUP BY server)""",
        YEAR[1],
    )
    took["trunks"] = time.perf_counter() - t
    t = time.perf_counter()
    await conn.execute(
        """INSERT INTO support_calls (server, uniqueid, linkedid, decided_at, tenant_id, authorised, in_hours, tier,
                                      action, reason, queue)
           SELECT 'pbx1', 's' || i, 's' || i, timestamptz '2026-03-01 00:00+01' + i * (interval '30 days' / $1),
                  't' || (i % $2), true, true, 't1', 'queue', 'authorised-number', 'q'
           FROM generate_series(1, $1) i""",
        support,
        tenants,
    )
    await conn.execute(
        """INSERT INTO queue_events (server, uniqueid, linkedid, event, at, queue, hold_time)
           SELECT 'pbx1', uniqueid, linkedid, 'QueueCallerJoin', decided_at + interval '1 second', 'q', NULL
             FROM support_calls
           UNION ALL
           SELECT 'pbx1', uniqueid, linkedid,
                  CASE WHEN hashtext(uniqueid) % 5 = 0 THEN 'QueueCallerAbandon' ELSE 'AgentConnect' END,
                  decided_at + (6 + abs(hashtext(uniqueid)) % 55) * interval '1 second', 'q',
                  5 + abs(hashtext(uniqueid)) % 55
             FROM support_calls"""
    )
    await conn.execute("VACUUM ANALYZE")
    took["support"] = time.perf_counter() - t
    return took


def _bench_requests() -> Any:
    """``bench/requests.py`` by path (its module name would shadow the PyPI ``requests`` for type checkers)."""
    spec = importlib.util.spec_from_file_location("bench_requests", ROOT / "bench" / "requests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def catalogue(tenants: int, trunk_names: list[tuple[str, str]]) -> Catalogue:
    """The bench's tenants (``t0``.., tiers ``t1``/``t2``/``t4`` as :func:`cdr.seed` gives them, one trunk each as
    :func:`load` links them) in a catalogue with support hours, reaction targets and a requester per tenant."""
    business = _bench_requests().BUSINESS
    credits = (CreditRule(below=Decimal("0.999"), percent=Decimal(5)),)
    tiers = {
        name: Tier(
            name=name, price_per_year=Decimal(price), currency="CZK", max_calls_per_day=calls, max_employees=emp,
            calendar="business", queue="q", priority=1, out_of_hours=OutOfHours("closed"), answer_target_seconds=30,
            service_level_target=Decimal("0.8"), availability_target=Decimal("0.999"), credits=credits,
            reaction_target=4 * 3600, reaction_share_target=Decimal("0.9"),
        )
        for name, price, calls, emp in (("t1", 25000, 100, 20), ("t2", 46000, 500, 50), ("t4", 190000, None, None))
    }  # fmt: skip
    ts = {
        f"t{i}": Tenant(
            id=f"t{i}", name=f"tenant {i}", tier=("t1", "t2", "t4")[i % 3], employees=i % 60,
            contract_start=datetime(2025, 1, 1).date(), accountcodes=(f"t{i}",),
            trunks=("/".join(trunk_names[i % len(trunk_names)]),),
            requesters=(Requester(f"r{i}", (f"+4207{i:08d}",)),), support_hours_per_year=Decimal(20),
        )
        for i in range(tenants)
    }  # fmt: skip
    trunks = tuple(Trunk(name, server, Decimal("0.999")) for server, name in trunk_names)
    return Catalogue(
        timezone="Europe/Prague", country_code="420", calendars={"business": business}, tiers=tiers, tenants=ts,
        trunks=trunks, support=SupportSettings(("staff1", "staff2"), 30),
    )  # fmt: skip


async def apply_bench_catalogue(conn: asyncpg.Connection, tenants: int, trunks: int) -> float:
    """Apply :func:`catalogue` (once) and give the support calls their tenant's requester; seconds taken."""
    t = time.perf_counter()
    if await load_catalogue(conn) is None:
        names = [
            (r["server"], r["name"]) for r in await conn.fetch("SELECT server, name FROM trunks ORDER BY server, name")
        ]
        assert len(names) == trunks, (len(names), trunks)
        await apply_catalogue(conn, catalogue(tenants, names), "bench/web.py --catalogue")
        await conn.execute(
            """UPDATE support_calls SET requester = 'r' || substr(tenant_id, 2),
                      caller = '+4207' || lpad(substr(tenant_id, 2), 8, '0'),
                      caller_e164 = '+4207' || lpad(substr(tenant_id, 2), 8, '0')"""
        )
        await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t


class Cpu:
    """CPU seconds this process and the connection's PostgreSQL backend (same machine: /proc) spent: the
    load-independent cost of a request (wall time on this shared 2-core VM moves 2x with other work)."""

    def __init__(self, backend_pid: int) -> None:
        self.stat = Path(f"/proc/{backend_pid}/stat")
        self.tick = os.sysconf("SC_CLK_TCK")
        self.python = self.postgres = 0.0
        self.count = 0

    def _backend(self) -> float:
        fields = self.stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime

    async def measure(self, fn: Callable[[], Awaitable[Any]]) -> float:
        """Run ``fn`` once; its wall seconds (CPU added to the totals)."""
        py, pg, t = time.process_time(), self._backend(), time.perf_counter()
        await fn()
        wall = time.perf_counter() - t
        self.python += time.process_time() - py
        self.postgres += self._backend() - pg
        self.count += 1
        return wall

    def __str__(self) -> str:
        n = max(self.count, 1)
        return f"{self.python / n * 1000:.1f} + {self.postgres / n * 1000:.1f}"


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return times


def ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.1f} / {max(times) * 1000:.1f}"


class FakeDaemon:
    """What /metrics reads from a daemon, at the benchmark's sizes."""

    def __init__(self, figures: DatabaseFigures) -> None:
        self.server_statuses = []
        for name in ("pbx1", "pbx2"):
            s = ServerStatus(name, "127.0.0.1", 5038, state="connected", reconnects=3, last_event_at=time.time())
            s.event_counts.update({e: 1000 for e in ("ContactStatus", "PeerStatus", "Registry", "Cdr",
                                                      "QueueCallerJoin", "AgentConnect", "other")})  # fmt: skip
            self.server_statuses.append(s)
        self.writer_figures = {"memory": 10, "spooled": 0, "written": 123456, "dead_letters": 0, "database": "up"}
        self.database_figures = figures


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--calls", type=int, default=10_000_000)
    p.add_argument("--tenants", type=int, default=500)
    p.add_argument("--trunks", type=int, default=100)
    p.add_argument("--support-calls", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--catalogue", action="store_true", help="apply a catalogue document first (see above)")
    p.add_argument("--profile", action="store_true", help="cProfile one overview render after the runs")
    p.add_argument(
        "--judged-at",
        metavar="INSTANT",
        help="the `sla` report (pages and baselines) judges support requests as of INSTANT (ISO, e.g. "
        "2026-03-20T12:00Z: mid-month, requests of the last days still being derived) instead of the wall clock",
    )
    p.add_argument(
        "--keep",
        metavar="NAME",
        help="load into database NAME and keep it; reuse it if it exists "
        "(the load's arguments must then be the same: they are not checked)",
    )
    args = p.parse_args()
    if args.judged_at:  # as a dashboard whose clock reads INSTANT: every sla_report call without ``now`` gets it
        judged_at = datetime.fromisoformat(args.judged_at.replace("Z", "+00:00"))
        wall_clock_report = sla_report.sla_report

        async def judged_report(conn: Any, period: Any, tenant: Any = None, now: Any = None, *a: Any, **kw: Any) -> Any:
            return await wall_clock_report(conn, period, tenant, now or judged_at, *a, **kw)

        sla_report.sla_report = judged_report
    name = args.keep or f"bench_web_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    exists = args.keep and await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", name)
    if not exists:
        await admin.execute(f'CREATE DATABASE "{name}"')
    out: list[str] = []
    try:
        dsn = with_db(args.dsn, name)
        conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)  # as the dashboard's pool
        await migrate.upgrade(conn)
        if exists:
            took = {"calls": 0.0, "trunks": 0.0, "support": 0.0}
        else:
            took = await load(conn, args.calls, args.tenants, args.trunks, args.support_calls)
        took["catalogue"] = await apply_bench_catalogue(conn, args.tenants, args.trunks) if args.catalogue else 0.0
        has_catalogue = await load_catalogue(conn) is not None
        if importlib.util.find_spec("pbx_sla.store.kept_requests") is not None:
            # each invocation starts with no support request kept (sql/1720): the warm-up view stores them, as of
            # this run's judging instant (cuts kept by an earlier run judged later would not be used); the dead
            # rows of earlier runs vacuumed, as autovacuum would have by then
            await conn.execute("DELETE FROM support_kept_tenants")
            await conn.execute("VACUUM ANALYZE support_kept_tenants, support_kept_requests, support_kept_uses")
        period = month_period(2026, 3, PRAGUE)
        month_calls = await conn.fetchval(
            "SELECT sum(calls) FROM usage_daily WHERE day BETWEEN $1 AND $2", period.first_day, period.last_day
        )
        tenant, (server, trunk) = "t7", ("pbx1", "trunk-003")

        async def overview_reports() -> Any:
            await current_states(conn)
            trunks_report.as_json(period, await trunks_report.trunk_availability(conn, period))
            return await sla_report.sla_report(conn, period)

        async def overview_page() -> str:
            return pages.overview(month="2026-03", now=NOW, **await overview_data(conn, period))

        async def trunk_reports() -> Any:
            return trunks_report.as_json(
                period, await trunks_report.trunk_availability(conn, period, [(server, trunk)])
            )

        async def trunk_page() -> str:
            data = await trunk_data(conn, period, server, trunk)
            assert data is not None
            return pages.trunk_page(month="2026-03", path="/t", start=period.start, end=period.end, tz=PRAGUE, **data)

        async def tenant_reports() -> Any:
            usage_report.as_json(period, await usage_report.usage_rows(conn, period, tenant))
            return await sla_report.sla_report(conn, period, tenant)

        async def tenant_page() -> str:
            return pages.tenant_page(month="2026-03", path="/x", **await tenant_data(conn, period, tenant))

        figures = await database_figures(conn, NOW)

        async def refresh() -> None:
            fresh = await database_figures(conn, NOW)
            fresh.exposition  # noqa: B018

        refresh_t = await timed(refresh, args.runs)
        if not has_catalogue:
            # no catalogue document, so no request figures: 500 tenants' request gauges, synthetic
            figures = dataclasses.replace(
                figures, requests={f"t{i}": Unreacted(int(i % 3 > 0), int(i % 3 == 2)) for i in range(args.tenants)}
            )
        daemon_metrics = DaemonMetrics(FakeDaemon(figures))
        agi = daemon_metrics.agi
        actions = [("queue", r) for r in ("authorised-number", "pin-ok", "out-of-hours-queue")] + [
            ("general", r) for r in ("unknown-caller", "pin-failed", "pin-locked", "pin-none", "contract-inactive")
        ] + [("closed", "out-of-hours"), ("closed", "out-of-hours-voicemail"), ("fallback", "no-catalogue"),
             ("hangup", "unknown-caller")]  # fmt: skip
        for i, (action, reason) in enumerate(actions):
            for _ in range(i + 1):
                agi.decided(action, reason, 1.5 + i)
        bare = CollectorRegistry()
        ProcessCollector(registry=bare)
        figures.exposition  # noqa: B018  (the daemon renders it in the background after each refresh)
        metrics_text = daemon_metrics.render()
        samples = sum(1 for line in metrics_text.decode().splitlines() if line and not line.startswith("#"))

        async def metrics() -> bytes:
            return daemon_metrics.render()

        async def bare_metrics() -> bytes:
            return generate_latest(bare)

        # the code measured keeps trunk days (pbx_sla.store.trunk_days, sql/1705): time the first view too
        kept_days = importlib.util.find_spec("pbx_sla.store.trunk_days") is not None

        async def forget_kept_days() -> None:
            if kept_days:
                await conn.execute("DELETE FROM trunk_known_days")

        rows = []
        cpus: dict[str, Cpu] = {}
        for label, page_fn, base_fn in (
            ("overview `/`", overview_page, overview_reports),
            (f"trunk `/trunks/{server}/{trunk}`", trunk_page, trunk_reports),
            (f"tenant `/tenants/{tenant}`", tenant_page, tenant_reports),
            (f"`/metrics` ({samples:,} samples)", metrics, bare_metrics),
        ):
            await page_fn()  # warm: first-query plans, imports
            page_t, base_t = [], []
            cpu = Cpu(conn.get_server_pid())
            for _ in range(args.runs):  # alternate page and baseline so both see the same moments of the machine
                page_t.append(await cpu.measure(page_fn))
                base_t += await timed(base_fn, 1)
            rows.append((label, page_t, base_t))
            cpus[label] = cpu
        # the code measured keeps support requests (pbx_sla.store.kept_requests, sql/1720): time the view that
        # derives them all again (nothing kept: after a catalogue change or a late fact before the cuts)
        kept_requests = importlib.util.find_spec("pbx_sla.store.kept_requests") is not None
        if kept_requests:
            unkept_t, unkept_base_t = [], []
            unkept_label = "overview `/`, no support request kept yet (after a catalogue change or a late fact)"
            cpus[unkept_label] = Cpu(conn.get_server_pid())
            for _ in range(args.runs):
                await conn.execute("DELETE FROM support_kept_tenants")
                unkept_t.append(await cpus[unkept_label].measure(overview_page))
                await conn.execute("DELETE FROM support_kept_tenants")
                unkept_base_t += await timed(overview_reports, 1)
            rows.insert(1, (unkept_label, unkept_t, unkept_base_t))
            # a late support call of one tenant, before its cut (a writer's spool replayed after an outage):
            # the next view derives that tenant again, the others' rows stay
            late_t, late_base_t = [], []
            late_label = f"overview `/`, after a late support call of {tenant} (only its requests derived again)"
            cpus[late_label] = Cpu(conn.get_server_pid())
            late = """INSERT INTO support_calls (server, uniqueid, linkedid, decided_at, tenant_id, authorised,
                                                 in_hours, tier, action, reason, queue, requester, caller,
                                                 caller_e164)
                      SELECT 'pbx1', $1, $1, timestamptz '2026-03-05 10:00+01' + $2 * interval '1 minute', $3, true,
                             true, tier, 'queue', 'authorised-number', 'q', 'r' || substr($3, 2),
                             '+4207' || lpad(substr($3, 2), 8, '0'), '+4207' || lpad(substr($3, 2), 8, '0')
                        FROM tenants WHERE id = $3"""
            for n in range(args.runs):
                await overview_page()  # every tenant kept
                await conn.execute(late, f"bench-late-{n}a", 2 * n, tenant)
                late_t.append(await cpus[late_label].measure(overview_page))
                await conn.execute(late, f"bench-late-{n}b", 2 * n + 1, tenant)
                late_base_t += await timed(overview_reports, 1)
            await conn.execute("DELETE FROM support_calls WHERE uniqueid LIKE 'bench-late-%'")  # (forgets all kept)
            await overview_page()
            rows.insert(2, (late_label, late_t, late_base_t))
        # the first view of the month: no trunk day kept yet (sql/1705), every trunk replayed and its days stored
        cold_t, cold_base_t = [], []
        cold_label = "overview `/`, first view (no trunk day kept yet)"
        cpus[cold_label] = Cpu(conn.get_server_pid())
        for _ in range(args.runs if kept_days else 0):
            await forget_kept_days()
            cold_t.append(await cpus[cold_label].measure(overview_page))
            await forget_kept_days()
            cold_base_t += await timed(overview_reports, 1)
        await overview_page()
        if kept_days:
            rows.insert(1, (cold_label, cold_t, cold_base_t))
        size = {"overview": len(await overview_page()), "tenant": len(await tenant_page())}
        profile = ""
        if args.profile:  # one overview render (trunk days kept), top 25 functions by cumulative time
            import cProfile
            import io
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            await overview_page()
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            profile = buf.getvalue()
        reaction = (await sla_report.sla_report(conn, period, None, NOW))["tenants"]
        requests_seen = sum((t.get("reaction") or {}).get("requests", 0) for t in reaction)

        dashboard = Dashboard(dsn, clock=lambda: NOW)
        server_ = HttpServer(
            build_app(HttpSettings(), metrics=daemon_metrics.render, dashboard=dashboard.install), "127.0.0.1", 0
        )
        await server_.start()
        http_rows = []
        async with aiohttp.ClientSession() as http:
            for path in ("/?period=2026-03", f"/trunks/{server}/{trunk}?period=2026-03",
                         f"/tenants/{tenant}?period=2026-03", "/metrics"):  # fmt: skip
                url = f"http://127.0.0.1:{server_.port}{path}"

                async def get(url: str = url) -> None:
                    async with http.get(url) as resp:
                        assert resp.status == 200, (url, resp.status)
                        await resp.read()

                await get()
                http_rows.append((path, await timed(get, args.runs)))
        await server_.close()
        await dashboard.close()
        await conn.close()
        load1, load5, load15 = os.getloadavg()
        out += [
            f"## Dashboard and /metrics, {datetime.now(UTC):%Y-%m-%d %H:%MZ}",
            "",
            f"Data: {args.calls:,} calls (2026-01..06; {month_calls:,} in March), {args.tenants} tenants, "
            f"{args.trunks} trunks on 2 servers, {args.support_calls:,} support calls in March. Loading took "
            f"{took['calls']:.0f} s (calls + rollup), {took['trunks']:.0f} s (trunks), {took['support']:.0f} s "
            "(support calls)" + (f", {took['catalogue']:.0f} s (catalogue)." if args.catalogue else "."),
            "",
            (
                f"Catalogue document applied: `sla` derives support requests ({requests_seen:,} opened in March, "
                "judged as of 2026-03-20 12:00Z, over all tenants)."
                if has_catalogue
                else "No catalogue document: `sla` derives no support requests."
            ),
            "",
            f"Code: `pbx_sla` from {Path(pbx_sla.__file__).parent}. Support requests judged as of "
            + (f"{args.judged_at} (`--judged-at`)." if args.judged_at else "the wall clock."),
            "",
            f"Load average after the runs: {load1:.2f} {load5:.2f} {load15:.2f} (2 cores, shared machine). "
            f"Month 2026-03; {args.runs} runs each, page and baseline alternating.",
            "",
            "| server-side work of one request | median / worst ms | CPU ms per request: Python + PostgreSQL "
            "| baseline | baseline median / worst ms |",
            "|---|---|---|---|---|",
        ]
        for label, page_t, base_t in rows:
            base = (
                "empty registry (process metrics only)" if "metrics" in label else "report functions alone (CLI JSON)"
            )
            out.append(f"| {label} | **{ms(page_t)}** | {cpus[label]} | {base} | {ms(base_t)} |")
        out += [
            f"| background refresh of the database metrics (`database_figures` + rendering) | {ms(refresh_t)} | | | |",
            "",
            f"Page sizes: overview {size['overview']:,} bytes, tenant {size['tenant']:,} bytes; "
            f"/metrics {len(metrics_text):,} bytes.",
            "",
            "Over loopback HTTP (aiohttp server + client in one process, client wall time):",
            "",
            "| request | median / worst ms |",
            "|---|---|",
            *[f"| `GET {path}` | {ms(t)} |" for path, t in http_rows],
            "",
        ]
        if profile:
            out += ["cProfile of one overview render (top 25 by cumulative time):", "", "```", profile, "```", ""]
    finally:
        if not args.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print("\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
