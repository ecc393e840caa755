"""Shared fixtures: a real PostgreSQL server, one fresh database per test (cloned from a migrated template).

The server is, in order: ``PBX_SLA_TEST_DSN`` (a DSN with rights to CREATE DATABASE), the machine's server at
127.0.0.1:5432 when it answers (unless ``PBX_SLA_TEST_PG=private``), else a private pgserver under
``$TMPDIR/pbx-sla-test-pg-<uid>`` started for the run (and left running for the next).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from pbx_sla.store import migrate

ROOT = Path(__file__).resolve().parents[1]
LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def _find_server() -> str:
    if os.environ.get("PBX_SLA_TEST_DSN"):
        return os.environ["PBX_SLA_TEST_DSN"]
    if os.environ.get("PBX_SLA_TEST_PG") != "private" and await _answers(LOCAL_DSN):
        return LOCAL_DSN
    from pbx_sla.store.embedded import ensure_embedded

    # under /tmp, not the checkout: the server's own user must reach it (a clone under /root is 0700)
    dsn = await asyncio.to_thread(ensure_embedded, Path(tempfile.gettempdir()) / f"pbx-sla-test-pg-{os.getuid()}")
    return with_database(dsn, "postgres")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_server() -> str:
    """Admin DSN of the PostgreSQL server the tests use."""
    return await _find_server()


@contextlib.asynccontextmanager
async def scratch_database(
    server: str, *, template: str | None = None, prefix: str = "pbx_sla_t_"
) -> AsyncIterator[str]:
    """A new database on ``server`` (a copy of ``template``, else empty), dropped on exit; yields its name."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template_db(pg_server: str):
    """A database with every migration applied, cloned for each test."""
    async with scratch_database(pg_server, prefix=f"pbx_sla_tpl_{os.getpid()}_") as name:
        conn = await asyncpg.connect(with_database(pg_server, name))
        try:
            await migrate.upgrade(conn)
        finally:
            await conn.close()
        yield name


@pytest_asyncio.fixture
async def empty_dsn(pg_server: str):
    """DSN of a fresh, empty database (no migrations)."""
    async with scratch_database(pg_server) as name:
        yield with_database(pg_server, name)


@pytest_asyncio.fixture
async def db_dsn(pg_server: str, template_db: str):
    """DSN of a fresh database holding the whole schema, dropped after the test."""
    async with scratch_database(pg_server, template=template_db) as name:
        yield with_database(pg_server, name)


@pytest_asyncio.fixture
async def db(db_dsn: str):
    """A connection to the test's own database."""
    conn = await asyncpg.connect(db_dsn)
    yield conn
    await conn.close()


@pytest.fixture
def cli_env(db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for running ``pbx-sla`` commands against the test database."""
    monkeypatch.setenv("PBX_SLA_DSN", db_dsn)
    monkeypatch.setenv("PBX_SLA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PBX_SLA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return {"PBX_SLA_DSN": db_dsn, "PBX_SLA_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def private_pg():
    """A started :class:`tests.private_pg.PrivatePostgres` this test may stop and restart."""
    from private_pg import PrivatePostgres  # tests/ is on sys.path (rootdir conftest)

    server = PrivatePostgres()
    server.start()
    yield server
    server.cleanup()
