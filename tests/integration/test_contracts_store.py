"""apply_catalogue against a real PostgreSQL: idempotency, deactivation, PIN hash reuse, dry-run, revisions."""

from __future__ import annotations

import asyncio
import copy
import json
import tomllib
from decimal import Decimal
from pathlib import Path

import asyncpg

from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.pins import verify_pin
from pbx_sla.store.catalogue import apply_catalogue, load_catalogue

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"


def example() -> dict:
    with EXAMPLE.open("rb") as fh:
        return tomllib.load(fh)


async def counts(db: asyncpg.Connection) -> dict[str, int]:
    tables = [
        "calendars",
        "tiers",
        "tenants",
        "tenant_accountcodes",
        "tenant_dids",
        "tenant_trunks",
        "requesters",
        "requester_phones",
        "maintenance_windows",
        "catalogue_revisions",
        "servers",
        "trunks",
    ]
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


async def test_first_apply_stores_everything(db: asyncpg.Connection) -> None:
    changes = await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    assert changes.revision_id is not None
    assert "tier tier1" in changes.added and "tenant acme" in changes.added
    assert "requester acme/Petr Svoboda" in changes.added
    assert "trunk pbx1/trunk-a" in changes.added and "server pbx1" in changes.added
    assert not changes.changed and not changes.deactivated
    assert await counts(db) == {
        "calendars": 2,
        "tiers": 4,
        "tenants": 2,
        "tenant_accountcodes": 2,
        "tenant_dids": 2,
        "tenant_trunks": 1,
        "requesters": 3,
        "requester_phones": 4,
        "maintenance_windows": 1,
        "catalogue_revisions": 1,
        "servers": 1,
        "trunks": 2,
    }
    tier = await db.fetchrow("SELECT * FROM tiers WHERE name = 'tier3'")
    assert tier["price_per_year"] == Decimal("96000") and tier["out_of_hours"] == "queue:support-oncall"
    assert json.loads(tier["credits"])[1] == {"metric": "availability", "below": "0.995", "percent": "15"}
    pin_hash = await db.fetchval("SELECT pin_hash FROM requesters WHERE name = 'Petr Svoboda'")
    assert pin_hash.startswith("scrypt$") and verify_pin("4711", pin_hash)
    phone = await db.fetchval(
        "SELECT r.name FROM requester_phones p JOIN requesters r ON r.id = p.requester_id WHERE phone = $1",
        "+420221000199",
    )
    assert phone == "Jana Novakova"
    settings = await db.fetchrow("SELECT * FROM catalogue_settings")
    assert (settings["timezone"], settings["country_code"], settings["revision_id"]) == (
        "Europe/Prague",
        "420",
        changes.revision_id,
    )
    during = await db.fetchval("SELECT during FROM maintenance_windows")
    assert during.lower.isoformat() == "2026-11-01T01:00:00+00:00"
    doc = await db.fetchval("SELECT document::text FROM catalogue_revisions")
    assert "4711" not in doc and pin_hash in doc


async def test_reapply_is_no_change(db: asyncpg.Connection) -> None:
    first = await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    hash_before = await db.fetchval("SELECT pin_hash FROM requesters WHERE name = 'Petr Svoboda'")
    second = await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    assert not second, second.lines()
    assert second.revision_id == first.revision_id
    assert await db.fetchval("SELECT count(*) FROM catalogue_revisions") == 1
    assert await db.fetchval("SELECT pin_hash FROM requesters WHERE name = 'Petr Svoboda'") == hash_before


async def test_changes_and_deactivation(db: asyncpg.Connection) -> None:
    await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    data = example()
    data["tiers"]["tier1"]["price_per_year"] = "26000"
    del data["tiers"]["tier4"]
    bistro = data["tenants"].pop(1)
    assert bistro["id"] == "bistro"
    acme = data["tenants"][0]
    acme["requesters"][1]["pin"] = "9999"
    acme["requesters"][0]["phones"] = ["+420777000001"]
    data["trunks"].pop(1)  # trunk-b
    data["maintenance"] = []
    changes = await apply_catalogue(db, parse_catalogue(data, "v2.toml"), "v2.toml")
    assert "tier tier1 (price_per_year)" in changes.changed
    assert "requester acme/Petr Svoboda (pin)" in changes.changed
    assert set(changes.deactivated) >= {
        "tier tier4",
        "tenant bistro",
        "accountcode bistro",
        "did +420221000222",
        "requester bistro/Karel Dvorak",
        "phone +420603000003",
        "phone +420221000199",
        "trunk pbx1/trunk-b (no longer in the catalogue)",
    }
    assert any(d.startswith("maintenance pbx1/trunk-a") for d in changes.deactivated)
    assert await db.fetchval("SELECT active FROM tenants WHERE id = 'bistro'") is False
    assert await db.fetchval("SELECT count(*) FROM tenants") == 2  # deactivated, not deleted
    trunk_b = await db.fetchrow("SELECT active, in_catalogue FROM trunks WHERE name = 'trunk-b'")
    assert (trunk_b["active"], trunk_b["in_catalogue"]) == (True, False)
    pin_hash = await db.fetchval("SELECT pin_hash FROM requesters WHERE name = 'Petr Svoboda'")
    assert verify_pin("9999", pin_hash) and not verify_pin("4711", pin_hash)
    assert await db.fetchval("SELECT count(*) FROM catalogue_revisions") == 2

    # the original file brings everything back: reactivated, not duplicated
    again = await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    assert "tenant bistro (reactivated)" in again.changed
    assert "trunk pbx1/trunk-b (now in the catalogue)" in again.changed
    assert await db.fetchval("SELECT count(*) FROM tenants WHERE active") == 2
    assert await db.fetchval("SELECT count(*) FROM maintenance_windows") == 1


async def test_pbx_only_trunks_are_left_alone(db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO trunks (server, name, in_catalogue) VALUES ('pbx1', 'seen-only', false)")
    await db.execute("INSERT INTO trunks (server, name, in_catalogue) VALUES ('pbx1', 'trunk-b', false)")
    changes = await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    assert "trunk pbx1/trunk-b (now in the catalogue)" in changes.changed
    rows = {r["name"]: (r["active"], r["in_catalogue"]) for r in await db.fetch("SELECT * FROM trunks")}
    assert rows == {"seen-only": (True, False), "trunk-a": (True, True), "trunk-b": (True, True)}


async def test_dry_run_changes_nothing(db: asyncpg.Connection) -> None:
    changes = await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml", dry_run=True)
    assert changes and changes.dry_run and changes.revision_id is None
    assert "tenant acme" in changes.added
    assert all(v == 0 for v in (await counts(db)).values())
    await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    before = await counts(db)
    data = example()
    data["tenants"][0]["employees"] = 60
    preview = await apply_catalogue(db, parse_catalogue(data, "v2.toml"), "v2.toml", dry_run=True)
    assert preview.changed == ["tenant acme (employees)"]
    assert await counts(db) == before
    assert await db.fetchval("SELECT employees FROM tenants WHERE id = 'acme'") == 45


async def test_order_only_change_is_a_new_revision(db: asyncpg.Connection) -> None:
    await apply_catalogue(db, parse_catalogue(example(), "ex.toml"), "ex.toml")
    data = example()
    data["tenants"].reverse()
    changes = await apply_catalogue(db, parse_catalogue(data, "ex.toml"), "ex.toml")
    assert changes.changed == ["catalogue document (order or number formatting)"]
    loaded = await load_catalogue(db)
    assert list(loaded.tenants) == ["bistro", "acme"]


async def test_load_round_trip(db: asyncpg.Connection) -> None:
    assert await load_catalogue(db) is None
    parsed = parse_catalogue(example(), "ex.toml")
    await apply_catalogue(db, parsed, "ex.toml")
    loaded = await load_catalogue(db)
    assert loaded.tiers == parsed.tiers and loaded.calendars == parsed.calendars
    assert loaded.trunks == parsed.trunks and loaded.maintenance == parsed.maintenance
    petr = loaded.tenants["acme"].requesters[1]
    assert petr.pin is None and verify_pin("4711", petr.pin_hash)
    assert loaded.tenants["bistro"] == parsed.tenants["bistro"]


async def test_concurrent_applies_serialise(db_dsn: str) -> None:
    conns = [await asyncpg.connect(db_dsn) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(apply_catalogue(c, parse_catalogue(copy.deepcopy(example()), "ex.toml"), "ex.toml") for c in conns)
        )
        assert sorted(bool(r) for r in results) == [False, True]
        assert await conns[0].fetchval("SELECT count(*) FROM catalogue_revisions") == 1
    finally:
        for c in conns:
            await c.close()
