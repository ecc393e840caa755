"""Helpers of the fault suite: the daemon as a subprocess, a steady stream of AMI events, row counts.

The events are ``ContactStatus`` (one ``trunk_observations`` row each: unique timestamps) and ``Cdr`` (one
``cdr_legs`` row each: unique ids), in pairs, so "expected" is simply the number of pairs sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from polling import eventually

from pbx_sla.ami.fake import FakeAmi, encode

ROOT = Path(__file__).resolve().parents[2]
SECRET = "fault-suite-secret"
SERVER = "pbx-fault"
#: the first event's time; event n is at T0 + n ms
T0 = 1_800_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def contact_status(n: int) -> bytes:
    return encode(
        {
            "Event": "ContactStatus",
            "URI": "sip:trunk@192.0.2.1:5060",
            "ContactStatus": "Reachable" if n % 2 else "Unreachable",
            "AOR": "fault-trunk",
            "EndpointName": "fault-trunk",
            "RoundtripUsec": "1500",
            "Timestamp": f"{T0 + n / 1000:.6f}",
        }
    )


def cdr(n: int) -> bytes:
    start = "2027-01-15 09:00:00"
    return encode(
        {
            "Event": "Cdr",
            "AccountCode": "acme",
            "Source": "777000001",
            "Destination": "221000111",
            "DestinationContext": "from-trunk",
            "CallerID": '"Fault" <777000001>',
            "Channel": f"PJSIP/trunk-{n:08x}",
            "DestinationChannel": "",
            "LastApplication": "Hangup",
            "LastData": "",
            "StartTime": start,
            "AnswerTime": "",
            "EndTime": start,
            "Duration": "0",
            "BillableSeconds": "0",
            "Disposition": "NO ANSWER",
            "AMAFlags": "DOCUMENTATION",
            "UniqueID": f"1800000000.{n}",
            "UserField": "",
            "LinkedID": f"1800000000.{n}",
            "Sequence": str(n),
        }
    )


@dataclass
class Producer:
    """``rate`` event pairs a second to the connected client, while its socket keeps up (like Asterisk,
    which blocks on a reader that does not read). ``sent`` counts pairs handed to a connected client."""

    ami: FakeAmi
    rate: int
    sent: int = 0
    paused_ticks: int = 0
    _task: asyncio.Task | None = field(default=None, repr=False)

    def start(self) -> Producer:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        tick = 0.05
        per_tick = max(1, round(self.rate * tick))
        while True:
            await asyncio.sleep(tick)
            clients = list(self.ami.clients)
            if len(clients) != 1:
                continue
            if clients[0].transport.get_write_buffer_size() > 256 << 10:
                self.paused_ticks += 1  # the daemon does not read: hold back
                continue
            data = b"".join(contact_status(n) + cdr(n) for n in range(self.sent, self.sent + per_tick))
            clients[0].write(data)
            self.sent += per_tick

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.sent


async def stored(dsn: str) -> tuple[int, int]:
    """(trunk observations, CDR legs) of the fault server; (0, 0) before the schema exists."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        try:
            obs = await conn.fetchval(
                "SELECT count(*) FROM trunk_observations WHERE server = $1 AND NOT polled", SERVER
            )
            legs = await conn.fetchval("SELECT count(*) FROM cdr_legs WHERE server = $1", SERVER)
        except asyncpg.UndefinedTableError:
            return 0, 0
        return int(obs), int(legs)
    finally:
        await conn.close()


def write_config(path: Path, ami_port: int, *, max_memory: int | None = None) -> Path:
    daemon = f"[daemon]\nmax_memory = {max_memory}\n" if max_memory else ""
    path.write_text(
        f"""{daemon}
[agi]
listen = "127.0.0.1:{free_port()}"

[[asterisk]]
name = "{SERVER}"
host = "127.0.0.1"
port = {ami_port}
username = "pbx-sla"
secret = "{SECRET}"
ping_interval = 5
action_timeout = 5
""",
        encoding="utf-8",
    )
    return path


class DaemonProcess:
    """``pbx-sla run`` from this checkout as a subprocess (its log in ``log``)."""

    def __init__(self, config: Path, data_dir: Path, dsn: str, log: Path) -> None:
        self.config, self.data_dir, self.dsn, self.log = config, data_dir, dsn, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_")}
        env.update(PBX_SLA_DSN=self.dsn, PBX_SLA_DATA_DIR=str(self.data_dir), PYTHONPATH=str(ROOT))
        env["PBX_SLA_SQL_DIR"] = str(ROOT / "sql")  # this checkout's migrations, installed or not
        code = "import sys; from pbx_sla.cli import main; sys.exit(main())"
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, "run", "--config", str(self.config),
                cwd=ROOT, env=env, stdout=out, stderr=out,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        """Resident memory now (VmRSS), KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def status(self) -> dict:
        try:
            return json.loads((self.data_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    async def stop(self, wait_limit: float = 60) -> int:
        """SIGTERM and wait: the exit status."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), wait_limit)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL
        await self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


async def until(predicate, limit: float, what: str, step: float = 0.1) -> None:
    """Await ``predicate()`` (sync or async) true within ``limit`` seconds: :func:`polling.eventually`."""
    await eventually(predicate, timeout=limit, interval=step, what=what)


def report(name: str, **figures: object) -> str:
    """One line with the run's figures, printed (``-s``) and returned for assertion messages."""
    line = f"[fault:{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    return line
