"""The daemon in-process against a loopback AMI server and a real database: wiring of features, sessions,
status.json, ``pbx-sla status``, SIGTERM, and start-up with the database down."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import sys
import types
from pathlib import Path

import asyncpg
import pytest
from polling import eventually

from pbx_sla import features
from pbx_sla.ami.fake import FakeAmi, encode
from pbx_sla.commands.status import status as status_command
from pbx_sla.config import AsteriskServer, HttpSettings, Secret, Settings
from pbx_sla.log import setup_logging
from pbx_sla.pipeline import Record
from pbx_sla.service import STATUS_FILE, Daemon

SECRET = "daemon-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoteSink:
    kind = "test_note"

    async def write(self, conn: asyncpg.Connection, items) -> None:
        await conn.executemany(
            "INSERT INTO test_notes (server, body) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(i["server"], i["body"]) for i in items],
        )


@pytest.fixture
def test_feature(monkeypatch: pytest.MonkeyPatch):
    """A feature module of the test's own, loaded through the real feature contract."""
    mod = types.ModuleType("pbx_sla_tests.note_feature")
    logins: list[str] = []

    def event_handlers(ctx):
        return {"UserEvent": lambda server, e: [Record("test_note", {"server": server, "body": e["Body"]})]}

    def sinks(ctx):
        return [NoteSink()]

    async def on_login(ctx, server, ami):
        reply = await ami.send({"Action": "Ping"})
        logins.append(reply[0]["Ping"])
        return [Record("test_note", {"server": server, "body": f"login {len(logins)}"})]

    mod.event_handlers, mod.sinks, mod.on_login, mod.logins = event_handlers, sinks, on_login, logins
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setattr(features, "FEATURES", (mod.__name__,))
    return mod


def settings_for(dsn: str, data_dir: Path, ami: FakeAmi) -> Settings:
    server = AsteriskServer(name="pbx1", port=ami.port, secret=Secret(SECRET), ping_interval=0.5, action_timeout=2)
    return Settings(
        config_file=None,
        dsn=Secret(dsn),
        data_dir=data_dir,
        asterisk=(server,),
        agi_port=free_port(),
        http=HttpSettings(listen=("127.0.0.1", 0), refresh_seconds=0.2),
    )


async def test_daemon_collects_records_sessions_status_and_stops_on_sigterm(
    db_dsn: str, db: asyncpg.Connection, tmp_path: Path, test_feature, capsys
) -> None:
    log_stream = io.StringIO()
    setup_logging("info", json=True, stream=log_stream)
    await db.execute("CREATE TABLE test_notes (server text, body text PRIMARY KEY)")
    ami = await FakeAmi(secret=SECRET).start()
    settings = settings_for(db_dsn, tmp_path / "data", ami)
    daemon = Daemon(settings)
    run = asyncio.create_task(daemon.run())
    try:

        async def noted():
            return await db.fetchval("SELECT count(*) FROM test_notes") >= 2

        try:
            await eventually(lambda: ami.logins == 1, timeout=15)
        except AssertionError:
            print(log_stream.getvalue(), file=sys.stderr)
            run.print_stack(file=sys.stderr)
            raise
        ami.broadcast(encode({"Event": "UserEvent", "Body": "hello", "Timestamp": "1700000000.5"}))
        ami.broadcast(encode({"Event": "Newexten", "Extension": "s"}))  # nobody's: skipped cheaply
        await eventually(noted, timeout=15)

        async def snapshot_connected():
            path = settings.data_dir / STATUS_FILE
            if not path.exists():
                return False
            snap = json.loads(path.read_text())
            return snap["servers"][0]["state"] == "connected" and snap["servers"][0]["last_event_at"]

        await eventually(snapshot_connected, timeout=15)
        await status_command(argparse.Namespace(format="json"), settings)
        report = json.loads(capsys.readouterr().out)
        assert report["daemon"]["running"] is True
        assert report["servers"][0]["name"] == "pbx1" and report["servers"][0]["state"] == "connected"
        assert report["backlog"]["database"] == "up"
        assert report["trunks_error"] is None

        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(run, 20) == 0
    finally:
        if not run.done():
            run.cancel()
        await ami.close()

    assert {r["body"] for r in await db.fetch("SELECT body FROM test_notes")} == {"hello", "login 1"}
    rows = await db.fetch("SELECT * FROM ami_sessions")
    assert len(rows) == 1
    row = rows[0]
    assert row["server"] == "pbx1" and row["lost_reason"] == "stopped"
    assert row["login_at"] <= row["resynced_at"] <= row["lost_at"]
    assert test_feature.logins == ["Pong"]
    snap = json.loads((settings.data_dir / STATUS_FILE).read_text())
    assert snap["state"] == "stopped"
    await status_command(argparse.Namespace(format="table"), settings)
    out = capsys.readouterr().out
    assert "daemon not running" in out
    logs = log_stream.getvalue()
    assert str(settings.data_dir) in logs and "pbx1=pbx-sla@127.0.0.1" in logs  # the startup line
    assert SECRET not in logs and SECRET not in json.dumps(snap)


async def test_daemon_started_with_the_database_down_spools_then_delivers(
    pg_server: str, empty_dsn: str, tmp_path: Path, test_feature
) -> None:
    """No database at start: sessions and records go to the spool; the next start (database up) migrates
    and writes them, and closes nothing twice."""
    setup_logging("info", json=True, stream=io.StringIO())
    ami = await FakeAmi(secret=SECRET).start()
    down_dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    settings = settings_for(down_dsn, tmp_path / "data", ami)
    daemon = Daemon(settings)
    run = asyncio.create_task(daemon.run())
    try:
        await eventually(lambda: daemon.writer is not None and daemon.writer.db_ok is False, timeout=15)
        await eventually(lambda: ami.logins == 1, timeout=15)
        ami.broadcast(encode({"Event": "UserEvent", "Body": "while the database was down"}))
        await eventually(lambda: daemon.writer.backlog.total >= 3)  # login note, event, session records
        daemon.stop_event.set()
        assert await asyncio.wait_for(run, 30) == 0
    finally:
        if not run.done():
            run.cancel()
    assert daemon.writer.backlog.spooled >= 3  # login note, event, session records

    conn = await asyncpg.connect(empty_dsn)
    try:
        # the feature's own table; the schema itself comes from the daemon's migrations
        await conn.execute("CREATE TABLE test_notes (server text, body text PRIMARY KEY)")
        settings = settings_for(empty_dsn, tmp_path / "data", ami)
        daemon = Daemon(settings)
        run = asyncio.create_task(daemon.run())

        async def delivered():
            try:
                n = await conn.fetchval("SELECT count(*) FROM ami_sessions WHERE resynced_at IS NOT NULL")
            except asyncpg.UndefinedTableError:
                return False
            return n == 2 and await conn.fetchval("SELECT count(*) FROM test_notes") == 3

        await eventually(delivered, timeout=15)
        daemon.stop_event.set()
        assert await asyncio.wait_for(run, 30) == 0
        bodies = {r["body"] for r in await conn.fetch("SELECT body FROM test_notes")}
        assert bodies == {"while the database was down", "login 1", "login 2"}
        reasons = sorted(r["lost_reason"] for r in await conn.fetch("SELECT lost_reason FROM ami_sessions"))
        assert reasons == ["stopped", "stopped"]
        assert not list((tmp_path / "data" / "spool").glob("0*.jsonl"))
    finally:
        await conn.close()
        await ami.close()


async def test_a_session_left_open_by_a_crash_is_closed_at_its_last_sign_of_life(
    db_dsn: str, db: asyncpg.Connection, tmp_path: Path, test_feature
) -> None:
    setup_logging("info", json=True, stream=io.StringIO())
    await db.execute("CREATE TABLE test_notes (server text, body text PRIMARY KEY)")
    await db.execute(
        """INSERT INTO ami_sessions (server, session_id, login_at, resynced_at, last_seen_at)
           VALUES ('pbx1', 'crashed', '2026-01-01 10:00Z', '2026-01-01 10:00:01Z', '2026-01-01 11:00Z'),
                  ('other', 'not-ours', '2026-01-01 10:00Z', NULL, NULL)"""
    )
    ami = await FakeAmi(secret=SECRET).start()
    daemon = Daemon(settings_for(db_dsn, tmp_path / "data", ami))
    run = asyncio.create_task(daemon.run())
    try:

        async def closed():
            return await db.fetchval("SELECT lost_at FROM ami_sessions WHERE session_id = 'crashed'") is not None

        await eventually(closed, timeout=15)
        daemon.stop_event.set()
        assert await asyncio.wait_for(run, 20) == 0
    finally:
        await ami.close()
    row = await db.fetchrow("SELECT lost_at, lost_reason FROM ami_sessions WHERE session_id = 'crashed'")
    assert row["lost_reason"] == "daemon-crashed" and row["lost_at"].isoformat() == "2026-01-01T11:00:00+00:00"
    assert await db.fetchval("SELECT lost_at FROM ami_sessions WHERE session_id = 'not-ours'") is None
    coverage = await db.fetch("SELECT * FROM ami_coverage WHERE server = 'pbx1' ORDER BY known_from")
    assert coverage[0]["known_to"].isoformat() == "2026-01-01T11:00:00+00:00" and not coverage[0]["live"]


async def test_a_broken_feature_module_stops_the_start_with_exit_2(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = io.StringIO()
    setup_logging("info", json=True, stream=logs)
    monkeypatch.setattr(features, "FEATURES", ("no_such_feature",))
    ami = await FakeAmi(secret=SECRET).start()
    try:
        assert await asyncio.wait_for(Daemon(settings_for(db_dsn, tmp_path / "data", ami)).run(), 20) == 2
    finally:
        await ami.close()
    assert "no_such_feature" in logs.getvalue() and "feature module is broken" in logs.getvalue()
    assert ami.login_attempts == 0


async def test_agi_port_in_use_is_a_start_error_with_exit_2(db_dsn: str, tmp_path: Path) -> None:
    """The real features: the support feature cannot bind its FastAGI port."""
    logs = io.StringIO()
    setup_logging("info", json=True, stream=logs)
    ami = await FakeAmi(secret=SECRET).start()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        settings = settings_for(db_dsn, tmp_path / "data", ami)
        settings = Settings(**{**settings.__dict__, "agi_port": blocker.getsockname()[1]})
        assert await asyncio.wait_for(Daemon(settings).run(), 30) == 2
    finally:
        blocker.close()
        await ami.close()
    assert "daemon cannot start" in logs.getvalue()
    assert json.loads((tmp_path / "data" / STATUS_FILE).read_text())["state"] == "stopped"
