"""The real daemon in end-to-end tests: `pbx-sla run` as a subprocess against the Asterisk under test.

One launcher for every e2e file, so they all start, configure and stop the daemon the way an administrator
(or systemd, with SIGTERM) does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import harness


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_env(db_dsn: str, data_dir: Path | None = None) -> dict[str, str]:
    """The caller's environment without any ``PBX_SLA_*`` of its own, pointed at the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_")}
    env["PBX_SLA_DSN"] = db_dsn
    if data_dir is not None:
        env["PBX_SLA_DATA_DIR"] = str(data_dir)
    return env


def write_config(
    path: Path,
    asterisk: harness.AsteriskTarget,
    *,
    secret: str | None = None,
    secret_file: Path | None = None,
    agi_listen: str | None = None,
    http_listen: str | None = None,
    http_extra: str = "",
    extra_server: str = "",
    extra: str = "",
) -> Path:
    """A ``pbx-sla.toml`` for ``asterisk``: its AMI (``secret`` inline, or ``secret_file``), a FastAGI
    listen address (default: a free loopback port, i.e. not the one the dialplan uses) and an HTTP one
    (default: a free loopback port, so daemons of parallel runs never meet on the default 9721)."""
    if secret_file is not None:
        credential = f'secret_file = "{secret_file}"'
    else:
        credential = f'secret = "{asterisk.ami_secret if secret is None else secret}"'
    listen = agi_listen or f"127.0.0.1:{free_tcp_port()}"
    http = http_listen or f"127.0.0.1:{free_tcp_port()}"
    path.write_text(
        f"""
[[asterisk]]
name = "{asterisk.server_name}"
host = "{asterisk.ami_host}"
port = {asterisk.ami_port}
username = "{asterisk.ami_username}"
{credential}
{extra_server}

[agi]
listen = "{listen}"

[http]
listen = "{http}"
{http_extra}
{extra}
""",
        encoding="utf-8",
    )
    return path


class Daemon:
    """`pbx-sla run --config CONFIG` as a subprocess logging to ``log``, stopped with SIGTERM."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pbx_sla.cli", "run", "--config", str(self.config)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 30 s: a hang is a failure the caller sees)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code, self.proc = self.proc.returncode, None
        return code

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def pbx_sla(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one ``pbx-sla`` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pbx_sla.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


async def wait_for(db, query: str, *args, within: float = 30.0):
    """Poll ``query`` until it returns something other than NULL or false; that value."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await db.fetchval(query, *args)
        if value is not None and value is not False:
            return value
        await asyncio.sleep(0.2)
    raise TimeoutError(f"nothing for {query!r} {args} within {within} s")
