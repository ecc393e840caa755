"""End to end: `pbx-sla run` against the real Asterisk: login, status.json and `pbx-sla status`, SIGTERM with
the session recorded as lost; a wrong secret is reported clearly, retried with backoff, and never printed.

Run under the machine-wide lock: ``flock /tmp/pbx-sla-e2e.lock .venv/bin/pytest tests/e2e/test_daemon.py -x``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg
import pytest

from . import harness
from .daemon import Daemon, daemon_env, pbx_sla, write_config

pytestmark = pytest.mark.e2e


def config_for(tmp_path: Path, asterisk: harness.AsteriskTarget, secret: str) -> Path:
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    return write_config(
        tmp_path / "pbx-sla.toml",
        asterisk,
        secret_file=secret_file,
        extra_server="ping_interval = 2\naction_timeout = 5",
        extra=f'[daemon]\ndata_dir = "{tmp_path / "data"}"',
    )


def wait_status(path: Path, predicate, within: float = 30.0) -> dict:
    deadline = time.monotonic() + within
    snap: dict = {}
    while time.monotonic() < deadline:
        if path.exists():
            try:
                snap = json.loads(path.read_text())
            except ValueError:
                snap = {}
            if snap and predicate(snap):
                return snap
        time.sleep(0.2)
    raise TimeoutError(f"status.json never matched; last: {snap}")


async def test_run_logs_in_reports_status_and_stops_cleanly(asterisk, db_dsn: str, tmp_path: Path) -> None:
    config = config_for(tmp_path, asterisk, asterisk.ami_secret)
    env = daemon_env(db_dsn)
    log = tmp_path / "daemon.log"
    status_file = tmp_path / "data" / "status.json"
    daemon = Daemon(config, env, log).start()
    try:
        snap = await asyncio.to_thread(
            wait_status, status_file, lambda s: s["servers"] and s["servers"][0]["resynced"], 60
        )
        server = snap["servers"][0]
        assert server["name"] == asterisk.server_name and server["state"] == "connected"
        assert server["connected_since"] and server["logins"] == 1
        out = await asyncio.to_thread(pbx_sla, env, "--config", str(config), "status", "--format", "json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["daemon"]["running"] is True
        assert report["servers"][0]["state"] == "connected"
        assert report["backlog"]["database"] == "up"
        table = await asyncio.to_thread(pbx_sla, env, "--config", str(config), "status")
        assert table.returncode == 0 and "daemon running" in table.stdout and "connected" in table.stdout
    finally:
        code = daemon.stop()
    assert code == 0, log.read_text()[-3000:]

    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch("SELECT * FROM ami_sessions")
    finally:
        await conn.close()
    assert len(rows) == 1
    row = rows[0]
    assert row["server"] == asterisk.server_name
    assert row["resynced_at"] is not None and row["lost_at"] is not None and row["lost_reason"] == "stopped"
    assert row["login_at"] <= row["resynced_at"] <= row["lost_at"]
    final = json.loads(status_file.read_text())
    assert final["state"] == "stopped" and final["writer"]["memory"] == 0 and final["writer"]["spooled"] == 0
    text = log.read_text()
    assert "pbx-sla daemon starting" in text and str(tmp_path / "data") in text
    assert asterisk.ami_secret not in text and asterisk.ami_secret not in status_file.read_text()


async def test_wrong_secret_is_reported_backs_off_and_is_never_printed(asterisk, db_dsn: str, tmp_path: Path) -> None:
    wrong = "not-the-secret-7f3a9c"
    config = config_for(tmp_path, asterisk, wrong)
    env = daemon_env(db_dsn)
    log = tmp_path / "daemon.log"
    status_file = tmp_path / "data" / "status.json"
    daemon = Daemon(config, env, log).start()
    try:
        await asyncio.to_thread(wait_status, status_file, lambda s: s["servers"][0]["state"] == "auth-failed", 30)
        first = json.loads(status_file.read_text())["servers"][0]["login_attempts"]
        await asyncio.sleep(6.0)
        snap = json.loads(status_file.read_text())  # at most 2 s old
    finally:
        code = daemon.stop()
    assert code == 0
    attempts = snap["servers"][0]["login_attempts"] - first
    # 1 s doubling (±25 %): about 3 more attempts in 6 s; panoramisk's own loop would make ~3 a second
    assert 1 <= attempts <= 4, attempts
    assert snap["servers"][0]["state"] == "auth-failed"
    assert "refused" in snap["servers"][0]["last_error"]
    text = log.read_text()
    refused = [line for line in text.splitlines() if "AMI login refused" in line]
    assert refused and all(asterisk.server_name in line for line in refused)
    assert wrong not in text and wrong not in status_file.read_text()
    out = await asyncio.to_thread(pbx_sla, env, "--config", str(config), "status", "--format", "json")
    assert wrong not in out.stdout + out.stderr
    assert json.loads(out.stdout)["daemon"]["running"] is False
