"""The dashboard over HTTP against a real database: each page's figures equal the CLI's JSON for the same
period, charts have the bars and segments the data implies, errors are pages (400, 404, 503), auth holds."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import aiohttp
import pytest
from test_sla_report import run_cli
from web_data import BISTRO_OVER_DAYS, DAILY, load_month

from pbx_sla.config import HttpSettings, Secret
from pbx_sla.web.dashboard import Dashboard
from pbx_sla.web.server import HttpServer, build_app


class Figures(HTMLParser):
    """Collects (row key, data-key) → data-value, the SVG marks by class, and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str | None, str], str] = {}
        self.marks: list[dict[str, str]] = []
        self.row: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr":
            self.row = a.get("data-tenant") or a.get("data-trunk")
        if "data-key" in a:
            self.values[(self.row, a["data-key"])] = a.get("data-value", "")
        if tag in ("rect", "line"):
            self.marks.append({"tag": tag, **a})

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Figures:
    p = Figures()
    p.feed(html)
    return p


def as_value(v) -> str:
    return "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


@pytest.fixture
async def site(db, db_dsn, cli_env, tmp_path):
    await load_month(db, tmp_path)
    dashboard = Dashboard(db_dsn, clock=lambda: datetime(2026, 11, 20, 12, tzinfo=UTC))
    server = HttpServer(build_app(HttpSettings(), dashboard=dashboard.install), "127.0.0.1", 0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()
    await dashboard.close()


async def get(url: str, **kwargs) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, **kwargs) as resp:
        return resp.status, await resp.text()


async def cli_json(*args: str) -> dict:
    code, text = await run_cli(*args, "--format", "json")
    assert code == 0
    return json.loads(text)


async def test_overview_figures_equal_the_cli(site):
    status, html = await get(site + "/")  # default: this month of the clock, November 2026
    assert status == 200
    page = parse(html)
    sla = await cli_json("sla", "--period", "2026-11")
    trunks = await cli_json("trunks", "--period", "2026-11")
    assert len(sla["tenants"]) == 2 and len(trunks["trunks"]) == 2
    for t in sla["tenants"]:
        for key in ("support_calls", "service_level", "availability"):
            assert page.values[(t["tenant"], key)] == as_value(t[key]), (t["tenant"], key)
        assert page.values[(t["tenant"], "credit")] == t["credit"]["amount"]
        assert page.values[(t["tenant"], "breached")] == as_value(bool(t["breaches"]))
    for t in trunks["trunks"]:
        row = f"{t['server']}/{t['trunk']}"
        for key in ("availability", "target", "down_seconds", "unknown_seconds", "outage_count"):
            assert page.values[(row, key)] == as_value(t[key]), (row, key)
    assert "4711" not in html  # a PIN of the example catalogue: never shown


async def test_trunk_page_timeline_and_outages(site):
    status, html = await get(site + "/trunks/pbx1/trunk-a?period=2026-11")
    assert status == 200
    page = parse(html)
    [trunk] = [t for t in (await cli_json("trunks", "--period", "2026-11"))["trunks"] if t["trunk"] == "trunk-a"]
    for key in ("availability", "up_seconds", "down_seconds", "maintenance_seconds", "outage_count", "mttr_seconds"):
        assert page.values[(None, key)] == as_value(trunk[key]), key
    # up until the maintenance window (1 Nov 02:00-04:00), up, down 10 Nov 10:00-11:00 UTC, up to the end
    segs = [m["class"] for m in page.marks if m["class"].startswith("seg ")]
    assert segs == ["seg seg-up", "seg seg-maintenance", "seg seg-up", "seg seg-down", "seg seg-up"]
    widths = [float(m["width"]) for m in page.marks if m["class"].startswith("seg ")]
    assert sum(widths) == pytest.approx(1000, abs=0.01)
    assert widths[3] == pytest.approx(1000 / 720, abs=0.001)  # one hour of a 720-hour month
    assert "2026-11-10T11:00:00+01:00" in html and "2026-11-10T12:00:00+01:00" in html  # the outage, local


async def test_tenant_page_bars_threshold_and_figures(site):
    status, html = await get(site + "/tenants/bistro?period=2026-11")
    assert status == 200
    page = parse(html)
    bars = [m for m in page.marks if m["class"].startswith("bar")]
    assert [int(b["data-calls"]) for b in bars] == list(DAILY["bistro"].values())
    assert [b["data-day"][-2:] for b in bars if "over" in b["class"]] == [f"{d:02d}" for d in BISTRO_OVER_DAYS]
    [threshold] = [m for m in page.marks if m.get("class") == "threshold"]
    usage = (await cli_json("usage", "--period", "2026-11", "--tenant", "bistro"))["tenants"][0]
    sla = (await cli_json("sla", "--period", "2026-11", "--tenant", "bistro"))["tenants"][0]
    assert usage["calls"] == sum(DAILY["bistro"].values()) and usage["over_tier_days"] == 2
    for key in ("calls", "answered", "asr", "over_tier_days", "tier_by_usage"):
        assert page.values[(None, key)] == as_value(usage[key]), key
    assert page.values[(None, "fee")] == usage["fee"]["amount"]
    for key in ("service_level", "service_level_target", "availability"):
        assert page.values[(None, key)] == as_value(sla[key]), key
    assert page.values[(None, "credit")] == sla["credit"]["amount"]
    # the threshold line sits at 100 on the 0..200 scale (peak 120 → scale top 200)
    plot_top, plot_h = 12, 220 - 30 - 12
    assert float(threshold["y1"]) == pytest.approx(plot_top + plot_h / 2, abs=0.01)


async def test_error_pages(site, db):
    assert (await get(site + "/tenants/nobody"))[0] == 404
    assert (await get(site + "/trunks/pbx1/nope?period=2026-11"))[0] == 404
    status, html = await get(site + "/?period=2026-13")
    assert status == 400 and "--period" in html
    hostile = "/tenants/%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    status, html = await get(site + hostile)
    assert status == 404 and "<script>" not in html and "&lt;script&gt;" in html


async def test_database_away_is_a_503_page(tmp_path):
    dashboard = Dashboard("postgresql://nobody@127.0.0.1:1/none")
    server = HttpServer(build_app(HttpSettings(), dashboard=dashboard.install), "127.0.0.1", 0)
    await server.start()
    try:
        status, html = await get(f"http://127.0.0.1:{server.port}/")
        assert status == 503 and "database" in html
    finally:
        await server.close()
        await dashboard.close()


async def test_basic_auth_on_pages(db_dsn):
    settings = HttpSettings(basic_user="ops", basic_password=Secret("pw"))
    dashboard = Dashboard(db_dsn)
    server = HttpServer(build_app(settings, dashboard=dashboard.install), "127.0.0.1", 0)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
            credential = base64.b64encode(b"ops:pw").decode()
            async with http.get(url, headers={"Authorization": f"Basic {credential}"}) as resp:
                assert resp.status == 200 and re.search("Overview", await resp.text())
    finally:
        await server.close()
        await dashboard.close()
