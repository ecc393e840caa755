"""``pbx-sla erase``: one person's number pseudonymised in every table, the reports unchanged.

The expected rows and fields come from how the test built its calls (which legs it gave the number to),
and the expected token from the database's key hashed here with hashlib, not from the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from test_cdr_import import csv_line, fields, run_cli, seed_catalogue
from test_usage import generate

PERSON = "+420602111222"
PERSONAL_TABLES = ("cdr_legs", "calls", "support_calls", "queue_events", "qos_legs", "catalogue_revisions")


def person_rows() -> tuple[list[str], dict[str, int]]:
    """Legs carrying the person's number in known fields, decoys that only resemble it, expected counts."""
    t0 = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    rows = []
    for i in range(5):  # the person calls in (account code acme): src and clid hold the number
        rows.append(fields(t0 + timedelta(hours=i), acct="acme", src="602111222", uid=f"p{i}.1", linked=f"p{i}.1",
                           clid='"Jana Nováková" <602111222>'))  # fmt: skip
    for i in range(2):  # an agent calls the person (international form): dst holds it
        rows.append(fields(t0 + timedelta(days=1, hours=i), acct="bistro", dst="00420602111222", uid=f"o{i}.1",
                           linked=f"o{i}.1"))  # fmt: skip
    rows.append(fields(t0 + timedelta(days=2), acct="acme", chan="PJSIP/602111222-00000009", uid="c1.1", linked="c1.1"))
    # decoys: a neighbouring number, and the digits inside a longer number
    rows.append(fields(t0 + timedelta(days=3), acct="acme", src="602111223", uid="d1.1", linked="d1.1"))
    rows.append(fields(t0 + timedelta(days=3, hours=1), acct="acme", chan="PJSIP/1602111222-00000001", uid="d2.1",
                       linked="d2.1"))  # fmt: skip
    expected = {"src": 5, "clid": 5, "caller_e164": 5, "dst": 2, "dialled_e164": 2, "channel": 1, "src_endpoint": 1}
    return [csv_line(r) for r in rows], expected


async def seed_support(db: asyncpg.Connection) -> None:
    for uid, caller, name, e164 in (("s1", "602111222", "Jana", PERSON), ("s2", "777000001", "Petr", "+420777000001")):
        await db.execute(
            """INSERT INTO support_calls (server, uniqueid, decided_at, caller, caller_e164, caller_name, channel,
                                          authorised, in_hours, action, reason)
               VALUES ('pbx1', $1, '2026-03-05 10:00Z', $2, $3, $4, 'PJSIP/trunk-a-1', false, true, 'general', 'x')""",
            uid,
            caller,
            e164,
            name,
        )


async def seed_catalogue_history(db: asyncpg.Connection, data_dir: Path) -> None:
    """A removed requester's phone row, an earlier revision and a stale cache holding the number; the
    documents are only read as text by erase (the reports are not run in this test)."""
    rid = await db.fetchval(
        "INSERT INTO requesters (tenant_id, name, active) VALUES ('acme', 'jana', false) RETURNING id"
    )
    await db.execute("INSERT INTO requester_phones (phone, requester_id, active) VALUES ($1, $2, false)", PERSON, rid)
    old_doc = {"requesters": [{"name": "jana", "phones": [PERSON]}]}
    await db.execute(
        "INSERT INTO catalogue_revisions (source, sha256, document) VALUES ('old.toml', 'x', $1::jsonb)",
        json.dumps(old_doc),
    )
    await db.execute(
        "INSERT INTO catalogue_revisions (source, sha256, document) VALUES ('new.toml', 'y', '{\"requesters\": []}')"
    )
    cache = {"revision": 1, "sha256": "x", "database": {"name": "db", "dsn": "d"}, "document": old_doc}
    write_cache(data_dir, json.dumps(cache))


def write_cache(data_dir: Path, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "catalogue-cache.json").write_text(text, encoding="utf-8")


async def dump(db: asyncpg.Connection) -> dict[str, list]:
    """Every row of the tables that may hold personal data, as text (for 'the number is gone')."""
    out = {}
    for table in (*PERSONAL_TABLES, "requester_phones"):
        out[table] = sorted(str(dict(r)) for r in await db.fetch(f"SELECT * FROM {table}"))
    return out


async def usage_json(capsys) -> dict:
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "usage", "--period", "2026-03", "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


async def test_erase_pseudonymises_the_number_everywhere_and_keeps_figures(db, cli_env, tmp_path, capsys):
    await seed_catalogue(db)
    background, _ = generate(2026, 3, 5, 60)
    mine, expected_fields = person_rows()
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(background + mine) + "\n", encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    await seed_support(db)
    key = await db.fetchval("SELECT key FROM pseudonym_key")
    token = "erased:" + hashlib.sha256(key + PERSON.encode()).hexdigest()[:24]

    usage_before = await usage_json(capsys)
    rollup_before = [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")]
    calls_before = {
        (r["server"], r["call_key"]): r
        for r in await db.fetch("SELECT server, call_key, tenant_id, day, disposition, billsec, legs FROM calls")
    }
    before = await dump(db)
    assert sum("602111222" in row for rows in before.values() for row in rows) > 0

    # dry run: the same report, nothing changed
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "erase", "--number", "602 111 222", "--dry-run", "--format", "json") == 0
    dry = json.loads(capsys.readouterr().out)
    assert await dump(db) == before

    assert await asyncio.to_thread(run_cli, "erase", "--number", "602 111 222", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["number"] == PERSON and report["pseudonym"] == token
    tables = {t["table"]: t for t in report["tables"]}
    legs_fields = tables["cdr_legs"]["fields"]
    assert legs_fields == expected_fields
    assert tables["cdr_legs"]["rows"] == 8
    assert tables["calls"] == {"table": "calls", "rows": 7, "fields": {"caller_e164": 5, "dialled_e164": 2}}
    assert tables["support_calls"] == {
        "table": "support_calls",
        "rows": 1,
        "fields": {"caller": 1, "caller_e164": 1, "caller_name": 1},
    }
    assert tables["queue_events"]["rows"] == tables["qos_legs"]["rows"] == 0
    assert report["catalogue"] == {
        "requester_phones_deleted": 0,
        "catalogue_revisions": 0,
        "cache_file_rewritten": False,
    }
    assert {**dry, "dry_run": False} == report

    after = await dump(db)
    # the number is gone everywhere, except inside the longer decoy number
    leftovers = [row for rows in after.values() for row in rows if "602111222" in row]
    assert leftovers and all("1602111222" in row and "602111222" not in row.replace("1602111222", "")
                             for row in leftovers)  # fmt: skip
    assert any("602111223" in row for row in after["cdr_legs"])  # the neighbour is untouched
    assert "Jana" not in str(after["support_calls"]) and "Nováková" not in str(after["cdr_legs"])
    assert "Petr" in str(after["support_calls"])
    assert sum(row.count(token) for row in after["cdr_legs"]) == sum(expected_fields.values())
    assert await db.fetchval("SELECT count(*) FROM calls WHERE caller_e164 = $1", token) == 5

    # figures unchanged: the report, the rollup, every counted field of every call
    assert await usage_json(capsys) == usage_before
    assert [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")] == rollup_before
    calls_after = await db.fetch("SELECT server, call_key, tenant_id, day, disposition, billsec, legs FROM calls")
    assert {(r["server"], r["call_key"]): r for r in calls_after} == calls_before

    # importing the original file again is recognised leg by leg (fingerprints of the original text)
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    assert await dump(db) == after
    capsys.readouterr()

    # erasing again finds nothing left
    assert await asyncio.to_thread(run_cli, "erase", "--number", PERSON, "--format", "json") == 0
    again = json.loads(capsys.readouterr().out)
    assert all(t["rows"] == 0 for t in again["tables"])


async def test_erase_removes_the_number_from_catalogue_history_and_cache(db, cli_env, capsys):
    await seed_catalogue(db)
    data_dir = Path(cli_env["PBX_SLA_DATA_DIR"])
    await seed_catalogue_history(db, data_dir)
    cache_file = data_dir / "catalogue-cache.json"
    before = await dump(db)
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "erase", "--number", PERSON, "--dry-run", "--format", "json") == 0
    dry = json.loads(capsys.readouterr().out)
    assert await dump(db) == before and cache_file.read_text(encoding="utf-8").count(PERSON) == 1
    assert await asyncio.to_thread(run_cli, "erase", "--number", PERSON, "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (
        report["catalogue"]
        == dry["catalogue"]
        == {
            "requester_phones_deleted": 1,
            "catalogue_revisions": 1,
            "cache_file_rewritten": True,
        }
    )
    after = await dump(db)
    assert not any(PERSON in row for rows in after.values() for row in rows)
    assert any(report["pseudonym"] in row for row in after["catalogue_revisions"])
    cache = json.loads(cache_file.read_text(encoding="utf-8"))
    latest = await db.fetchval("SELECT max(id) FROM catalogue_revisions")
    assert cache == {
        "revision": latest,
        "sha256": "y",
        "database": {"name": "db", "dsn": "d"},
        "document": {"requesters": []},
    }
    assert cache_file.stat().st_mode & 0o777 == 0o600


async def test_erase_refuses_catalogue_numbers_and_non_numbers(db, cli_env, capsys):
    await seed_catalogue(db)
    assert await asyncio.to_thread(run_cli, "erase", "--number", "+420777000001") == 1
    err = capsys.readouterr().err
    assert "requester 'someone' of tenant 'acme'" in err and "contracts apply" in err
    assert await asyncio.to_thread(run_cli, "erase", "--number", "221000111") == 1
    assert "DID of tenant 'acme'" in capsys.readouterr().err
    assert await asyncio.to_thread(run_cli, "erase", "--number", "anonymous") == 1
    assert "--number 'anonymous' is not a phone number" in capsys.readouterr().err


async def test_erase_renames_a_phone_recorded_by_the_trunks_feature(db, cli_env, capsys):
    """A desk phone named by its number that answers qualify is recorded like a trunk (``trunks`` with
    ``in_catalogue`` false, ``trunk_observations`` with its contact URI, kept ``trunk_known_days``): erase
    renames it to the token everywhere, and its availability figures stay the same under the new name."""
    from pbx_sla.store.trunks import TrunkObservationSink, observation_record_data

    await seed_catalogue(db)
    await db.execute(
        """INSERT INTO ami_sessions (server, session_id, login_at, resynced_at, last_seen_at, lost_at, lost_reason)
           VALUES ('pbx1', 's1', '2026-03-01T20:00Z', '2026-03-01T20:00:05Z', '2026-03-04T10:00Z',
                   '2026-03-04T10:00Z', 'connection-lost')"""
    )

    def seen(trunk: str, at: str, status: str, key: str) -> dict:
        return observation_record_data(
            server="pbx1", trunk=trunk, at=datetime.fromisoformat(at).replace(tzinfo=UTC), source="contact",
            key=key, status=status, rtt_usec=1000,
        )  # fmt: skip

    contact = "sip:602111222@192.0.2.7:5060"
    async with db.transaction():
        await TrunkObservationSink().write(
            db,
            [
                seen("602111222", "2026-03-01 20:00:01", "Reachable", contact),
                seen("602111222", "2026-03-02 08:00:00", "Unreachable", contact),
                seen("602111222", "2026-03-02 08:45:00", "Reachable", contact),
                seen("trunk-a", "2026-03-01 20:00:01", "Reachable", "sip:carrier@198.51.100.1"),
            ],
        )
    # a catalogue trunk whose name holds another number is a company's: erase refuses it
    await db.execute("INSERT INTO trunks (server, name, in_catalogue) VALUES ('pbx1', '602111333', true)")

    async def trunks_json() -> dict:
        capsys.readouterr()
        assert await asyncio.to_thread(run_cli, "trunks", "--period", "2026-03", "--format", "json") == 0
        return {t["trunk"]: t for t in json.loads(capsys.readouterr().out)["trunks"]}

    before = await trunks_json()  # stores the month's kept days (they are over)
    kept_days = await db.fetchval("SELECT count(*) FROM trunk_known_days WHERE trunk = '602111222'")
    assert kept_days >= 28 and before["602111222"]["down_seconds"] == 45 * 60

    key = await db.fetchval("SELECT key FROM pseudonym_key")
    token = "erased:" + hashlib.sha256(key + PERSON.encode()).hexdigest()[:24]
    assert await asyncio.to_thread(run_cli, "erase", "--number", PERSON, "--format", "json") == 0
    tables = {t["table"]: t for t in json.loads(capsys.readouterr().out)["tables"]}
    assert tables["trunks"] == {"table": "trunks", "rows": 1, "fields": {"name": 1}}
    assert tables["trunk_known_days"] == {
        "table": "trunk_known_days",
        "rows": kept_days,
        "fields": {"trunk": kept_days},
    }
    assert tables["trunk_observations"] == {
        "table": "trunk_observations",
        "rows": 3,
        "fields": {"key": 3, "trunk": 3},
    }
    for table, column in (("trunks", "name"), ("trunk_known_days", "trunk"), ("trunk_observations", "trunk")):
        rows = [str(dict(r)) for r in await db.fetch(f"SELECT * FROM {table}")]
        assert not any("602111222" in row for row in rows), table
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", token) > 0, table
    assert await db.fetchval("SELECT DISTINCT key FROM trunk_observations WHERE trunk = $1", token) == (
        f"sip:{token}@192.0.2.7:5060"
    )

    after = await trunks_json()
    assert "602111222" not in after
    assert {**after.pop(token), "trunk": "602111222"} == before.pop("602111222")
    assert after == before  # the carrier trunk and the catalogue trunk untouched

    assert await asyncio.to_thread(run_cli, "erase", "--number", "602111333") == 1
    assert "names the catalogue trunk '602111333' of server 'pbx1'" in capsys.readouterr().err
