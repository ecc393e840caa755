"""`pbx-sla status`'s verdict on status.json: running, stale, stopped, crashed, absent."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pbx_sla.commands.status import STALE_AFTER, read_daemon_status

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def write(path: Path, *, pid: int, state: str, age: float) -> Path:
    path.write_text(
        json.dumps(
            {"pid": pid, "state": state, "started_at": "x", "updated_at": (NOW - timedelta(seconds=age)).isoformat()}
        )
    )
    return path


#: above the largest pid_max Linux allows (2**22): no such process
DEAD_PID = 2**22 + 1


def test_absent_snapshot(tmp_path: Path) -> None:
    verdict = read_daemon_status(tmp_path / "status.json", NOW)
    assert verdict["running"] is False and "not running" in verdict["message"]


def test_fresh_snapshot_of_a_live_process_is_running(tmp_path: Path) -> None:
    path = write(tmp_path / "status.json", pid=os.getpid(), state="running", age=1.5)
    verdict = read_daemon_status(path, NOW)
    assert verdict["running"] is True and verdict["age_seconds"] == 1.5


def test_old_snapshot_of_a_live_process_is_stale(tmp_path: Path) -> None:
    path = write(tmp_path / "status.json", pid=os.getpid(), state="running", age=STALE_AFTER + 5)
    verdict = read_daemon_status(path, NOW)
    assert verdict["running"] is False and "stale" in verdict["message"]


def test_snapshot_of_a_dead_process_or_a_stopped_daemon_is_not_running(tmp_path: Path) -> None:
    crashed = read_daemon_status(write(tmp_path / "a.json", pid=DEAD_PID, state="running", age=1), NOW)
    stopped = read_daemon_status(write(tmp_path / "b.json", pid=os.getpid(), state="stopped", age=1), NOW)
    assert not crashed["running"] and "not running" in crashed["message"]
    assert not stopped["running"] and "not running" in stopped["message"]


def test_garbage_snapshot_is_named(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text("{not json")
    verdict = read_daemon_status(path, NOW)
    assert verdict["running"] is False and str(path) in verdict["message"]


async def test_status_shows_fastagi_counters_and_pin_lockouts(tmp_path: Path, capsys) -> None:
    import argparse
    import socket

    from pbx_sla.commands.status import status
    from pbx_sla.config import Secret, Settings

    with socket.socket() as s:  # a port nobody listens on: trunks say "database unreachable"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    now = datetime.now(UTC)
    lockout = {"bucket": "tenant:acme", "failures": 20, "limit": 20, "until": 1795000000.0}
    agi = {"sessions": 12, "active": 1, "max_sessions": 768, "rejected_over_cap": 2, "refused_peers": 3,
           "session_deadline": 4, "accept_resource_errors": 0,
           "pin": {"denied": 9, "lockouts_started": 1, "lockouts": [lockout]}}  # fmt: skip
    (tmp_path / "status.json").write_text(json.dumps({
        "pid": os.getpid(), "state": "running", "started_at": now.isoformat(), "updated_at": now.isoformat(),
        "servers": [], "writer": {}, "features": {"support": agi}}))  # fmt: skip
    settings = Settings(config_file=None, dsn=Secret(f"postgresql://x@127.0.0.1:{port}/x"), data_dir=tmp_path)
    assert await status(argparse.Namespace(format="table"), settings) == 0
    out = capsys.readouterr().out
    assert "FastAGI: 12 sessions, 1 active (cap 768), 2 closed over the cap, 3 from peers not allowed" in out
    assert "PIN lockouts: 1 now, 9 guesses refused since start" in out
    assert "tenant:acme: 20/20 wrong PINs, until 2026-11-18T" in out
    assert await status(argparse.Namespace(format="json"), settings) == 0
    assert json.loads(capsys.readouterr().out)["agi"] == agi
