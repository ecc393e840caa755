"""The embedded default: with no DSN, commands start (or reuse) a private PostgreSQL under the data directory."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import asyncpg
import pytest
from private_pg import PrivatePostgres

from pbx_sla.store import embedded


@pytest.fixture
def place():
    """A data directory of our own (outside pytest's 0700 tmp root), its server stopped afterwards."""
    server = PrivatePostgres(prefix="pbx-sla-embedded-")
    yield server
    server.cleanup()


def test_db_upgrade_without_dsn_uses_the_embedded_default(place: PrivatePostgres) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_")}
    env["PBX_SLA_DATA_DIR"] = str(place.data_dir)
    cmd = [sys.executable, "-m", "pbx_sla.cli", "db", "upgrade"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=place.base, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    assert str(place.pgdata) in first.stderr  # says where it is
    assert "Warning" not in first.stderr
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=place.base, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "applied" not in second.stdout and "schema at version" in second.stdout


@pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="no Debian PostgreSQL binaries")
async def test_debian_binaries_fallback(place: PrivatePostgres) -> None:
    dsn = embedded._start_with_debian(place.pgdata)
    assert embedded._start_with_debian(place.pgdata) == dsn  # found running, reused
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "pbx_sla"
    finally:
        await conn.close()
