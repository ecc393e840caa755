"""What real Master.csv files break, each with a fixture file written for it (tests/fixtures/cdr/): re-import
under another zone, text fields that are not UTF-8, billable seconds of unanswered legs, legs told apart
only by their sequence, cdr_custom's layout. Expected figures are computed here from the fixture's bytes
(plain :mod:`csv` over Latin-1 text, which keeps every byte), not by pbx-sla."""

from __future__ import annotations

import asyncio
import csv
import re
from pathlib import Path

import asyncpg
from test_cdr_import import run_cli, seed_catalogue

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cdr"
TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", re.ASCII)


def fixture_rows(name: str) -> list[list[str]]:
    """The fixture's records, each byte kept as one character (Latin-1)."""
    return list(csv.reader((FIXTURES / name).read_bytes().decode("latin-1").splitlines()))


def structurally_valid(row: list[str]) -> bool:
    """Times in the exact shape (ASCII digits), durations ASCII digits: what may reject a row."""
    times = [row[9], row[11]] + ([row[10]] if row[10] else [])
    return all(TIME.match(t) for t in times) and row[12].isascii() and row[12].isdigit()


async def cdr_import(path: Path, *args: str) -> int:
    return await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1", *args)


async def totals(db: asyncpg.Connection) -> dict[str, tuple[int, int, int]]:
    """tenant → (calls, answered, billable seconds) from the rollup the reports read."""
    rows = await db.fetch(
        "SELECT coalesce(tenant_id, '-') AS t, sum(calls) AS c, sum(answered) AS a, sum(billsec) AS b"
        " FROM usage_daily GROUP BY 1 HAVING sum(calls) > 0"
    )
    return {r["t"]: (r["c"], r["a"], r["b"]) for r in rows}


async def test_text_fields_not_in_utf8_are_kept_and_only_a_bad_time_rejects(db, cli_env, capsys):
    await seed_catalogue(db)
    rows = fixture_rows("not_utf8.csv")
    good = [r for r in rows if structurally_valid(r)]
    assert len(rows) == 5 and len(good) == 4  # the fixture: one row has a non-ASCII byte in its end time
    recoded = [i + 1 for i, r in enumerate(rows) if not all(f.isascii() for f in r)]
    try_utf8 = [i + 1 for i, line in enumerate((FIXTURES / "not_utf8.csv").read_bytes().splitlines()) if _utf8(line)]
    expected_recoded = [n for n in recoded if n not in try_utf8]

    status = await cdr_import(FIXTURES / "not_utf8.csv")
    out, err = capsys.readouterr()
    assert status == 1  # the bad time
    assert "5 rows read, 4 imported, 0 already present, 1 rejected" in out
    bad_line = next(i + 1 for i, r in enumerate(rows) if not structurally_valid(r))
    assert f"not_utf8.csv:{bad_line}: field 'end'" in err
    assert err.count("field '") == 1  # no other row rejected
    assert f"{len(expected_recoded)} rows held bytes that are not UTF-8 (first at line {expected_recoded[0]})" in err

    # the text is kept: UTF-8 where it is, else each byte as CP1252 (the fixture's non-UTF-8 fields hold no
    # valid multi-byte sequence), so the original bytes can be recovered
    stored = {r["uniqueid"]: r for r in await db.fetch("SELECT uniqueid, clid, lastdata, userfield FROM cdr_legs")}
    for r in good:
        for field, i in (("clid", 4), ("lastdata", 8), ("userfield", 17)):
            assert stored[r[16]][field] == expected_text(r[i].encode("latin-1")), (r[16], field)
    assert stored["1773309600.1"]["clid"] == '"René Müller" <777000001>'
    assert stored["1773313200.3"]["clid"].encode("cp1252") == '"Иван" <777000002>'.encode("cp1251")

    # every structurally valid answered row counts (accountcodes acme / bistro)
    expected: dict[str, list[int]] = {}
    for r in good:
        t = expected.setdefault(r[0], [0, 0, 0])
        t[0] += 1
        t[1] += r[14] == "ANSWERED"
        t[2] += int(r[13]) if r[14] == "ANSWERED" else 0
    assert await totals(db) == {k: tuple(v) for k, v in expected.items()}


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def expected_text(data: bytes) -> str:
    if _utf8(data):
        return data.decode("utf-8")
    undefined = (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # in CP1252: kept as the Latin-1 character of that value
    return "".join(chr(b) if b in undefined else bytes([b]).decode("cp1252") for b in data)


async def test_reimport_under_another_zone_is_refused_and_stores_nothing_twice(db, cli_env, capsys):
    await seed_catalogue(db)  # catalogue zone: Europe/Prague
    path = FIXTURES / "queue_no_answer_billsec.csv"
    assert await cdr_import(path) == 0
    before = await totals(db)
    legs = await db.fetch("SELECT fingerprint, start_at FROM cdr_legs ORDER BY fingerprint")
    capsys.readouterr()

    status = await cdr_import(path, "--timezone", "UTC")
    err = capsys.readouterr().err
    assert status == 1
    assert "refused" in err and "another time zone" in err
    # 10:00 in Prague (CET) was stored as 09:00 UTC: read as UTC it is 10:00, an hour after what is stored
    assert f"{len(legs)} legs of this file are already stored with start times 1 h earlier than zone UTC" in err
    assert await db.fetch("SELECT fingerprint, start_at FROM cdr_legs ORDER BY fingerprint") == legs
    assert await totals(db) == before

    # the same zone again: nothing new, nothing refused
    assert await cdr_import(path, "--timezone", "Europe/Prague") == 0
    assert f"{len(legs)} already present" in capsys.readouterr().out


async def test_billable_seconds_count_only_answered_legs(db, cli_env, capsys):
    await seed_catalogue(db)
    rows = fixture_rows("queue_no_answer_billsec.csv")
    calls: dict[str, list[list[str]]] = {}
    for r in rows:
        calls.setdefault(r[19], []).append(r)
    answered_billsec = sum(int(r[13]) for r in rows if r[14] == "ANSWERED")
    all_billsec = sum(int(r[13]) for r in rows)
    assert answered_billsec < all_billsec  # the fixture's point: NO ANSWER legs with billsec > 0
    answered_calls = sum(any(r[14] == "ANSWERED" for r in legs) for legs in calls.values())

    assert await cdr_import(FIXTURES / "queue_no_answer_billsec.csv") == 0
    assert await totals(db) == {"acme": (len(calls), answered_calls, answered_billsec)}
    by_key = dict(await db.fetch("SELECT call_key, billsec FROM calls"))
    assert by_key == {k: sum(int(r[13]) for r in legs if r[14] == "ANSWERED") for k, legs in calls.items()}

    # the report: billable seconds and ACD from answered legs only
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "usage", "--period", "2026-03", "--tenant", "acme", "--format", "json") == 0
    import json

    (acme,) = json.loads(capsys.readouterr().out)["tenants"]
    assert acme["billable_seconds"] == answered_billsec
    assert acme["acd_seconds"] == round(answered_billsec / answered_calls, 2)


async def test_legs_told_apart_only_by_sequence_are_two_legs(db, cli_env, capsys):
    await seed_catalogue(db)
    rows = fixture_rows("pseudonymised_ring_group.csv")
    distinct = {tuple(r) for r in rows}  # a row written twice is one leg; a different sequence is another
    assert len(distinct) == len(rows) - 1 and len({tuple(r[:20]) for r in rows}) == 2

    assert await cdr_import(FIXTURES / "pseudonymised_ring_group.csv") == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} rows read, {len(distinct)} imported, 1 already present, 0 rejected" in out
    (call,) = await db.fetch("SELECT legs, billsec, disposition FROM calls")
    assert call["legs"] == len(distinct)
    assert call["billsec"] == sum(int(r[13]) for r in distinct if r[14] == "ANSWERED")
    assert call["disposition"] == "ANSWERED"


async def test_cdr_custom_layout_is_named_once_and_refused(db, cli_env, capsys):
    await seed_catalogue(db)
    rows = fixture_rows("cdr_custom_master.csv")
    assert all(len(r) == 19 for r in rows)
    status = await cdr_import(FIXTURES / "cdr_custom_master.csv")
    out, err = capsys.readouterr()
    assert status == 1
    assert err.count("\n") == 1 and "cdr_custom_master.csv:1: cdr_custom's default Master.csv layout" in err
    assert "billsec" not in err and "expected an integer" not in err  # no misleading per-row errors
    assert "0 imported" in out
    assert await db.fetchval("SELECT count(*) FROM cdr_legs") == 0


async def test_migration_1201_recomputes_billable_seconds_already_stored(empty_dsn, cli_env, capsys, monkeypatch):
    """A database that stored calls under the old definition (billsec of every leg) is recomputed by
    sql/1201: calls and the daily rollup then hold answered legs' seconds only."""
    from pbx_sla.store import migrate

    schema = migrate.load()
    before = migrate.Schema([m for m in schema.migrations if m.version < 1201], schema.repeatables)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn, before)
        await seed_catalogue(conn)
        monkeypatch.setenv("PBX_SLA_DSN", empty_dsn)
        assert await cdr_import(FIXTURES / "queue_no_answer_billsec.csv") == 0
        rows = fixture_rows("queue_no_answer_billsec.csv")
        # what the old definition stored: every leg's billsec
        await conn.execute(
            """UPDATE calls c SET billsec = (SELECT sum(billsec) FROM cdr_legs l
                                             WHERE l.fingerprint = ANY (c.leg_fingerprints))"""
        )
        await conn.execute(
            "UPDATE usage_daily u SET billsec = $1 WHERE tenant_id = 'acme'", sum(int(r[13]) for r in rows)
        )
        assert 1201 in [m.version for m in await migrate.upgrade(conn, schema)]
        answered = sum(int(r[13]) for r in rows if r[14] == "ANSWERED")
        assert await conn.fetchval("SELECT sum(billsec) FROM calls") == answered
        assert await totals(conn) == {"acme": (2, 1, answered)}
    finally:
        await conn.close()
