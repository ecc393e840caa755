"""A private PostgreSQL that a test may stop and start: never the shared server other tests use.

It lives outside pytest's tmp root on purpose: pytest (re)creates ``/tmp/pytest-of-<user>`` with mode 0700,
and another pytest session on the machine doing so locks the server's own user (``pgserver``/``postgres``)
out of its data directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from pbx_sla.store.embedded import ensure_embedded

SITE = Path(asyncpg.__file__).resolve().parents[1]


def pg_ctl_binary(pgdata: Path) -> str:
    """The pg_ctl of the engine that created the cluster (see pbx_sla.store.embedded.choose_engine)."""
    bundled = SITE / "pgserver" / "pginstall" / "bin" / "pg_ctl"
    if pgdata.owner() == "pgserver" and bundled.exists():
        return str(bundled)
    version = (pgdata / "PG_VERSION").read_text().strip()
    debian = Path(f"/usr/lib/postgresql/{version}/bin/pg_ctl")
    return str(debian if debian.exists() else bundled)


class PrivatePostgres:
    """Started by :meth:`start` (embedded default machinery), stopped and restarted at will."""

    def __init__(self, prefix: str = "pbx-sla-pg-") -> None:
        self.base = Path(tempfile.mkdtemp(prefix=prefix))
        self.base.chmod(0o755)  # the server's user must traverse it
        self.data_dir = self.base / "pg"
        self.pgdata = self.data_dir / "postgres"
        self.dsn = ""

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [pg_ctl_binary(self.pgdata), "-D", str(self.pgdata), *args]
        if os.geteuid() == 0 and self.pgdata.owner() != "root":
            cmd = ["runuser", "-u", self.pgdata.owner(), "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            log = self.pgdata / "restart.log"
            tail = log.read_text()[-1500:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {out.stderr.strip()}\n{tail}")
        return out

    @property
    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def start(self) -> str:
        """First start: initdb + start; later: start the stopped server again (Unix socket only)."""
        if not self.dsn:
            try:
                self.dsn = ensure_embedded(self.data_dir)
            except Exception:  # pgserver's first-use setup (useradd, chmod) can race another test run
                time.sleep(1)
                self.dsn = ensure_embedded(self.data_dir)
        elif not self.running:
            self.pg_ctl("-w", "-l", str(self.pgdata / "restart.log"), "-o", f"-h '' -k {self.pgdata}", "start")
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode)

    def cleanup(self) -> None:
        if self.running:
            self.pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(self.base, ignore_errors=True)
