"""``cdr import`` and the leg/call store against a real PostgreSQL: bad rows reported by physical line,
good rows kept, idempotent re-import, AMI+CSV overlap, stored calls equal to the definitions computed
independently (tests/calls_model.py)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from calls_model import Directory, build_calls

from pbx_sla import cli
from pbx_sla.domain.cdr import LegRow, LocalClock, leg_to_data, read_leg
from pbx_sla.domain.phone import normalise
from pbx_sla.features import calls as feature
from pbx_sla.ingest.staging import stage_line
from pbx_sla.store.calls import (
    CdrLegSink,
    StoreResult,
    reattribute_unattributed,
    store_staging_text,
)

PRAGUE = ZoneInfo("Europe/Prague")

#: (name, price, max_calls_per_day, max_employees); small thresholds so generated months cross them
TIERS = [
    ("tier1", Decimal("25000"), 3, 20),
    ("tier2", Decimal("46000"), 10, 50),
    ("tier3", Decimal("96000"), 1000, 100),
    ("tier4", Decimal("190000"), None, None),
]
TENANTS = {  # id -> (tier, employees, accountcode, DID, requester phone)
    "acme": ("tier3", 45, "acme", "+420221000111", "+420777000001"),
    "bistro": ("tier1", 8, "bistro", "+420221000222", "+420603000003"),
}


async def seed_catalogue(conn: asyncpg.Connection, bistro_start: date = date(2026, 3, 10)) -> None:
    """A small catalogue written straight into the tables (independent of `contracts apply`)."""
    await conn.execute("INSERT INTO catalogue_settings (timezone, country_code) VALUES ('Europe/Prague', '420')")
    await conn.execute("INSERT INTO calendars (name, always, hours) VALUES ('always', true, '{}')")
    for name, price, calls, employees in TIERS:
        await conn.execute(
            """INSERT INTO tiers (name, price_per_year, currency, max_calls_per_day, max_employees, calendar,
                                  queue, priority, out_of_hours, answer_target_seconds)
               VALUES ($1, $2, 'CZK', $3, $4, 'always', 'q', 1, 'closed', 30)""",
            name,
            price,
            calls,
            employees,
        )
    for tid, (tier, employees, acct, did, phone) in TENANTS.items():
        start = bistro_start if tid == "bistro" else date(2020, 1, 1)
        await conn.execute(
            "INSERT INTO tenants (id, name, tier, employees, contract_start) VALUES ($1, $1, $2, $3, $4)",
            tid,
            tier,
            employees,
            start,
        )
        await conn.execute("INSERT INTO tenant_accountcodes (accountcode, tenant_id) VALUES ($1, $2)", acct, tid)
        await conn.execute("INSERT INTO tenant_dids (did, tenant_id) VALUES ($1, $2)", did, tid)
        rid = await conn.fetchval("INSERT INTO requesters (tenant_id, name) VALUES ($1, 'someone') RETURNING id", tid)
        await conn.execute("INSERT INTO requester_phones (phone, requester_id) VALUES ($1, $2)", phone, rid)
    await conn.execute("INSERT INTO trunks (server, name, in_catalogue) VALUES ('pbx1', 'trunk-a', true)")


def directory() -> Directory:
    return Directory(
        accountcodes={v[2]: k for k, v in TENANTS.items()},
        dids={v[3]: k for k, v in TENANTS.items()},
        phones={v[4]: k for k, v in TENANTS.items()},
        country_code="420",
        trunks=frozenset({"trunk-a"}),
    )


def csv_leg(server: str, row: list[str], tz: ZoneInfo = PRAGUE) -> LegRow:
    """A Master.csv row read as ``cdr import`` reads it."""
    return read_leg(server, row, LocalClock(tz))


def csv_line(fields: list[str]) -> str:
    """A row as cdr_csv writes it: every text field quoted, quotes doubled, integers bare."""
    out = []
    for i, f in enumerate(fields):
        if i in (12, 13, 20) and f.isdigit():
            out.append(f)
        elif i in (9, 10, 11) and f == "":
            out.append("")
        else:
            out.append('"' + f.replace('"', '""') + '"')
    return ",".join(out) + "\n"


def fields(start: datetime, *, billsec: int = 30, disp: str = "ANSWERED", acct: str = "", src: str = "100",
           dst: str = "s", uid: str = "1.1", linked: str = "1.1", seq: int = 1, clid: str | None = None,
           chan: str = "PJSIP/trunk-a-00000001", tz: ZoneInfo = PRAGUE) -> list[str]:  # fmt: skip
    """A 21-field Master.csv row for a leg starting at the aware ``start``."""
    ring = 5
    end = start + timedelta(seconds=ring + billsec)

    def local(t: datetime) -> str:
        return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

    answer = local(start + timedelta(seconds=ring)) if disp == "ANSWERED" else ""
    return [acct, src, dst, "from-trunk", clid if clid is not None else f'"Caller" <{src}>', chan,
            "PJSIP/agent-00000002", "Dial", "PJSIP/agent,30", local(start), answer, local(end),
            str(ring + billsec), str(billsec if disp == "ANSWERED" else 0), disp, "DOCUMENTATION", uid, "", "",
            linked, str(seq)]  # fmt: skip


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


T0 = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


async def test_bad_rows_are_reported_by_physical_line_and_good_rows_land(db, cli_env, tmp_path, capsys):
    await seed_catalogue(db)
    good = [fields(T0 + timedelta(minutes=i), uid=f"{i}.1", linked=f"{i}.1", dst="221000111") for i in range(3)]
    quoted = fields(T0, uid="9.1", linked="9.1", clid='"Jan ""Honza""\nNovák" <777000001>', src="777000001")
    bad_date = fields(T0, uid="10.1", linked="10.1")
    bad_date[9] = "2026-13-40 25:00:00"
    bad_number = fields(T0, uid="11.1", linked="11.1")
    bad_number[13] = "12x"
    lines = [
        csv_line(good[0]),  # 1
        csv_line(quoted),  # 2-3 (newline inside the caller name)
        csv_line(bad_date),  # 4
        csv_line(good[1])[:60] + "\n",  # 5: truncated row, cut inside a quoted field
        csv_line(bad_number),  # 6
        '"a","b","c"\n',  # 7: wrong field count
    ]
    data = "".join(lines).encode() + csv_line(good[1]).replace("Caller", "Caf\udcff").encode(
        "utf-8", "surrogateescape"
    )  # 8: not UTF-8 (kept: the byte read as CP1252)
    data += csv_line(good[2]).encode()  # 9
    path = tmp_path / "Master.csv"
    path.write_bytes(data)

    status = await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1")
    out, err = capsys.readouterr()
    assert status == 1
    assert f"{path}:4: field 'start'" in err
    assert f"{path}:5: " in err and "unterminated" in err
    assert f"{path}:6: field 'billsec'" in err
    assert f"{path}:7: " in err and "got 3" in err
    assert f"{path}: warning: 1 rows held bytes that are not UTF-8 (first at line 8)" in err
    for ok_line in (1, 2, 3, 8, 9):
        assert f"{path}:{ok_line}:" not in err
    assert "9 rows read" not in out  # 8 records: the quoted row spans two physical lines
    assert "8 rows read, 4 imported, 0 already present, 4 rejected" in out
    assert await db.fetchval("SELECT count(*) FROM cdr_legs") == 4
    assert await db.fetchval("SELECT clid FROM cdr_legs WHERE uniqueid = '1.1'") == '"Cafÿ" <100>'
    clid = await db.fetchval("SELECT clid FROM cdr_legs WHERE uniqueid = '9.1'")
    assert clid == '"Jan ""Honza""\nNovák" <777000001>'
    tenants = dict(await db.fetch("SELECT call_key, tenant_id FROM calls"))
    assert tenants == {"0.1": "acme", "1.1": "acme", "2.1": "acme", "9.1": "acme"}


def _month_rows(rnd: random.Random, n_calls: int) -> list[str]:
    rows = []
    for c in range(n_calls):
        start = T0 + timedelta(seconds=rnd.randint(0, 20 * 86400))
        for s in range(rnd.randint(1, 3)):
            disp = rnd.choice(["ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CONGESTION"])
            rows.append(
                csv_line(
                    fields(
                        start + timedelta(seconds=40 * s),
                        billsec=rnd.randint(1, 300),
                        disp=disp,
                        dst=rnd.choice(["221000111", "221000222", "s"]),
                        uid=f"{c}.{s}",
                        linked=f"{c}.0",
                        seq=s,
                        acct=rnd.choice(["", "", "bistro"]),
                    )
                )
            )
    return rows


async def _snapshot(db: asyncpg.Connection) -> tuple:
    """Calls and rollup as comparable values (a call's leg fingerprints as a set: stored in no set order).
    Also checks that every call lists exactly the legs stored under its key (calls.leg_fingerprints)."""
    await assert_leg_lists_match(db)
    calls = await db.fetch("SELECT * FROM calls ORDER BY server, call_key")
    usage = await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")
    return [
        tuple(frozenset(v) if k == "leg_fingerprints" else v for k, v in r.items() if k != "updated_at") for r in calls
    ], [tuple(r) for r in usage]


async def assert_leg_lists_match(db: asyncpg.Connection) -> None:
    """calls.leg_fingerprints holds the fingerprints of exactly the legs stored under the call's key,
    and every stored leg has its call."""
    calls = {
        (r["server"], r["call_key"]): sorted(r["leg_fingerprints"])
        for r in await db.fetch("SELECT server, call_key, leg_fingerprints FROM calls")
    }
    legs: dict[tuple[str, str], list] = {}
    for r in await db.fetch("SELECT server, call_key, fingerprint FROM cdr_legs ORDER BY fingerprint"):
        legs.setdefault((r["server"], r["call_key"]), []).append(r["fingerprint"])
    assert calls == legs


async def test_double_import_counts_nothing_twice(db, cli_env, tmp_path, capsys):
    await seed_catalogue(db)
    rows = _month_rows(random.Random(7), 60)
    path = tmp_path / "Master.csv"
    path.write_text("".join(rows), encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    first = await _snapshot(db)
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} rows read, 0 imported, {len(rows)} already present, 0 rejected" in out
    assert await _snapshot(db) == first
    assert await db.fetchval("SELECT sum(calls) FROM usage_daily") == 60


async def test_ami_and_csv_overlap_counts_each_leg_once(db, db_dsn, tmp_path, capsys, cli_env):
    await seed_catalogue(db)
    rows = [fields(T0 + timedelta(minutes=i), uid=f"{i}.1", linked=f"{i}.1", dst="221000222") for i in range(4)]
    # the daemon saw the first three calls as AMI Cdr events (handler -> record -> sink, as in the daemon)
    names = ["AccountCode", "Source", "Destination", "DestinationContext", "CallerID", "Channel",
             "DestinationChannel", "LastApplication", "LastData", "StartTime", "AnswerTime", "EndTime", "Duration",
             "BillableSeconds", "Disposition", "AMAFlags", "UniqueID", "UserField", "PeerAccount", "LinkedID",
             "Sequence"]  # fmt: skip
    ctx = SimpleNamespace(settings=SimpleNamespace(asterisk=()), catalogue=SimpleNamespace(current=None))
    ctx.catalogue.current = SimpleNamespace(timezone="Europe/Prague")
    handler = feature.event_handlers(ctx)["Cdr"]  # type: ignore[arg-type]
    records = [r for row in rows[:3] for r in handler("pbx1", {"Event": "Cdr", **dict(zip(names, row, strict=True))})]
    assert [r.kind for r in records] == ["cdr_leg"] * 3
    (sink,) = feature.sinks(ctx)  # type: ignore[arg-type]
    async with db.transaction():
        await sink.write(db, [r.data for r in records])
    # ... and Master.csv holds all four (the newest written after the daemon stopped)
    path = tmp_path / "Master.csv"
    path.write_text("".join(csv_line(r) for r in rows), encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    assert "4 rows read, 1 imported, 3 already present, 0 rejected" in capsys.readouterr().out
    assert await db.fetchval("SELECT count(*) FROM cdr_legs") == 4
    assert dict(await db.fetch("SELECT source, count(*) FROM cdr_legs GROUP BY source")) == {"ami": 3, "csv": 1}
    assert await db.fetchval("SELECT sum(calls) FROM usage_daily WHERE tenant_id = 'bistro'") == 4


async def _write_staged(db: asyncpg.Connection, legs: list, fresh: bool) -> StoreResult:
    """The import's write path: legs as staging COPY text, one transaction (all call buckets)."""
    data = "".join(stage_line(leg, normalise(leg.caller, "420"), normalise(leg.dst, "420")) for leg in legs).encode()
    return await store_staging_text(db, "pbx1", None, data, len(legs), fresh=fresh)


@pytest.mark.parametrize("path", ["ami sink", "staged, fresh", "staged, general"])
async def test_stored_calls_equal_the_domain_whatever_the_batches(db, path):
    await seed_catalogue(db)
    rnd = random.Random(11)
    text_rows = []
    for c in range(80):
        start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 2 * 86400))
        for s in range(rnd.randint(1, 3)):
            text_rows.append(
                fields(
                    start + timedelta(seconds=rnd.choice([0, 0, 20, 70]) * s),
                    billsec=rnd.randint(1, 99),
                    disp=rnd.choice(["ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CONGESTION"]),
                    acct=rnd.choice(["", "acme", "nope"]),
                    src=rnd.choice(["100", "777000001", "603000003"]),
                    dst=rnd.choice(["221000111", "+420221000222", "s"]),
                    uid=f"{c}.{s}",
                    linked=rnd.choice([f"{c}.0", f"{c}.0", ""]) if s == 0 else f"{c}.0",
                    seq=s,
                    chan=rnd.choice(["PJSIP/trunk-a-0000001", "PJSIP/phone1-0000002"]),
                )
            )
    legs = [csv_leg("pbx1", r, PRAGUE) for r in text_rows]
    expected = build_calls(legs, directory(), PRAGUE)
    shuffled = list(legs)
    rnd.shuffle(shuffled)
    sink = CdrLegSink("csv")
    for i in range(0, len(shuffled), 17):  # many small transactions, legs of one call split across them
        chunk = shuffled[i : i + 17]
        if path == "ami sink":
            async with db.transaction():
                await sink.write(db, [leg_to_data(leg) for leg in chunk])
        else:
            # every third batch repeats two legs of the previous one after its new legs: a fresh attempt
            # fails on them and the batch is stored by the general statement
            again = shuffled[i - 2 : i] if i and i % 51 == 0 else []
            result = await _write_staged(db, chunk + again, fresh=path == "staged, fresh")
            assert (result.inserted, result.present) == (len(chunk), len(again))
    await assert_leg_lists_match(db)
    got = await db.fetch("SELECT * FROM calls")
    got_by_key = {r["call_key"]: r for r in got}
    assert len(got) == len(expected)
    for call in expected:
        r = got_by_key[call.key]
        assert (r["legs"], r["started_at"], r["day"], r["disposition"], r["billsec"]) == (
            call.legs,
            call.start,
            call.day,
            call.disposition,
            call.billsec,
        )
        assert (r["tenant_id"], r["attributed_by"], r["caller_e164"], r["dialled_e164"]) == (
            call.tenant,
            call.attributed_by,
            call.caller,
            call.dialled,
        )
        assert (r["direction"], r["trunk"]) == (call.direction, call.trunk)
    # the rollup equals a fresh aggregate of the calls
    fresh = await db.fetch(
        """SELECT tenant_id, day, count(*) AS calls, sum(billsec) AS billsec,
                  count(*) FILTER (WHERE disposition = 'ANSWERED') AS answered
           FROM calls GROUP BY 1, 2 ORDER BY 1, 2"""
    )
    rollup = await db.fetch(
        "SELECT tenant_id, day, calls, billsec, answered FROM usage_daily WHERE calls > 0 ORDER BY 1, 2"
    )
    assert [tuple(r) for r in rollup] == [tuple(r) for r in fresh]


async def test_a_fresh_batch_with_a_stored_leg_falls_back_to_the_general_statement(db):
    """cdr_store_stage(fresh): the plain insert is really tried (its rows are counted as inserted, then
    rolled back with its subtransaction); a leg already stored is left out by the fingerprint look-up
    (sql/1703), and a leg twice in the batch sends it to the general statement, which stores the others
    once and none twice."""
    await seed_catalogue(db)
    legs = [csv_leg("pbx1", fields(T0 + timedelta(minutes=i), uid=f"{i}.1", linked=f"{i}.1"), PRAGUE) for i in range(6)]
    assert await _write_staged(db, legs[:1], fresh=True) == StoreResult(1, 0)

    async def inserted_in(transaction_of: list, fresh: bool) -> tuple[StoreResult, int]:
        """The result, and the rows counted as inserted into cdr_legs by the transaction (the backend's
        pending counts can include its recent transactions: hence the difference)."""
        count = """SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_xact_user_tables
                   WHERE relid IN (SELECT relid FROM pg_partition_tree('cdr_legs'))"""  # its partitions
        async with db.transaction():
            before = await db.fetchval(count)
            result = await _write_staged(db, transaction_of, fresh=fresh)
            counted = await db.fetchval(count) - before
        return result, counted

    # a stored leg is left out before the insert: the fresh insert stores the 3 new ones, no fallback
    result, counted = await inserted_in(legs[1:4] + legs[:1], fresh=True)
    assert result == StoreResult(3, 1) and counted == 3
    # a leg twice in the batch: the fresh attempt inserts the first copy, fails on the second; the
    # general statement then inserts it again, once
    result, counted = await inserted_in([legs[4], legs[4]], fresh=True)
    assert result == StoreResult(1, 1) and counted >= 1 + 1
    assert await inserted_in(legs[5:] + legs[:1], fresh=False) == (StoreResult(1, 1), 1)
    assert await db.fetchval("SELECT count(*) FROM cdr_legs") == 6
    assert await db.fetchval("SELECT count(*) FROM calls") == 6
    assert await db.fetchval("SELECT sum(calls) FROM usage_daily") == 6
    await assert_leg_lists_match(db)


async def test_timezone_option_and_unattributed_calls_reattributed(db, cli_env, tmp_path, capsys):
    await seed_catalogue(db)
    row = fields(datetime(2026, 3, 12, 23, 30, tzinfo=UTC), tz=UTC, src="602123456", dst="s", uid="1.1")
    path = tmp_path / "Master.csv"
    path.write_text(csv_line(row), encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx9", "--timezone", "UTC") == 0
    assert "zone UTC" in capsys.readouterr().out
    call = await db.fetchrow("SELECT * FROM calls")
    assert call["started_at"] == datetime(2026, 3, 12, 23, 30, tzinfo=UTC)
    assert call["day"] == date(2026, 3, 13)  # 00:30 in Prague
    assert call["tenant_id"] is None
    assert await db.fetchval("SELECT count(*) FROM servers WHERE name = 'pbx9'") == 1
    # the catalogue learns the caller: re-attribution moves the call and the rollup
    rid = await db.fetchval("SELECT id FROM requesters WHERE tenant_id = 'acme'")
    await db.execute("INSERT INTO requester_phones (phone, requester_id) VALUES ('+420602123456', $1)", rid)
    assert await reattribute_unattributed(db) == 1
    assert await db.fetchval("SELECT tenant_id FROM calls") == "acme"
    assert dict(await db.fetch("SELECT coalesce(tenant_id, '-'), calls FROM usage_daily")) == {"-": 0, "acme": 1}


async def test_only_catalogue_trunks_decide_direction(db):
    """Endpoints the trunks feature saw qualified (agents' phones) are in ``trunks`` but are not trunks."""
    await seed_catalogue(db)
    await db.execute("INSERT INTO trunks (server, name, in_catalogue) VALUES ('pbx1', 'agent1', false)")
    queue_call = fields(T0, uid="1.1", linked="1.1", chan="PJSIP/anonymous-00000001")
    queue_call[6] = "PJSIP/agent1-00000002"
    out_call = fields(T0, uid="2.1", linked="2.1", chan="PJSIP/agent1-00000003")
    out_call[6] = "PJSIP/trunk-a-00000004"
    async with db.transaction():
        await CdrLegSink("csv").write(db, [leg_to_data(csv_leg("pbx1", r, PRAGUE)) for r in (queue_call, out_call)])
    got = {r["call_key"]: (r["direction"], r["trunk"]) for r in await db.fetch("SELECT * FROM calls")}
    assert got == {"1.1": ("internal", None), "2.1": ("outbound", "trunk-a")}


async def test_missing_file_is_a_usage_error(cli_env, tmp_path):
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(tmp_path / "nope.csv"), "--server", "x") == 2


async def test_child_process_runs_this_package_whatever_the_working_directory(db, tmp_path, monkeypatch):
    """The child parser is this package's code even when the working directory holds another
    ``pbx_sla`` (a checkout of another version, say): ``python -m`` would otherwise put it first."""
    from pbx_sla.ingest.importer import import_csv

    await seed_catalogue(db)
    other = tmp_path / "checkout" / "pbx_sla"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the pbx_sla of the working directory')\n")
    monkeypatch.chdir(other.parent)
    path = tmp_path / "Master.csv"
    path.write_text("".join(_month_rows(random.Random(2), 5)), encoding="utf-8")
    summary = await import_csv(db, path, "pbx1", PRAGUE, parse_in_process=True)
    assert summary.rejected == 0 and summary.imported == summary.rows > 0


async def test_child_process_parser_matches_the_thread_parser(db, tmp_path):
    """Large files are parsed in a child process (importer._ChildParser): same rows, same problems and
    physical line numbers, same calls and rollup as the in-process parser; a dead child is an error."""
    from pbx_sla.ingest.importer import import_csv

    await seed_catalogue(db)
    rows = _month_rows(random.Random(11), 40)
    bad_date = fields(T0, uid="x.1", linked="x.1")
    bad_date[11] = "2026-03-12 25:61:00"
    rows[5:5] = ['"a","b"\n', csv_line(bad_date)]
    rows.insert(20, csv_line(fields(T0, uid="q.1", linked="q.1", clid='"A ""B""\nC" <1>')))
    path = tmp_path / "Master.csv"
    path.write_text("".join(rows), encoding="utf-8")

    results = []
    for in_process in (True, False):
        await db.execute("TRUNCATE cdr_legs, calls, usage_daily")
        summary = await import_csv(db, path, "pbx1", PRAGUE, batch_size=7, parse_in_process=in_process)
        results.append((summary, await _snapshot(db)))
    (child, child_db), (thread, thread_db) = results
    assert child == thread
    assert child_db == thread_db
    assert child.rejected == 2 and child.imported == len(rows) - 2
    assert [p.split(": ")[0] for p in child.problems] == [f"{path}:6", f"{path}:7"]

    try:
        await import_csv(db, tmp_path / "missing.csv", "pbx1", PRAGUE, parse_in_process=True)
    except RuntimeError as exc:
        assert "missing.csv" in str(exc) and "exit code 1" in str(exc)
    else:
        raise AssertionError("a child that cannot read the file must fail the import")


async def _nonzero_snapshot(db: asyncpg.Connection) -> tuple:
    """As :func:`_snapshot`, without usage_daily rows that went back to zero (a call that moved to another
    day or tenant when a later leg arrived leaves one; every report skips them)."""
    calls, usage = await _snapshot(db)
    return calls, [r for r in usage if any(r[2:])]


async def _recomputed_from_legs(db: asyncpg.Connection) -> tuple:
    """Calls and rollup rebuilt from the stored legs alone by the older path (SQL ``calls_refresh``), for
    comparison with what the import left: a consistent state is one this does not change."""
    async with db.transaction():
        await db.execute("TRUNCATE calls, usage_daily")
        await db.execute(
            "SELECT calls_refresh(array_agg(server), array_agg(call_key))"
            " FROM (SELECT DISTINCT server, call_key FROM cdr_legs) k HAVING count(*) > 0"
        )
        rebuilt = await _nonzero_snapshot(db)
        raise _Rollback(rebuilt)


class _Rollback(Exception):
    def __init__(self, value: tuple) -> None:
        self.value = value


async def recomputed_from_legs(db: asyncpg.Connection) -> tuple:
    try:
        await _recomputed_from_legs(db)
    except _Rollback as done:
        return done.value
    raise AssertionError("unreachable")


async def test_two_connection_import_with_live_ami_writes_and_a_crash_is_exact(db, db_dsn, tmp_path):
    """The import's two-connection path (each call bucket of a batch stored on its own connection) with
    the daemon's sink writing overlapping legs at the same time ends with the same calls and rollup as a
    plain one-connection import. An import whose second connection dies mid-way leaves a consistent
    state (calls and rollup exactly what its stored legs give), and running it again completes it."""
    import csv as csv_module

    from pbx_sla.ingest.importer import import_csv

    await seed_catalogue(db)
    rows = _month_rows(random.Random(23), 80)
    rnd = random.Random(5)
    path = tmp_path / "Master.csv"
    path.write_text("".join(rows), encoding="utf-8")
    parsed = [next(csv_module.reader([r])) for r in rows]

    await import_csv(db, path, "pbx1", PRAGUE, batch_size=9)  # reference: one connection
    expected = await _nonzero_snapshot(db)
    await db.execute("TRUNCATE cdr_legs, calls, usage_daily")

    ami_legs = [csv_leg("pbx1", p, PRAGUE) for p in parsed if rnd.random() < 0.5]
    rnd.shuffle(ami_legs)
    second = await asyncpg.connect(db_dsn)
    ami_conn = await asyncpg.connect(db_dsn)
    try:

        async def daemon() -> None:
            sink = CdrLegSink()
            for i in range(0, len(ami_legs), 4):
                async with ami_conn.transaction():
                    await sink.write_legs(ami_conn, ami_legs[i : i + 4])
                await asyncio.sleep(0)

        summary, _ = await asyncio.gather(
            import_csv(db, path, "pbx1", PRAGUE, batch_size=9, second_conn=second, parse_in_process=True),
            daemon(),
        )
        assert summary.imported + summary.present == len(rows)
        assert await _nonzero_snapshot(db) == expected

        # crash: the second connection is killed after the third batch
        await db.execute("TRUNCATE cdr_legs, calls, usage_daily")
        batches = 0
        victim = await second.fetchval("SELECT pg_backend_pid()")
        killer = await asyncpg.connect(db_dsn)

        kills: list[asyncio.Task] = []

        def progress(summary: object, offset: int) -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                kill = killer.execute("SELECT pg_terminate_backend($1)", victim)
                kills.append(asyncio.get_running_loop().create_task(kill))

        try:
            await import_csv(
                db, path, "pbx1", PRAGUE, batch_size=9, second_conn=second, progress=progress, parse_in_process=True
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
            pass
        else:
            raise AssertionError("an import whose connection was killed must fail")
        await asyncio.gather(*kills)
        await killer.close()
        stored = await db.fetchval("SELECT count(*) FROM cdr_legs")
        assert 0 < stored < len(rows)
        partial = await _nonzero_snapshot(db)
        assert partial == await recomputed_from_legs(db)  # consistent: nothing half-applied
        second = await asyncpg.connect(db_dsn)
        again = await import_csv(db, path, "pbx1", PRAGUE, batch_size=9, second_conn=second)
        assert again.present == stored and again.imported == len(rows) - stored
        assert await _nonzero_snapshot(db) == expected
    finally:
        await second.close()
        await ami_conn.close()
