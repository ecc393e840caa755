"""``pbx_sla_support_requests_open`` / ``_overdue`` scraped over HTTP from the daemon's ``/metrics`` app
against the real PostgreSQL, with the support requests of tests/integration/test_requests_report.py (worked
out by hand there), at three instants: the gauges equal what ``pbx-sla requests --open --now`` lists, per
catalogue tenant (zeros for the others)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from test_requests_report import catalogue, run_cli, store_facts
from test_web_metrics import parse, scrape

from pbx_sla.config import HttpSettings
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.store.catalogue import apply_catalogue
from pbx_sla.web.metrics import DaemonMetrics, DatabaseFigures, database_figures
from pbx_sla.web.server import HttpServer, build_app


class State:
    """What the daemon's /metrics reads; the database figures from the daemon's refresh function."""

    def __init__(self, figures: DatabaseFigures) -> None:
        self.server_statuses: list[Any] = []
        self.writer_figures: dict[str, Any] = {}
        self.database_figures = figures


async def scraped_requests(db, now: str) -> dict[str, tuple[float, float]]:
    state = State(await database_figures(db, datetime.fromisoformat(now)))
    server = HttpServer(build_app(HttpSettings(), metrics=DaemonMetrics(state).render), "127.0.0.1", 0)
    await server.start()
    try:
        status, text = await scrape(server.port)
    finally:
        await server.close()
    assert status == 200
    got = parse(text)
    tenants = {dict(labels)["tenant"] for name, labels in got if name == "pbx_sla_support_requests_open"}
    return {
        t: (got[("pbx_sla_support_requests_open", (("tenant", t),))],
            got[("pbx_sla_support_requests_overdue", (("tenant", t),))])
        for t in tenants
    }  # fmt: skip


async def cli_open(now: str) -> dict[str, tuple[int, int]]:
    code, text = await run_cli("requests", "--period", "2026-12", "--now", now, "--open", "--format", "json")
    assert code == 0, text
    rows = json.loads(text)["requests"]
    assert {r["status"] for r in rows} <= {"open", "overdue"}
    unreacted = Counter(r["tenant"] for r in rows)
    overdue = Counter(r["tenant"] for r in rows if r["status"] == "overdue")
    return {t: (unreacted[t], overdue[t]) for t in unreacted}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # acme's abandoned call of 3 Dec 09:00 (24/7, 4 h): open until 13:00
        ("2026-12-03T10:00:00+01:00", {"acme": (1, 0)}),
        # Saturday: acme's is overdue; bistro's (Friday 19:30, business hours) runs to Monday 13:00
        ("2026-12-05T12:00:00+01:00", {"acme": (1, 1), "bistro": (1, 0)}),
        # Monday 13:00: bistro was called back at 10:15; acme's still overdue
        ("2026-12-07T13:00:00+01:00", {"acme": (1, 1)}),
    ],
)
async def test_request_gauges_equal_the_requests_report(db, cli_env, now, expected) -> None:
    cat = parse_catalogue(catalogue(), "contracts.toml")
    await apply_catalogue(db, cat, "contracts.toml")
    await store_facts(db)
    scraped = await scraped_requests(db, now)
    assert set(scraped) == set(cat.tenants)  # every catalogue tenant, no other label value
    assert await cli_open(now) == expected
    assert {t: v for t, v in scraped.items() if v != (0, 0)} == expected


async def test_no_catalogue_no_request_series(db) -> None:
    assert await scraped_requests(db, "2026-12-07T13:00:00+01:00") == {}
