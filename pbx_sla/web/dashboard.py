"""The read-only dashboard: routes, and the report calls behind each page.

Each page calls the CLI's report functions (:mod:`pbx_sla.reports`) for the period asked
(``?period=YYYY-MM``, default this month in the catalogue's zone) and renders their JSON documents with
:mod:`pbx_sla.web.pages`: one computation, the same figures as ``pbx-sla trunks/usage/sla --format json``.
The database is read through a small pool opened on first use; while PostgreSQL is away a page answers
503 and says so.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from aiohttp import web

from pbx_sla.errors import ConfigError
from pbx_sla.log import get_logger
from pbx_sla.reports import sla as sla_report
from pbx_sla.reports import trunks as trunks_report
from pbx_sla.reports import usage as usage_report
from pbx_sla.reports.period import Period, parse_period
from pbx_sla.store.settings import catalogue_timezone
from pbx_sla.store.trunks import current_states
from pbx_sla.web import pages
from pbx_sla.web.metrics import current_month

log = get_logger(__name__)

HTML = "text/html"
#: the pages' connections: PostgreSQL's JIT compiles the support-outcome query (cost above jit_above_cost) for
#: ~1 s on every page view, more than the query itself takes; and every statement is planned for its
#: parameters: these long-lived connections run each report statement again and again, and after five runs
#: PostgreSQL may switch to a generic plan, which for the month's support aggregate estimates 2 rows instead of
#: 50,000 and probes the tenants and tiers per call (90 ms of server CPU per overview instead of 16;
#: bench/results/web.md). Planning the dozen statements of a page costs about a millisecond.
SERVER_SETTINGS = {"jit": "off", "plan_cache_mode": "force_custom_plan", "application_name": "pbx-sla web"}


async def overview_data(conn: asyncpg.Connection, period: Period) -> dict[str, Any]:
    """The overview's documents: current trunk states, the ``trunks`` and the ``sla`` reports (the trunks
    summarised once, for both)."""
    states = [
        {**s, "since": s["since"].astimezone(period.tz) if isinstance(s.get("since"), datetime) else s.get("since")}
        for s in await current_states(conn)
    ]
    rows = await trunks_report.trunk_availability(conn, period)
    return {
        "states": states,
        "trunks": trunks_report.as_json(period, rows),
        "sla": await sla_report.sla_report(conn, period, trunk_rows=rows),
    }


async def trunk_data(conn: asyncpg.Connection, period: Period, server: str, trunk: str) -> dict[str, Any] | None:
    rows = await trunks_report.trunk_availability(conn, period, [(server, trunk)])
    if not rows:
        return None
    doc = trunks_report.as_json(period, rows)
    return {"period": doc["period"], "trunk": doc["trunks"][0], "timeline": rows[0].summary.timeline}


async def tenant_data(conn: asyncpg.Connection, period: Period, tenant: str) -> dict[str, Any]:
    """``usage`` and ``sla`` for one tenant, and its tier's calls-per-day threshold (ConfigError: unknown)."""
    usage = usage_report.as_json(period, await usage_report.usage_rows(conn, period, tenant))
    sla = await sla_report.sla_report(conn, period, tenant)
    row = usage["tenants"][0]
    threshold = await conn.fetchval("SELECT max_calls_per_day FROM tiers WHERE name = $1", row["tier"])
    return {"period": usage["period"], "usage": row, "sla": sla["tenants"][0], "threshold": threshold}


class Dashboard:
    """The dashboard's routes over one DSN; :meth:`install` adds them to an aiohttp application."""

    def __init__(self, dsn: str, *, clock: Any = None) -> None:
        self.dsn = dsn
        self.clock = clock or (lambda: datetime.now(UTC))
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    def install(self, app: web.Application) -> None:
        app.router.add_get("/", self.overview)
        app.router.add_get("/trunks/{server}/{trunk}", self.trunk)
        app.router.add_get("/tenants/{tenant}", self.tenant)

    async def pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=2, timeout=10, server_settings=SERVER_SETTINGS
                )
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _period(self, conn: asyncpg.Connection, request: web.Request) -> tuple[Period, str | None]:
        tz = await catalogue_timezone(conn)
        month = request.query.get("period") or None
        if month is None:
            period = current_month(tz, self.clock())
            return period, period.first_day.strftime("%Y-%m")
        return parse_period(month, None, None, tz), month

    async def _render(self, request: web.Request, page: Any) -> web.Response:
        try:
            pool = await self.pool()
            async with pool.acquire(timeout=10) as proxy:
                conn = cast(asyncpg.Connection, proxy)  # a pooled connection proxies every method the reports use
                period, month = await self._period(conn, request)
                status, html = await page(conn, period, month)
        except ConfigError as exc:
            status, html = 400, pages.error_page(400, str(exc))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("dashboard cannot read the database", path=request.path, error=f"{type(exc).__name__}: {exc}")
            status, html = 503, pages.error_page(503, "The database does not answer; try again shortly.")
        return web.Response(status=status, text=html, content_type=HTML, charset="utf-8")

    async def overview(self, request: web.Request) -> web.Response:
        async def page(conn: asyncpg.Connection, period: Period, month: str | None) -> tuple[int, str]:
            data = await overview_data(conn, period)
            return 200, pages.overview(month=month, now=self.clock().astimezone(period.tz), **data)

        return await self._render(request, page)

    async def trunk(self, request: web.Request) -> web.Response:
        server, trunk = request.match_info["server"], request.match_info["trunk"]

        async def page(conn: asyncpg.Connection, period: Period, month: str | None) -> tuple[int, str]:
            data = await trunk_data(conn, period, server, trunk)
            if data is None:
                return 404, pages.error_page(404, f"No trunk {trunk!r} on server {server!r}.")
            return 200, pages.trunk_page(
                month=month, path=request.path, start=period.start, end=period.end, tz=period.tz, **data
            )

        return await self._render(request, page)

    async def tenant(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]

        async def page(conn: asyncpg.Connection, period: Period, month: str | None) -> tuple[int, str]:
            try:
                data = await tenant_data(conn, period, tenant)
            except ConfigError:
                return 404, pages.error_page(404, f"No tenant {tenant!r} in the catalogue.")
            return 200, pages.tenant_page(month=month, path=request.path, **data)

        return await self._render(request, page)
