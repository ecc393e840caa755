"""The daemon's kept-requests task (pbx_sla.features.support_kept) on PostgreSQL: a run keeps every catalogue
tenant's settled requests, a report then reads them without storing anything and equals the whole-history
derivation; a late fact's deleted rows are derived again by the next run; without a catalogue it does nothing;
a database whose default isolation is REPEATABLE READ still gets them (the task reads in READ COMMITTED).
"""

from __future__ import annotations

from test_kept_requests import DECEMBER, TENANTS, catalogued, fast, full  # noqa: F401  (fixture)
from test_requests_report import ACME, store_facts, support_call, z

from pbx_sla.features import support_kept as feature
from pbx_sla.store.support import SupportCallSink

NOW = z(28, 0)


async def kept(db) -> dict[str, tuple]:
    rows = await db.fetch("SELECT tenant_id, cut, computed_at FROM support_kept_tenants ORDER BY 1")
    return {r["tenant_id"]: (r["cut"], r["computed_at"]) for r in rows}


async def test_a_run_keeps_every_tenant_and_reports_only_read(catalogued, db_dsn):  # noqa: F811
    db = catalogued
    await store_facts(db)
    assert await feature.run_once(db_dsn, now=NOW) == {"tenants": 2, "moved": 2}
    before = await kept(db)
    assert set(before) == set(TENANTS)
    assert await fast(db, DECEMBER, NOW, TENANTS) == await full(db, DECEMBER, NOW, TENANTS)
    assert await kept(db) == before  # read, nothing stored again
    assert await feature.run_once(db_dsn, now=NOW) == {"tenants": 2, "moved": 0}
    # a late support call of acme before its cut deletes acme's rows: the next run derives them again
    await SupportCallSink().write(db, [support_call("late1", z(2, 20), "acme", ACME)])
    assert set(await kept(db)) == {"bistro"}
    assert await feature.run_once(db_dsn, now=NOW) == {"tenants": 2, "moved": 1}
    assert set(await kept(db)) == set(TENANTS)
    assert await fast(db, DECEMBER, NOW, TENANTS) == await full(db, DECEMBER, NOW, TENANTS)


async def test_without_a_catalogue_it_does_nothing(db, db_dsn):
    assert await feature.run_once(db_dsn, now=NOW) == {"tenants": 0, "moved": 0}


async def test_repeatable_read_default(catalogued, db_dsn):  # noqa: F811
    db = catalogued
    await store_facts(db)
    name = await db.fetchval("SELECT current_database()")
    await db.execute(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'")
    assert await feature.run_once(db_dsn, now=NOW) == {"tenants": 2, "moved": 2}
    assert set(await kept(db)) == set(TENANTS)
