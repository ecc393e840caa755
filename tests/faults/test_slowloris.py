"""Fault run: slowloris against a real ``pbx-sla run`` (subprocess, real PostgreSQL), normal calls meanwhile.

Three kinds of client at once on the FastAGI port:

* drippers: send a header one byte every 0.5 s; the header deadline (``header_timeout = 2``) must close
  them at ~2 s, however long they keep dripping;
* stallers: complete headers, then a ``HANGUP`` line every second and never a reply; the command and
  session deadlines (``session_timeout = 4``) must close them at ~4 s, and each still leaves a
  ``support_calls`` row (action ``hangup``): it was a call;
* callers: normal calls, answered at once, during the attack: each must be decided and stored.

Prints the counts expected vs observed (``pytest -s tests/faults/test_slowloris.py``). Before the fix the
drippers stayed open as long as they dripped and the stallers forever.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

DRIPPERS, STALLERS, CALLERS = 20, 20, 20
HEADER_TIMEOUT, SESSION_TIMEOUT = 2.0, 4.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _head(uniqueid: str) -> bytes:
    return (
        "agi_network_script: support\nagi_request: agi://127.0.0.1/support\nagi_channel: PJSIP/x-1\n"
        f"agi_callerid: +420777000001\nagi_uniqueid: {uniqueid}\nagi_arg_1: +420222000111\n\n"
    ).encode()


async def _closed_after(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds until the server closed the connection: an EOF, or a reset (a session cut by a deadline is
    aborted)."""
    try:
        while await reader.read(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


async def dripper(port: int, i: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    done = asyncio.create_task(_closed_after(reader, started))
    for byte in _head(f"drip.{i}"):
        if done.done():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.5)
    elapsed = await asyncio.wait_for(done, 30)
    writer.close()
    return elapsed


async def staller(port: int, i: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(_head(f"stall.{i}"))
    done = asyncio.create_task(_closed_after(reader, started))
    while not done.done() and time.monotonic() - started < 30:
        try:
            writer.write(b"HANGUP\n")
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(1.0)
    elapsed = await asyncio.wait_for(done, 30)
    writer.close()
    return elapsed


async def caller(port: int, i: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head(f"call.{i}"))
    commands = 0
    while line := await asyncio.wait_for(reader.readline(), 10):
        commands += 1
        writer.write(b"200 result=1 (1.0)\n" if line.startswith(b"GET FULL") else b"200 result=1\n")
    writer.close()
    return commands > 0


async def test_slowloris_is_closed_at_the_deadlines_and_calls_are_kept(db_dsn: str, tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "pbx-sla.toml"
    config.write_text(
        f'[database]\ndsn = "{db_dsn}"\n[daemon]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[agi]\nlisten = "127.0.0.1:{port}"\nheader_timeout = {HEADER_TIMEOUT}\nsession_timeout = {SESSION_TIMEOUT}\n'
    )
    log = (tmp_path / "daemon.log").open("w+")
    env = {**os.environ, "PBX_SLA_CONFIG": str(config)}
    env.pop("PBX_SLA_DSN", None)
    daemon = subprocess.Popen(  # noqa: ASYNC220 - started once, before the run
        [sys.executable, "-m", "pbx_sla.cli", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the daemon did not start listening"
                assert daemon.poll() is None, "the daemon exited"
                await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the probe connection above is a client leaving before its headers
        results = await asyncio.gather(
            *(dripper(port, i) for i in range(DRIPPERS)),
            *(staller(port, i) for i in range(STALLERS)),
            *(caller(port, i) for i in range(CALLERS)),
        )
        drips = results[:DRIPPERS]
        stalls = results[DRIPPERS : DRIPPERS + STALLERS]
        calls = results[DRIPPERS + STALLERS :]
        conn = await asyncpg.connect(db_dsn)
        try:
            rows: list = []
            for _ in range(50):  # the durable writer flushes within a second or two
                rows = await conn.fetch("SELECT uniqueid, action FROM support_calls")
                if len(rows) >= STALLERS + CALLERS:
                    break
                await asyncio.sleep(0.2)
        finally:
            await conn.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
    status = json.loads((tmp_path / "data" / "status.json").read_text())
    stored_calls = sum(1 for r in rows if r["uniqueid"].startswith("call.") and r["action"] != "hangup")
    stored_stalls = sum(1 for r in rows if r["uniqueid"].startswith("stall.") and r["action"] == "hangup")
    stored_drips = sum(1 for r in rows if r["uniqueid"].startswith("drip."))
    report = [
        ("drippers closed by the header deadline", DRIPPERS, sum(t < HEADER_TIMEOUT + 1 for t in drips)),
        ("stallers closed by the session deadline", STALLERS, sum(t < SESSION_TIMEOUT + 1 for t in stalls)),
        ("normal calls answered", CALLERS, sum(calls)),
        ("support_calls rows of normal calls", CALLERS, stored_calls),
        ("support_calls rows of stalled calls (hangup)", STALLERS, stored_stalls),
        ("support_calls rows of drippers (no headers)", 0, stored_drips),
    ]
    print(f"\nslowloris fault run (header_timeout {HEADER_TIMEOUT} s, session_timeout {SESSION_TIMEOUT} s)")
    print(f"{'':48} expected  observed")
    for label, expected, observed in report:
        print(f"{label:48} {expected:8}  {observed:8}")
    print(f"drippers closed after {min(drips):.2f}-{max(drips):.2f} s", end="; ")
    print(f"stallers after {min(stalls):.2f}-{max(stalls):.2f} s")
    print(f"daemon status FastAGI counters: {status['features']['support']}")
    assert code == 0
    assert [(e, o) for _, e, o in report] == [(e, e) for _, e, _ in report]
    assert status["features"]["support"]["session_deadline"] >= STALLERS
