"""End to end: `pbx-sla run` watches a real Asterisk while a sipp carrier peer answers, stops and answers
again; the daemon is stopped for a while and restarted; `pbx-sla trunks` over the window must show one
outage of the peer's silence (within the qualify interval), the daemon's absence as unknown, and seconds
that add up to the window.

Run under the machine-wide lock: ``flock /tmp/pbx-sla-e2e.lock .venv/bin/pytest tests/e2e/test_trunks.py -x``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from . import harness
from .daemon import Daemon, daemon_env, pbx_sla, wait_for, write_config

pytestmark = pytest.mark.e2e


def trunks_report(env: dict[str, str], start: datetime, end: datetime) -> dict:
    out = pbx_sla(env, "trunks", "--from", start.isoformat(), "--to", end.isoformat(), "--format", "json")
    assert out.returncode == 0, out.stderr
    return {t["trunk"]: t for t in json.loads(out.stdout)["trunks"]}


async def test_outage_and_daemon_gap_in_the_report(
    asterisk: harness.AsteriskTarget, ami: harness.AmiClient, sipp: harness.Sipp, db, db_dsn: str, tmp_path: Path
) -> None:
    server = asterisk.server_name
    freq, qtimeout = asterisk.qualify_frequency, asterisk.qualify_timeout
    await db.execute("INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420')")
    await db.execute(
        "INSERT INTO trunks (server, name, availability_target, in_catalogue) VALUES ($1, 'trunk-a', 0.999, true)",
        server,
    )
    config = write_config(tmp_path / "pbx-sla.toml", asterisk, extra_server="ping_interval = 1.0\naction_timeout = 5.0")
    env = daemon_env(db_dsn, tmp_path / "data")
    daemon = Daemon(config, env, tmp_path / "daemon.log")

    peer = sipp.trunk_peer("trunk-a").start()
    harness.wait_contact_status(ami, "trunk-a", "Reachable", timeout=freq + qtimeout + 10)
    try:
        daemon.start()
        # session 1 resynced, and its poll saw trunk-a reachable
        resynced_1 = await wait_for(
            db, "SELECT resynced_at FROM ami_sessions WHERE server = $1 AND resynced_at IS NOT NULL", server
        )
        await wait_for(
            db,
            "SELECT at FROM trunk_observations WHERE server = $1 AND trunk = 'trunk-a' AND polled"
            " AND status = 'Reachable'",
            server,
        )
        await asyncio.sleep(3)

        t_stop = datetime.now(UTC)
        peer.stop()
        await wait_for(
            db,
            "SELECT at FROM trunk_observations WHERE server = $1 AND trunk = 'trunk-a' AND source = 'contact'"
            " AND status = 'Unreachable' AND at >= $2",
            server,
            t_stop,
            within=freq + qtimeout + 10,
        )
        await asyncio.sleep(max(0.0, 8 - (datetime.now(UTC) - t_stop).total_seconds()))
        t_restart = datetime.now(UTC)
        peer.start()
        await wait_for(
            db,
            "SELECT at FROM trunk_observations WHERE server = $1 AND trunk = 'trunk-a' AND source = 'contact'"
            " AND status = 'Reachable' AND at >= $2",
            server,
            t_restart,
            within=freq + qtimeout + 10,
        )
        await asyncio.sleep(2)

        assert daemon.stop() == 0
        await asyncio.sleep(6)  # nobody watching: unknown time
        daemon.start()
        resynced_2 = await wait_for(
            db,
            "SELECT resynced_at FROM ami_sessions WHERE server = $1 AND resynced_at > $2",
            server,
            resynced_1,
        )
        await asyncio.sleep(3)
        t_end = datetime.now(UTC)
    finally:
        assert daemon.stop() == 0, (tmp_path / "daemon.log").read_text(errors="replace")[-4000:]

    lost_1 = await db.fetchval(
        "SELECT lost_at FROM ami_sessions WHERE server = $1 AND resynced_at = $2", server, resynced_1
    )
    assert lost_1 is not None
    rows = trunks_report(env, resynced_1, t_end)
    a = rows["trunk-a"]
    total = (t_end - resynced_1).total_seconds()
    parts = a["up_seconds"] + a["down_seconds"] + a["unknown_seconds"] + a["maintenance_seconds"]
    assert parts == pytest.approx(total, abs=1e-3)
    assert a["in_catalogue"] is True and a["target"] == 0.999

    # one outage: it starts when a qualify misses (≤ frequency + timeout after the stop) and ends when one
    # succeeds again (≤ frequency after the restart)
    assert a["outage_count"] == 1, a["outages"]
    outage = a["outages"][0]
    start = datetime.fromisoformat(outage["start"])
    end = datetime.fromisoformat(outage["end"])
    slack = 0.5
    assert t_stop <= start <= t_stop + timedelta(seconds=freq + qtimeout + slack)
    assert t_restart <= end <= t_restart + timedelta(seconds=freq + slack)
    silent = (t_restart - t_stop).total_seconds()
    assert silent - (freq + qtimeout + slack) <= outage["seconds"] <= silent + freq + slack
    assert a["down_seconds"] == pytest.approx(outage["seconds"], abs=1e-6)
    assert a["mttr_seconds"] == pytest.approx(outage["seconds"], abs=1e-6)

    # the daemon's absence: from session 1's end to session 2's resync, never counted as up
    gap = (resynced_2 - lost_1).total_seconds()
    assert gap >= 6
    assert a["unknown_seconds"] == pytest.approx(gap, abs=1e-3)
    assert a["availability"] == pytest.approx(a["up_seconds"] / (a["up_seconds"] + a["down_seconds"]))
    assert a["breach"] is True  # ~8 s down in ~20 s observed

    # trunk-b has no peer: qualified but unreachable, so it is a PBX-only trunk, down whenever watched;
    # the daemon's absence splits its outage in two
    b = rows["trunk-b"]
    assert b["in_catalogue"] is False
    assert b["up_seconds"] == 0 and b["outage_count"] == 2
    assert b["down_seconds"] + b["unknown_seconds"] == pytest.approx(total, abs=1e-3)
    assert "staff" not in rows and "anonymous" not in rows
