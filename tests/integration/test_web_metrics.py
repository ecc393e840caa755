"""``/metrics`` of the daemon in-process (loopback AMI, real database) against ``pbx-sla status``, and the
database-derived figures against the ``usage`` report; authentication on the HTTP server."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import asyncpg
from polling import eventually
from prometheus_client.parser import text_string_to_metric_families
from test_cdr_import import run_cli, seed_catalogue
from test_daemon import SECRET, settings_for
from test_usage import generate

from pbx_sla.ami.fake import FakeAmi
from pbx_sla.commands.status import status as status_command
from pbx_sla.config import HttpSettings, Secret
from pbx_sla.log import setup_logging
from pbx_sla.service import Daemon
from pbx_sla.store.trunks import current_states
from pbx_sla.web.metrics import DISPOSITIONS, UNATTRIBUTED, database_figures
from pbx_sla.web.server import HttpServer, build_app, registry_exposition


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(port: int, **kwargs) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics", **kwargs) as resp:
        return resp.status, await resp.text()


async def test_daemon_metrics_match_status(db_dsn: str, db: asyncpg.Connection, tmp_path: Path, capsys) -> None:
    setup_logging("info", json=True, stream=io.StringIO())  # the daemon's log away from the report's stdout
    await seed_catalogue(db)
    ami = await FakeAmi(secret=SECRET).start()
    settings = settings_for(db_dsn, tmp_path / "data", ami)
    daemon = Daemon(settings)
    run = asyncio.create_task(daemon.run())
    try:
        await eventually(lambda: daemon.http is not None and ami.logins == 1, timeout=15)
        port = daemon.http.port

        async def connected_and_refreshed() -> bool:
            status, text = await scrape(port)
            got = parse(text)
            refreshed = ("pbx_sla_figures_refresh_timestamp_seconds", ()) in got
            return status == 200 and got.get(("pbx_sla_ami_up", (("server", "pbx1"),))) == 1 and refreshed

        await eventually(connected_and_refreshed, timeout=20)
        await asyncio.sleep(2.5)  # status.json is rewritten every 2 s: let it catch up with the session
        capsys.readouterr()
        await status_command(argparse.Namespace(format="json"), settings)
        report = json.loads(capsys.readouterr().out)
        _, text = await scrape(port)
        got = parse(text)
        [server] = report["servers"]
        assert got[("pbx_sla_ami_up", (("server", "pbx1"),))] == (server["state"] == "connected") == 1
        assert got[("pbx_sla_ami_reconnects_total", (("server", "pbx1"),))] == server["reconnects"]
        events = sum(v for k, v in got.items() if k[0] == "pbx_sla_ami_events_total")
        assert events >= 1
        # the loopback AMI cannot answer the trunk poll: the session is never resynced, the state unknown
        assert [(t["trunk"], t["state"]) for t in report["trunks"]] == [("trunk-a", "unknown")]
        for trunk in report["trunks"]:
            labels = (("server", trunk["server"]), ("state", trunk["state"] or "unknown"), ("trunk", trunk["trunk"]))
            assert got[("pbx_sla_trunk_state", labels)] == 1
        backlog = report["backlog"]
        assert got[("pbx_sla_writer_backlog_records", (("where", "spooled"),))] == backlog["spooled"] == 0
        assert got[("pbx_sla_writer_dead_letters_total", ())] == backlog["dead_letters"] == 0
        assert got[("pbx_sla_database_up", ())] == 1 and backlog["database"] == "up"
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(run, 20) == 0
    finally:
        if not run.done():
            run.cancel()
        await ami.close()


async def test_figures_equal_the_usage_report_and_status(db, cli_env, tmp_path, capsys) -> None:
    await seed_catalogue(db, bistro_start=date(2026, 11, 10))
    rows, _ = generate(2026, 11, 7, 300)
    path = tmp_path / "Master.csv"
    path.write_text("".join(rows), encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "usage", "--period", "2026-11", "--format", "json") == 0
    usage = json.loads(capsys.readouterr().out)
    figures = await database_figures(db, datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert figures.month == "2026-11"
    expected = {
        (t["tenant"] or UNATTRIBUTED, d): t[d] for t in usage["tenants"] for d in DISPOSITIONS
    }  # fmt: skip
    assert figures.calls == expected
    assert sum(v for (_, d), v in figures.calls.items()) == sum(t["calls"] for t in usage["tenants"]) > 0
    assert list(figures.trunks) == await current_states(db)


async def test_http_authentication_covers_metrics() -> None:
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    Counter("probe", "a probe", registry=registry).inc()
    settings = HttpSettings(listen=("127.0.0.1", 0), token=Secret("tok-123"))
    server = HttpServer(build_app(settings, metrics=registry_exposition(registry)), "127.0.0.1", 0)
    await server.start()
    try:
        status, text = await scrape(server.port)
        assert status == 401 and "probe" not in text
        status, text = await scrape(server.port, headers={"Authorization": "Bearer tok-123"})
        assert status == 200 and "probe_total 1.0" in text
    finally:
        await server.close()
