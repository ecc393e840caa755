"""CatalogueWatch: NOTIFY reloads within a second; a database outage keeps the last catalogue; the cache
file serves a daemon started while PostgreSQL is down; reconnection picks up what changed meanwhile."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path

import asyncpg
from polling import eventually

from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.store import migrate
from pbx_sla.store.catalogue import apply_catalogue
from pbx_sla.store.catalogue_watch import CACHE_NAME, CatalogueWatch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"


def example() -> dict:
    with EXAMPLE.open("rb") as fh:
        return tomllib.load(fh)


async def test_notify_reloads_within_a_second(db_dsn: str, tmp_path: Path) -> None:
    watch = CatalogueWatch(tmp_path)
    await watch.start(db_dsn)
    try:
        assert watch.current is None and watch.connected
        conn = await asyncpg.connect(db_dsn)
        try:
            changes = await apply_catalogue(conn, parse_catalogue(example(), "ex.toml"), "ex.toml")
            took = await eventually(lambda: watch.revision == changes.revision_id, timeout=1.0)
            assert set(watch.current.tenants) == {"acme", "bistro"}
            data = example()
            data["tenants"][1]["employees"] = 9
            changes = await apply_catalogue(conn, parse_catalogue(data, "v2.toml"), "v2.toml")
            took = max(took, await eventually(lambda: watch.revision == changes.revision_id, timeout=1.0))
            assert watch.current.tenants["bistro"].employees == 9
        finally:
            await conn.close()
        cached = json.loads((tmp_path / CACHE_NAME).read_text())
        assert cached["revision"] == changes.revision_id
        assert cached["document"]["tenants"][1]["employees"] == 9
        assert not list(tmp_path.glob(".*.tmp"))  # noqa: ASYNC240 - atomic write left nothing behind
    finally:
        await watch.close()
    assert took < 1.0


async def test_listener_called_and_failure_isolated(db_dsn: str, tmp_path: Path) -> None:
    seen = []
    watch = CatalogueWatch(tmp_path)
    watch.add_listener(lambda cat: 1 / 0)
    watch.add_listener(lambda cat: seen.append(sorted(cat.tenants)))
    conn = await asyncpg.connect(db_dsn)
    try:
        await apply_catalogue(conn, parse_catalogue(example(), "ex.toml"), "ex.toml")
    finally:
        await conn.close()
    await watch.start(db_dsn)
    await watch.close()
    assert seen == [["acme", "bistro"]]


async def test_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / CACHE_NAME).write_text("{not json")
    watch = CatalogueWatch(tmp_path, connect_timeout=1)
    await watch.start("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    try:
        assert watch.current is None and not watch.connected
    finally:
        await watch.close()


async def test_outage_keeps_catalogue_cache_serves_restart(private_pg, tmp_path: Path) -> None:
    dsn = private_pg.dsn
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.upgrade(conn)
        first = await apply_catalogue(conn, parse_catalogue(example(), "ex.toml"), "ex.toml")
    finally:
        await conn.close()
    cache_dir = tmp_path / "daemon"
    watch = CatalogueWatch(cache_dir, min_backoff=0.1, max_backoff=0.5, health_interval=0.5, connect_timeout=1)
    await watch.start(dsn)
    try:
        assert watch.revision == first.revision_id
        held = watch.current

        await asyncio.to_thread(private_pg.stop)
        await eventually(lambda: not watch.connected, timeout=5)
        await asyncio.sleep(1)  # the scenario: a few reconnects fail while PostgreSQL is down
        assert watch.current is held and watch.revision == first.revision_id

        # a daemon (re)started while PostgreSQL is down routes with the cached catalogue
        restarted = CatalogueWatch(cache_dir, connect_timeout=1)
        await restarted.start(dsn)
        try:
            assert not restarted.connected
            assert restarted.revision == first.revision_id
            assert restarted.current == held
            assert restarted.current.tenants["acme"].requesters[1].pin_hash.startswith("scrypt$")
        finally:
            await restarted.close()

        # PostgreSQL is back; a change made before the watch reconnects is picked up on reconnect
        await asyncio.to_thread(private_pg.start)
        conn = await asyncpg.connect(dsn)
        try:
            data = example()
            data["tenants"][0]["name"] = "ACME a.s."
            second = await apply_catalogue(conn, parse_catalogue(data, "v2.toml"), "v2.toml")
        finally:
            await conn.close()
        await eventually(lambda: watch.revision == second.revision_id, timeout=10)
        assert watch.connected and watch.current.tenants["acme"].name == "ACME a.s."
    finally:
        await watch.close()


async def test_unreadable_revision_keeps_last_catalogue(db_dsn: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(db_dsn)
    watch = CatalogueWatch(tmp_path)
    try:
        first = await apply_catalogue(conn, parse_catalogue(example(), "ex.toml"), "ex.toml")
        await watch.start(db_dsn)
        held = watch.current
        bad = await conn.fetchval(
            "INSERT INTO catalogue_revisions (source, sha256, document) "
            "VALUES ('future', 'x', '{\"format\": 99}') RETURNING id"
        )
        await conn.execute("SELECT pg_notify('pbx_sla_catalogue', $1)", str(bad))
        await asyncio.sleep(0.5)  # the bad revision is read and refused meanwhile; nothing must change
        assert watch.current is held and watch.revision == first.revision_id and watch.connected
        data = example()
        data["tenants"][0]["employees"] = 46
        second = await apply_catalogue(conn, parse_catalogue(data, "v2.toml"), "v2.toml")
        await eventually(lambda: watch.revision == second.revision_id, timeout=1.0)
        assert watch.current.tenants["acme"].employees == 46
    finally:
        await watch.close()
        await conn.close()


async def _with_catalogue(dsn: str, data_dir: Path) -> int:
    """Apply the example catalogue to ``dsn`` and let a watch write its cache into ``data_dir``."""
    conn = await asyncpg.connect(dsn)
    try:
        revision = (await apply_catalogue(conn, parse_catalogue(example(), "ex.toml"), "ex.toml")).revision_id
    finally:
        await conn.close()
    watch = CatalogueWatch(data_dir)
    await watch.start(dsn)
    await watch.close()
    assert (data_dir / CACHE_NAME).exists()
    return revision


async def test_cache_of_another_database_is_ignored_and_an_empty_database_means_fallback(
    db_dsn: str, empty_dsn: str, tmp_path: Path
) -> None:
    # issue 12: a daemon started on a fresh, empty database routed with another database's cached catalogue
    await _with_catalogue(db_dsn, tmp_path)
    cached = json.loads((tmp_path / CACHE_NAME).read_text())
    assert cached["database"]["name"] == db_dsn.rsplit("/", 1)[1] and cached["database"]["system_identifier"]
    assert cached["database"]["dsn"].startswith("sha256:") and "postgres@" not in json.dumps(cached["database"])
    assert (tmp_path / CACHE_NAME).stat().st_mode & 0o777 == 0o600
    other = CatalogueWatch(tmp_path)
    await other.start(empty_dsn)  # reachable, never migrated, no catalogue
    try:
        assert other.connected and other.current is None and other.revision is None
    finally:
        await other.close()
    assert not (tmp_path / CACHE_NAME).exists()  # nor will the classic script use it


async def test_own_database_emptied_means_fallback(db_dsn: str, tmp_path: Path) -> None:
    await _with_catalogue(db_dsn, tmp_path)
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("TRUNCATE catalogue_revisions CASCADE")
    finally:
        await conn.close()
    watch = CatalogueWatch(tmp_path)
    await watch.start(db_dsn)
    try:
        assert watch.connected and watch.current is None
    finally:
        await watch.close()


async def test_unreachable_database_uses_only_a_cache_naming_the_configured_one(db_dsn: str, tmp_path: Path) -> None:
    revision = await _with_catalogue(db_dsn, tmp_path)
    down = CatalogueWatch(tmp_path, connect_timeout=1, dsn_key=None)
    await down.start("postgresql://nobody@127.0.0.1:1/none")  # another DSN, unreachable: cache not ours
    try:
        assert down.current is None
    finally:
        await down.close()
    from pbx_sla.store.catalogue_cache import dsn_fingerprint

    same = CatalogueWatch(tmp_path, connect_timeout=1, dsn_key=dsn_fingerprint(db_dsn))
    await same.start("postgresql://nobody@127.0.0.1:1/none")  # unreachable, but configured as the cache's
    try:
        assert same.revision == revision and same.current is not None
    finally:
        await same.close()
