"""End to end: ``/metrics`` scraped while `pbx-sla run` watches the real Asterisk with a sipp carrier peer
answering qualify; the AMI session, trunk states, qualify RTT, write backlog and this month's calls equal
what ``pbx-sla status`` and ``pbx-sla usage`` say at the same moment.

Run under the machine-wide lock: ``flock /tmp/pbx-sla-e2e.lock .venv/bin/pytest tests/e2e/test_metrics.py -x``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from . import harness
from .daemon import Daemon, daemon_env, free_tcp_port, pbx_sla, wait_for, write_config

pytestmark = pytest.mark.e2e


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def compare(port: int, env: dict[str, str]) -> list[str]:
    """Differences between one scrape and ``status``/``usage`` taken right after it (empty: all equal)."""
    got = scrape(port)
    out = pbx_sla(env, "status", "--format", "json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    month = datetime.now(UTC).astimezone(ZoneInfo("Europe/Prague")).strftime("%Y-%m")
    out = pbx_sla(env, "usage", "--period", month, "--format", "json")
    assert out.returncode == 0, out.stderr
    usage = json.loads(out.stdout)
    problems = []

    def check(what: str, metric: float | None, expected: float | None) -> None:
        if metric != expected:
            problems.append(f"{what}: metrics {metric} != {expected}")

    for s in status["servers"]:
        labels = (("server", s["name"]),)
        check(f"ami_up {s['name']}", got.get(("pbx_sla_ami_up", labels)), 1 if s["state"] == "connected" else 0)
        check(f"reconnects {s['name']}", got.get(("pbx_sla_ami_reconnects_total", labels)), s["reconnects"])
    for t in status["trunks"]:
        state = t["state"] or "unknown"
        key = ("pbx_sla_trunk_state", (("server", t["server"]), ("state", state), ("trunk", t["trunk"])))
        check(f"state {t['trunk']}", got.get(key), 1)
        rtt = got.get(("pbx_sla_trunk_qualify_rtt_seconds", (("server", t["server"]), ("trunk", t["trunk"]))))
        check(f"rtt {t['trunk']}", rtt, None if t["rtt_ms"] is None else t["rtt_ms"] / 1000)
    b = status["backlog"]
    check("spooled", got.get(("pbx_sla_writer_backlog_records", (("where", "spooled"),))), b["spooled"])
    check("dead letters", got.get(("pbx_sla_writer_dead_letters_total", ())), b["dead_letters"])
    check("database", got.get(("pbx_sla_database_up", ())), 1 if b["database"] == "up" else 0)
    for t in usage["tenants"]:
        for d in ("answered", "busy", "no_answer", "failed", "congestion"):
            key = ("pbx_sla_month_calls", (("disposition", d), ("tenant", t["tenant"] or "(none)")))
            check(f"calls {t['tenant']} {d}", got.get(key), t[d])
    return problems


async def test_metrics_match_status_and_usage(
    asterisk: harness.AsteriskTarget, ami: harness.AmiClient, sipp: harness.Sipp, db, db_dsn: str, tmp_path: Path
) -> None:
    server = asterisk.server_name
    freq, qtimeout = asterisk.qualify_frequency, asterisk.qualify_timeout
    await db.execute("INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420')")
    await db.execute("INSERT INTO trunks (server, name, in_catalogue) VALUES ($1, 'trunk-a', true)", server)
    port = free_tcp_port()
    config = write_config(
        tmp_path / "pbx-sla.toml",
        asterisk,
        http_listen=f"127.0.0.1:{port}",
        http_extra="refresh_seconds = 0.5",
        extra_server="ping_interval = 1.0\naction_timeout = 5.0",
    )
    env = daemon_env(db_dsn, tmp_path / "data")
    daemon = Daemon(config, env, tmp_path / "daemon.log")
    peer = sipp.trunk_peer("trunk-a").start()
    harness.wait_contact_status(ami, "trunk-a", "Reachable", timeout=freq + qtimeout + 10)
    try:
        daemon.start()
        await wait_for(db, "SELECT resynced_at FROM ami_sessions WHERE server = $1 AND resynced_at IS NOT NULL", server)

        def up_in_metrics() -> dict:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    got = scrape(port)
                except OSError:
                    got = {}
                if got.get(("pbx_sla_trunk_state", (("server", server), ("state", "up"), ("trunk", "trunk-a")))) == 1:
                    return got
                time.sleep(0.3)
            raise TimeoutError(f"trunk-a never up in /metrics; daemon log:\n{daemon.log_tail()}")

        got = await asyncio.to_thread(up_in_metrics)
        assert got[("pbx_sla_ami_up", (("server", server),))] == 1
        assert sum(v for k, v in got.items() if k[0] == "pbx_sla_ami_events_total") > 0
        assert got[("pbx_sla_trunk_qualify_rtt_seconds", (("server", server), ("trunk", "trunk-a")))] > 0
        # status.json is rewritten every 2 s and the figures every 0.5 s; qualify moves the RTT: a few tries
        problems: list[str] = []
        for _ in range(10):
            problems = await asyncio.to_thread(compare, port, env)
            if not problems:
                break
            await asyncio.sleep(0.5)
        assert problems == []
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
        peer.stop()
