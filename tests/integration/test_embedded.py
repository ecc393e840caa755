"""The embedded default: with no DSN, commands start (or reuse) a private PostgreSQL under the data directory."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.skipif(os.geteuid() != 0 or not embedded._debian_bindirs(), reason="needs root and Debian's binaries")
def test_as_root_a_new_cluster_uses_debian_binaries_and_widens_nothing(place: PrivatePostgres) -> None:
    """pgserver as root widens group/other permissions on every ancestor; Debian's binaries need not."""
    assert embedded.choose_engine(place.pgdata) == "debian"
    before = {p: p.stat().st_mode for p in place.pgdata.parents if p.exists()}
    embedded.ensure_embedded(place.data_dir)
    assert place.pgdata.owner() == "postgres"
    assert {p: p.stat().st_mode for p in before} == before


def test_an_existing_cluster_keeps_its_engine(place: PrivatePostgres, monkeypatch) -> None:
    place.pgdata.mkdir(parents=True)
    (place.pgdata / "PG_VERSION").write_text("16\n")
    monkeypatch.setattr(Path, "owner", lambda self: "pgserver")
    assert embedded.choose_engine(place.pgdata) == "pgserver"
    monkeypatch.setattr(Path, "owner", lambda self: "postgres")
    assert embedded.choose_engine(place.pgdata) == "debian"
