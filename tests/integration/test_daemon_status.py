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
