"""The dashboard in a real headless browser (Debian's chromium through chromedriver, driven by selenium):
every page loads without console errors, its charts have the bars and segments the data implies, the
figures shown equal the CLI's JSON, and a screenshot of each page is kept under ``test-artefacts/``
(git-ignored) for a human to look at.

``scripts/dev test`` installs ``chromium`` and ``chromium-driver``; without them these tests are skipped
with the reason shown.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_sla_report import run_cli
from web_data import BISTRO_OVER_DAYS, DAILY, load_month

from pbx_sla.config import HttpSettings
from pbx_sla.web.dashboard import Dashboard
from pbx_sla.web.server import HttpServer, build_app

ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (scripts/dev test)"
)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def visit(driver, url: str, shot: str) -> None:
    driver.get(url)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTEFACTS / f"{shot}.png"))
    problems = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert problems == [], problems


def values(driver, css: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        e.get_attribute("data-key"): e.get_attribute("data-value") for e in driver.find_elements(By.CSS_SELECTOR, css)
    }


def shown(v) -> str:
    return "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


async def cli_json(*args: str) -> dict:
    code, text = await run_cli(*args, "--format", "json")
    assert code == 0
    return json.loads(text)


@pytest.fixture
async def site(db, db_dsn, cli_env, tmp_path):
    await load_month(db, tmp_path)
    dashboard = Dashboard(db_dsn, clock=lambda: datetime(2026, 11, 20, 12, tzinfo=UTC))
    server = HttpServer(build_app(HttpSettings(), dashboard=dashboard.install), "127.0.0.1", 0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()
    await dashboard.close()


async def test_pages_in_chromium(site):
    from selenium.webdriver.common.by import By

    sla = await cli_json("sla", "--period", "2026-11")
    trunks = await cli_json("trunks", "--period", "2026-11")
    usage = await cli_json("usage", "--period", "2026-11", "--tenant", "bistro")

    def drive() -> None:
        driver = browser()
        try:
            visit(driver, site + "/?period=2026-11", "overview")
            for t in sla["tenants"]:
                got = values(driver, f'#sla tr[data-tenant="{t["tenant"]}"] [data-key]')
                assert got["service_level"] == shown(t["service_level"])
                assert got["availability"] == shown(t["availability"])
                assert got["credit"] == t["credit"]["amount"]
            for t in trunks["trunks"]:
                got = values(driver, f'#trunks-period tr[data-trunk="{t["server"]}/{t["trunk"]}"] [data-key]')
                assert got["availability"] == shown(t["availability"])
                assert got["outage_count"] == shown(t["outage_count"])
            # follow the link to the trunk, as a user would
            driver.find_element(By.LINK_TEXT, "trunk-a").click()
            visit(driver, driver.current_url, "trunk")
            segs = driver.find_elements(By.CSS_SELECTOR, "svg.timeline rect.seg")
            assert [s.get_attribute("class") for s in segs] == [
                "seg seg-up", "seg seg-maintenance", "seg seg-up", "seg seg-down", "seg seg-up"]  # fmt: skip
            # the rendered band spans the chart's width: segments laid out by the browser, not just present
            chart = driver.find_element(By.CSS_SELECTOR, "svg.timeline").rect
            assert sum(s.rect["width"] for s in segs) == pytest.approx(chart["width"] - 2, abs=2)
            [trunk_a] = [t for t in trunks["trunks"] if t["trunk"] == "trunk-a"]
            got = values(driver, ".figure[data-key]")
            assert got["availability"] == shown(trunk_a["availability"])
            assert len(driver.find_elements(By.CSS_SELECTOR, "#outages tbody tr")) == len(trunk_a["outages"]) == 1

            visit(driver, site + "/tenants/bistro?period=2026-11", "tenant")
            bars = driver.find_elements(By.CSS_SELECTOR, "svg.bars rect.bar")
            assert len(bars) == len(DAILY["bistro"]) == 30
            over = driver.find_elements(By.CSS_SELECTOR, "svg.bars rect.bar.over")
            assert [int(b.get_attribute("data-day")[-2:]) for b in over] == list(BISTRO_OVER_DAYS)
            assert all(b.rect["height"] > 0 for b in bars if int(b.get_attribute("data-calls")) > 0)
            assert len(driver.find_elements(By.CSS_SELECTOR, "svg.bars line.threshold")) == 1
            got = values(driver, ".figure[data-key]")
            u = usage["tenants"][0]
            assert (got["calls"], got["over_tier_days"], got["fee"]) == (shown(u["calls"]), "2", u["fee"]["amount"])
        finally:
            driver.quit()

    await asyncio.to_thread(drive)
