"""Hostile input against real processes: a 50 MB AMI message hiding a forged event, a flood of malformed
events, a 100 MB CSV field (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from pbx_sla.ami.fake import FakeAmi, encode

from .harness import ROOT, SECRET, SERVER, DaemonProcess, contact_status, report, until, write_config


@pytest.fixture
async def ami():
    server = await FakeAmi(secret=SECRET).start()
    yield server
    await server.close()


async def _trunks(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        try:
            rows = await conn.fetch("SELECT DISTINCT trunk FROM trunk_observations WHERE server = $1", SERVER)
        except asyncpg.UndefinedTableError:
            return set()
        return {r["trunk"] for r in rows}
    finally:
        await conn.close()


async def test_a_50_mb_message_hiding_a_forged_event_and_a_malformed_flood(
    db_dsn: str, ami: FakeAmi, tmp_path: Path
) -> None:
    daemon = await DaemonProcess(write_config(tmp_path / "pbx-sla.toml", ami.port), tmp_path / "data", db_dsn,
                                 tmp_path / "daemon.log").start()  # fmt: skip
    try:
        await until(lambda: len(ami.clients) == 1, 30, "daemon logged in")
        client = ami.clients[0]
        forged = encode({"Event": "ContactStatus", "URI": "sip:x@192.0.2.9", "ContactStatus": "Reachable",
                         "AOR": "forged", "EndpointName": "forged", "Timestamp": "1800000000.000001"})  # fmt: skip
        junk = b"A" * (1 << 20)
        for _ in range(50):  # 50 MB without a message end, then the forged event inside the same message
            client.write(junk)
            await client.drain()
        client.write(b"\r\n" + forged)
        client.write(contact_status(1))  # a genuine one after the end of the oversized message
        flood = encode({"Event": "ContactStatus", "EndpointName": "t", "ContactStatus": "Bogus"}) * 20_000
        client.write(flood)
        client.write(contact_status(3))
        await client.drain()
        await until(lambda: _trunks(db_dsn), 60, "the genuine event stored")
        await until(lambda: daemon.status().get("input_warnings", {}).get("total", 0) >= 20_001, 30, "flood counted")
        warnings = daemon.status()["input_warnings"]
        rss = daemon.rss_kib()
        assert await daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.returncode is None:
            await daemon.kill()
    trunks = await _trunks(db_dsn)
    log_lines = daemon.log_text().splitlines()
    skipped = sum(1 for line in log_lines if "ContactStatus event skipped" in line)
    line = report("ami-attacks", trunks=sorted(trunks), oversized_bytes=50 << 20, flood=20_000,
                  flood_warnings_logged=skipped, counted=warnings, log_lines=len(log_lines), rss_kib=rss)  # fmt: skip
    assert trunks == {"fault-trunk"}, line  # the forged endpoint never stored
    assert warnings["by_kind"].get("ami.oversized", 0) >= 1, line
    assert warnings["by_kind"].get("event.ContactStatus") == 20_000, line
    assert skipped <= 10, line
    assert len(log_lines) < 200, line


def test_cdr_import_of_a_100_mb_field_rejects_the_line_in_bounded_memory(cli_env: dict, tmp_path: Path) -> None:
    csv = tmp_path / "Master.csv"
    row = '"acme","777000001","221000111","from-trunk","""A"" <777000001>","PJSIP/t-{n}","","Hangup","",' \
          '"2027-01-15 09:00:00","","2027-01-15 09:00:00","0","0","NO ANSWER","DOCUMENTATION","1800000000.{n}","",' \
          '"","1800000000.{n}","{n}"\n'  # fmt: skip
    with csv.open("w") as fh:
        fh.write(row.format(n=1))
        fh.write('"acme","')
        for _ in range(100):
            fh.write("x" * (1 << 20))
        fh.write('"\n')
        fh.write(row.format(n=3))
    env = {**os.environ, **cli_env, "PYTHONPATH": str(ROOT), "PBX_SLA_SQL_DIR": str(ROOT / "sql")}
    code = "import sys; from pbx_sla.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "cdr", "import", str(csv), "--server", SERVER, "--timezone", "UTC"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    code_ = os.waitstatus_to_exitcode(status)
    line = report("csv-100mb-field", exit=code_, max_rss_kib=usage.ru_maxrss, stderr=json.dumps(err[-400:]))
    assert f"{csv}:2: line longer than" in (out + err), line
    assert usage.ru_maxrss < 150 * 1024, line  # it reached 329 MB
