"""The embedded default: with no DSN, commands start (or reuse) a private PostgreSQL under the data directory."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from pbx_sla.store import embedded

PGSERVER_BIN = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def _stop(pgdata: Path) -> None:
    for pg_ctl in glob.glob(str(PGSERVER_BIN / "pgserver" / "pginstall" / "bin" / "pg_ctl")) + glob.glob(
        "/usr/lib/postgresql/*/bin/pg_ctl"
    ):
        owner = pgdata.owner()
        cmd = [pg_ctl, "-D", str(pgdata), "stop", "-m", "immediate"]
        if os.geteuid() == 0 and owner != "root":
            cmd = ["runuser", "-u", owner, "--", *cmd]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return


@pytest.fixture
def data_dir(tmp_path: Path):
    tmp_path.chmod(0o755)  # the PostgreSQL user must traverse it
    yield tmp_path / "data"
    if (tmp_path / "data" / "postgres" / "postmaster.pid").exists():
        _stop(tmp_path / "data" / "postgres")


def test_db_upgrade_without_dsn_uses_the_embedded_default(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_")}
    env["PBX_SLA_DATA_DIR"] = str(data_dir)
    cmd = [sys.executable, "-m", "pbx_sla.cli", "db", "upgrade"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=data_dir.parent, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    assert str(data_dir / "postgres") in first.stderr  # says where it is
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=data_dir.parent, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "applied" not in second.stdout and "schema at version" in second.stdout


@pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="no Debian PostgreSQL binaries")
async def test_debian_binaries_fallback(data_dir: Path) -> None:
    dsn = embedded._start_with_debian(data_dir / "postgres")
    assert embedded._start_with_debian(data_dir / "postgres") == dsn  # found running, reused
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "pbx_sla"
    finally:
        await conn.close()
