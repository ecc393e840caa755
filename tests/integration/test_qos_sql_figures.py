"""sql/1710: the QoS legs' MOS and call tenant kept in SQL, and the `sla` report's per-tenant sums in SQL.

* ``qos_leg_mos`` (SQL) gives the very double :func:`pbx_sla.domain.qos.leg_mos` gives, over generated legs
  (hypothesis: packet counts, jitter and RTT including None and 0, codec names with case, dots and every
  whitespace Python's ``str.strip`` removes);
* a leg's kept tenant always equals what the look-up by linkedid finds (the invariant is checked after every
  step): a leg stored before its call, after it, a call re-attributed, moved to another month, deleted,
  TRUNCATE, a replayed leg, a leg without linkedid, the fill of legs stored before sql/1710;
* :func:`pbx_sla.store.qos.tenant_totals` gives the figures :func:`pbx_sla.domain.qos.figures` gives from
  the legs one by one (counts, p95s and poor legs equal, the float means to 1e-12: summed in another
  order), with kept and looked-up tenants, stored and computed MOS mixed.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbx_sla.domain import qos as q
from pbx_sla.domain.catalogue import Catalogue, Tenant, Tier
from pbx_sla.reports.period import month_period
from pbx_sla.reports.qos import measured, tenant_figures
from pbx_sla.store.qos import QosLegSink, fill_legs, tenant_totals, trunk_legs

PERIOD = month_period(2026, 11, ZoneInfo("Europe/Prague"))
WHITESPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())

#: the look-up the readers did before sql/1710 (and still do for a leg not known): the call by key
LOOKED_UP = """
SELECT q.uniqueid, q.call_tenant_known, q.call_tenant_id,
       (SELECT c.tenant_id FROM calls c WHERE c.server = q.server AND c.call_key = q.linkedid LIMIT 1) AS looked_up,
       EXISTS (SELECT 1 FROM calls c WHERE c.server = q.server AND c.call_key = q.linkedid) AS has_call
FROM qos_legs q ORDER BY q.uniqueid
"""


async def check_kept_tenants(db) -> dict[str, tuple[bool, str | None]]:
    """Every known leg's kept tenant is its call's (none without a call only when it has no linkedid);
    returns uniqueid → (known, kept tenant)."""
    out = {}
    for r in await db.fetch(LOOKED_UP):
        if r["call_tenant_known"]:
            assert r["call_tenant_id"] == r["looked_up"], dict(r)
        out[r["uniqueid"]] = (r["call_tenant_known"], r["call_tenant_id"])
    return out


# -- the MOS -----------------------------------------------------------------------------------------------

CODEC_NAMES = ["ulaw", "alaw", "g729", "G729A", "g.723.1", "g7231", "gsm-efr", "GSM-EFR", "g711-noplc", "g722",
               "opus", "", "pcmu", "PCMA", "g.729"]  # fmt: skip
codec_names = st.one_of(
    st.none(),
    st.sampled_from(CODEC_NAMES),
    st.builds(
        lambda pad1, name, pad2: pad1 + name + pad2,
        st.text(WHITESPACE, max_size=3),
        st.sampled_from(CODEC_NAMES),
        st.text(WHITESPACE, max_size=3),
    ),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12),
)
milliseconds = st.one_of(st.none(), st.just(0.0), st.floats(0, 5000, allow_nan=False, allow_infinity=False))
legs = st.tuples(
    st.integers(0, 10**9), st.integers(0, 10**9), milliseconds, milliseconds, codec_names
)  # received, lost, jitter_ms, rtt_ms, codec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(legs, min_size=1, max_size=60))
async def test_sql_mos_is_python_mos_bit_for_bit(db, batch) -> None:
    rows = await db.fetch(
        """SELECT qos_leg_mos(r, l, j, t, c) AS mos
           FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::float8[], $5::text[]) WITH ORDINALITY
                AS u(r, l, j, t, c, n) ORDER BY n""",
        *(list(col) for col in zip(*batch, strict=True)),
    )
    for (received, lost, jitter, rtt, name), row in zip(batch, rows, strict=True):
        expected = q.leg_mos(q.LegQuality(received, lost, jitter_ms=jitter, rtt_ms=rtt), q.codec(name))
        got = row["mos"]
        if expected is None:
            assert got is None and received == 0
        else:
            assert got is not None and got.hex() == expected.hex(), (received, lost, jitter, rtt, name, got, expected)


async def test_sql_codec_values_are_python_codec_values(db) -> None:
    """Every codec and alias, with every whitespace character around it: the SQL picks the same E-model
    values (checked through the MOS of a leg with loss, where Ie and Bpl both show)."""
    names = sorted({*q.CODECS, "ulaw", "alaw", "pcmu", "pcma", "g729a", "g7231", "G.729", "unknown", ""})
    cases = [(pad + n.upper() + pad) for n in names for pad in ("", *WHITESPACE)]
    rows = await db.fetch(
        "SELECT qos_leg_mos(900, 100, 5.0, 40.0, c) AS mos FROM unnest($1::text[]) WITH ORDINALITY u(c, n) ORDER BY n",
        cases,
    )
    for name, row in zip(cases, rows, strict=True):
        expected = q.leg_mos(q.LegQuality(900, 100, jitter_ms=5.0, rtt_ms=40.0), q.codec(name))
        assert row["mos"] == expected, repr(name)
    assert len({r["mos"] for r in rows}) == len(set(q.CODECS.values()))  # each codec's values distinct


# -- the kept tenant ----------------------------------------------------------------------------------------


def leg(uid: str, linkedid: str | None, at: datetime, received: int = 1000, lost: int = 10) -> dict:
    return {"server": "pbx1", "uniqueid": uid, "linkedid": linkedid, "channel": f"PJSIP/trunk-a-{uid}",
            "endpoint": "trunk-a", "at": at.isoformat(), "codec": "ulaw", "received": received, "lost": lost,
            "jitter_ms": 12.5, "jitter_max_ms": 20.0, "rtt_ms": None}  # fmt: skip


async def add_call(db, key: str, started: datetime, tenant: str | None) -> None:
    await db.execute(
        """INSERT INTO calls (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                              direction, trunk, tenant_id)
           VALUES ('pbx1', $1, $1, 1, $2::timestamptz, $2::timestamptz + interval '2 minutes', $3, 'ANSWERED', 60,
                   'inbound', 'trunk-a', $4)""",
        key,
        started,
        started.date(),
        tenant,
    )


async def write(db, items: list[dict]) -> None:
    async with db.transaction():
        await QosLegSink().write(db, items)


T0 = datetime(2026, 11, 10, 12, tzinfo=UTC)


async def test_kept_tenant_follows_the_call(db) -> None:
    await db.execute("INSERT INTO servers (name) VALUES ('pbx1') ON CONFLICT DO NOTHING")
    await db.execute("SELECT history_partitions_ensure(parent, '2026-08-01', '2026-12-01') FROM history_partitioning")
    await add_call(db, "A", T0, "acme")
    await write(db, [leg("A.1", "A", T0 + timedelta(minutes=2)),  # its call is stored: known at once
                     leg("B.1", "B", T0 + timedelta(minutes=5)),  # its call comes later
                     leg("N.1", None, T0),  # no linkedid: no call, known without tenant
                     leg("Z.1", "Z", T0, received=0, lost=0)])  # fmt: skip
    kept = await check_kept_tenants(db)
    assert kept == {"A.1": (True, "acme"), "B.1": (False, None), "N.1": (True, None), "Z.1": (False, None)}
    mos = {r["uniqueid"]: r["mos"] for r in await db.fetch("SELECT uniqueid, mos FROM qos_legs")}
    assert mos["A.1"] == q.leg_mos(q.LegQuality(1000, 10, jitter_ms=12.5), q.codec("ulaw")) and mos["Z.1"] is None

    await add_call(db, "B", T0, None)  # the call arrives, not attributed
    assert (await check_kept_tenants(db))["B.1"] == (True, None)
    await db.execute("UPDATE calls SET tenant_id = 'bistro' WHERE call_key = 'B'")  # re-attributed
    assert (await check_kept_tenants(db))["B.1"] == (True, "bistro")
    await db.execute("UPDATE calls SET billsec = 61, updated_at = now() WHERE call_key = 'B'")  # no tenant change
    assert (await check_kept_tenants(db))["B.1"] == (True, "bistro")

    await write(db, [leg("A.1", "A", T0 + timedelta(minutes=2))])  # replayed: unchanged
    assert (await check_kept_tenants(db))["A.1"] == (True, "acme")

    # the call's start moves to the month before (a late earlier leg): PostgreSQL moves the row; the leg is
    # still in the window of the new start
    await db.execute("UPDATE calls SET started_at = $1 WHERE call_key = 'A'", T0 - timedelta(days=12))
    assert await db.fetchval("SELECT tableoid::regclass::text FROM calls WHERE call_key = 'A'") == "calls_y2026m10"
    assert (await check_kept_tenants(db))["A.1"] == (True, "acme")
    # ... and out of the window (more than 960 hours before the leg's hangup): forgotten, looked up again
    await db.execute("UPDATE calls SET started_at = $1 WHERE call_key = 'A'", T0 - timedelta(days=45))
    assert (await check_kept_tenants(db))["A.1"] == (False, None)
    await db.execute("UPDATE calls SET tenant_id = 'bistro' WHERE call_key = 'A'")  # the look-up sees it
    full = {r["uniqueid"]: r["tenant_id"] for r in await db.fetch("SELECT uniqueid, tenant_id FROM qos_leg_figures")}
    assert full["A.1"] == "bistro"
    await db.execute("UPDATE calls SET started_at = $1 WHERE call_key = 'A'", T0)
    assert (await check_kept_tenants(db))["A.1"] == (True, "bistro")

    await db.execute("DELETE FROM calls WHERE call_key = 'B'")
    assert (await check_kept_tenants(db))["B.1"] == (False, None)
    await db.execute("TRUNCATE calls")
    assert (await check_kept_tenants(db))["A.1"] == (False, None)
    assert (await check_kept_tenants(db))["N.1"] == (True, None)  # no call to lose


async def test_reattribution_through_the_calls_writer(db) -> None:
    """A call stored by the calls writer from its CDR leg, unattributed, then re-attributed by the real path
    (the catalogue gained its account code; ``reattribute_unattributed``): its leg's kept tenant follows."""
    from test_call_rules import row
    from test_cdr_import import seed_catalogue

    from pbx_sla.domain.cdr import LocalClock, read_leg
    from pbx_sla.store.calls import CdrLegSink, reattribute_unattributed

    await seed_catalogue(db)
    await write(db, [leg("C.1", "C", datetime(2026, 3, 10, 9, 1, tzinfo=UTC))])
    cdr = row("2026-03-10 10:00:00", "2026-03-10 10:01:00", acct="acct-new", src="777000111", dst="555",
              uid="C.1", linked="C")  # fmt: skip
    async with db.transaction():
        await CdrLegSink("ami").write_legs(db, [read_leg("pbx1", cdr, LocalClock(ZoneInfo("Europe/Prague")))])
    assert await db.fetchval("SELECT tenant_id FROM calls WHERE call_key = 'C'") is None
    assert (await check_kept_tenants(db))["C.1"] == (True, None)
    await db.execute("INSERT INTO tenant_accountcodes (accountcode, tenant_id) VALUES ('acct-new', 'bistro')")
    await reattribute_unattributed(db)
    assert await db.fetchval("SELECT tenant_id FROM calls WHERE call_key = 'C'") == "bistro"
    assert (await check_kept_tenants(db))["C.1"] == (True, "bistro")


async def test_fill_gives_old_legs_their_mos_and_tenant(db) -> None:
    """Legs stored before sql/1710 (no MOS, not known): the readers compute both; fill_legs stores them."""
    await db.execute("INSERT INTO servers (name) VALUES ('pbx1') ON CONFLICT DO NOTHING")
    await add_call(db, "A", T0, "acme")
    await add_call(db, "F", T0 - timedelta(days=50), "faraway")  # beyond the window: stays looked up
    await db.execute(
        """INSERT INTO qos_legs (server, uniqueid, linkedid, endpoint, at, codec, received, lost, jitter_ms, rtt_ms)
           VALUES ('pbx1', 'A.1', 'A', 'trunk-a', $1, 'g729', 900, 100, 30.0, 150.0),
                  ('pbx1', 'N.1', NULL, 'trunk-a', $1, NULL, 500, 0, NULL, NULL),
                  ('pbx1', 'F.1', 'F', 'trunk-a', $1, 'alaw', 800, 3, 1.0, NULL),
                  ('pbx1', 'Z.1', 'Z', 'trunk-a', $1, 'alaw', 0, 0, NULL, NULL)""",
        T0 + timedelta(minutes=3),
    )
    before = [dict(r) for r in await db.fetch("SELECT uniqueid, tenant_id, mos FROM qos_leg_figures ORDER BY 1")]
    assert before == [
        {"uniqueid": "A.1", "tenant_id": "acme",
         "mos": q.leg_mos(q.LegQuality(900, 100, jitter_ms=30.0, rtt_ms=150.0), q.codec("g729"))},
        {"uniqueid": "F.1", "tenant_id": "faraway", "mos": q.leg_mos(q.LegQuality(800, 3, jitter_ms=1.0))},
        {"uniqueid": "N.1", "tenant_id": None, "mos": q.leg_mos(q.LegQuality(500, 0))},
        {"uniqueid": "Z.1", "tenant_id": None, "mos": None},
    ]  # fmt: skip
    assert await fill_legs(db, T0 - timedelta(days=1), T0 + timedelta(days=1)) == 3  # A.1, N.1: both; F.1: MOS
    assert await fill_legs(db, T0 - timedelta(days=1), T0 + timedelta(days=1)) == 0
    kept = await check_kept_tenants(db)
    assert kept == {"A.1": (True, "acme"), "F.1": (False, None), "N.1": (True, None), "Z.1": (False, None)}
    stored = {r["uniqueid"]: r["mos"] for r in await db.fetch("SELECT uniqueid, mos FROM qos_legs")}
    assert stored == {r["uniqueid"]: r["mos"] for r in before}
    after = [dict(r) for r in await db.fetch("SELECT uniqueid, tenant_id, mos FROM qos_leg_figures ORDER BY 1")]
    assert after == before


# -- the per-tenant sums ------------------------------------------------------------------------------------


def catalogue(tenants: list[str]) -> Catalogue:
    from decimal import Decimal

    from pbx_sla.domain.catalogue import OutOfHours

    tier = Tier(name="t", price_per_year=Decimal(1), currency="CZK", max_calls_per_day=None, max_employees=None,
                calendar="always", queue="q", priority=1, out_of_hours=OutOfHours("closed"),
                answer_target_seconds=30, qos=q.QosTargets(poor_mos=4.1))  # fmt: skip
    plain = Tier(name="p", price_per_year=Decimal(1), currency="CZK", max_calls_per_day=None, max_employees=None,
                 calendar="always", queue="q", priority=1, out_of_hours=OutOfHours("closed"),
                 answer_target_seconds=30)  # fmt: skip
    ts = {
        t: Tenant(id=t, name=t, tier="t" if n % 2 else "p", employees=1, contract_start=datetime(2025, 1, 1).date())
        for n, t in enumerate(tenants)
    }
    return Catalogue(timezone="Europe/Prague", country_code="420", calendars={}, tiers={"t": tier, "p": plain},
                     tenants=ts, trunks=())  # fmt: skip


async def test_tenant_sums_in_sql_equal_the_python_figures(db) -> None:
    rnd = random.Random(17)
    tenants = [f"t{i}" for i in range(6)]
    await db.execute("INSERT INTO servers (name) VALUES ('pbx1'), ('pbx2') ON CONFLICT DO NOTHING")
    await db.execute(
        """INSERT INTO trunks (server, name, availability_target, in_catalogue)
           VALUES ('pbx1', 'trunk-a', 0.999, true), ('pbx2', 'trunk-b', 0.999, true), ('pbx1', 'phone', 0.999, false)"""
    )
    items, old = [], []
    start = PERIOD.start - timedelta(hours=3)
    for n in range(600):
        at = start + timedelta(minutes=rnd.randrange(0, 45 * 24 * 60))
        key = f"k{n}"
        server, trunk = rnd.choice([("pbx1", "trunk-a"), ("pbx2", "trunk-b"), ("pbx1", "phone")])
        tenant = rnd.choice([*tenants, None, "not-in-catalogue"])
        if rnd.random() < 0.9:
            await add_call(db, key, at - timedelta(minutes=rnd.randrange(1, 90)), tenant)
            await db.execute("UPDATE calls SET server = $2 WHERE call_key = $1", key, server)
        received = rnd.choice([0, rnd.randrange(1, 5000)])
        row = {**leg(key + ".1", key, at, received, rnd.randrange(0, 300) if received else 0), "server": server,
               "endpoint": trunk, "codec": rnd.choice(["ulaw", "g729", None, "gsm-efr"]),
               "jitter_ms": rnd.choice([None, 0.0, rnd.uniform(0, 80)]),
               "jitter_max_ms": rnd.choice([None, 0.0, rnd.uniform(0, 120)]),
               "rtt_ms": rnd.choice([None, rnd.uniform(1, 400)])}  # fmt: skip
        (old if rnd.random() < 0.3 else items).append(row)
    await write(db, items)
    for r in old:  # stored as before sql/1710: no MOS, tenant not known
        await db.execute(
            """INSERT INTO qos_legs (server, uniqueid, linkedid, endpoint, at, codec, received, lost, jitter_ms,
                                     jitter_max_ms, rtt_ms)
               VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6, $7, $8, $9, $10, $11)""",
            r["server"], r["uniqueid"], r["linkedid"], r["endpoint"], r["at"], r["codec"], r["received"], r["lost"],
            r["jitter_ms"], r["jitter_max_ms"], r["rtt_ms"],
        )  # fmt: skip
    kept = await check_kept_tenants(db)
    assert any(k for k, _ in kept.values()) and not all(k for k, _ in kept.values())
    cat = catalogue(tenants)

    for servers in (None, ["pbx2"]):
        # the Python path of before: every leg with its MOS, grouped per tenant
        by_tenant: dict[str | None, list[q.MeasuredLeg]] = {}
        for r, m in measured(await trunk_legs(db, PERIOD.start, PERIOD.end, servers)):
            by_tenant.setdefault(r["tenant_id"], []).append(m)
        got = await tenant_figures(db, PERIOD, cat, servers)
        assert list(got) == tenants
        for t in tenants:
            figures, targets = got[t]
            expected = q.figures(by_tenant.get(t, []), targets.poor_threshold if targets else q.DEFAULT_POOR_MOS)
            for name in expected.__dataclass_fields__:
                want, have = getattr(expected, name), getattr(figures, name)
                if name in ("jitter_ms_mean", "mos_mean") and want is not None:  # float sums in another order
                    assert have == pytest.approx(want, rel=1e-12), (t, name)
                else:
                    assert have == want, (t, name)
        assert sum(f.legs_measured for f, _ in got.values()) > (20 if servers is None else 5)
    # one tenant only
    only = await tenant_figures(db, PERIOD, cat, None, "t1")
    full = (await tenant_figures(db, PERIOD, cat))["t1"][0]
    assert list(only) == ["t1"] and only["t1"][0].legs_measured == full.legs_measured > 0
    assert only["t1"][0].mos_mean == pytest.approx(full.mos_mean, rel=1e-12)
    assert await tenant_totals(db, PERIOD.start, PERIOD.end, {}) == {}
    assert math.isfinite(sum(f.mos_mean or 0 for f, _ in only.values()))


async def test_a_leg_kept_longer_than_its_call_keeps_its_tenant(db) -> None:
    """Retention drops January's calls partition (legs_days past, the month closed) and keeps the QoS legs
    (no qos_days): a leg with a kept tenant still counts for it (docs/retention.md); a leg stored before
    sql/1710 is looked up, finds no call and counts for no tenant."""
    from pbx_sla.config import Retention
    from pbx_sla.store.retention import apply_retention

    await db.execute("INSERT INTO servers (name) VALUES ('pbx1') ON CONFLICT DO NOTHING")
    await db.execute("SELECT history_partitions_ensure(parent, '2026-01-01', '2026-04-01') FROM history_partitioning")
    january = datetime(2026, 1, 20, 10, tzinfo=UTC)
    await add_call(db, "J", january, "acme")
    await add_call(db, "K", january, "acme")
    await write(db, [leg("J.1", "J", january + timedelta(minutes=3))])
    await db.execute(  # as stored before sql/1710
        """INSERT INTO qos_legs (server, uniqueid, linkedid, endpoint, at, codec, received, lost)
           VALUES ('pbx1', 'K.1', 'K', 'trunk-a', $1, 'ulaw', 1000, 0)""",
        january + timedelta(minutes=3),
    )
    await db.execute("INSERT INTO statement_closes (period, code_version, tenants) VALUES ('2026-01', 'test', 0)")
    report = await apply_retention(db, Retention(legs_days=60), datetime(2026, 4, 15, tzinfo=UTC))
    assert {r["table"]: r["partitions_dropped"] for r in report}["calls"] == ["calls_y2026m01"]
    assert await db.fetchval("SELECT count(*) FROM calls") == 0
    tenants = {r["uniqueid"]: r["tenant_id"] for r in await db.fetch("SELECT uniqueid, tenant_id FROM qos_leg_figures")}
    assert tenants == {"J.1": "acme", "K.1": None}


async def test_db_qos_fill_command(db, cli_env) -> None:
    """`pbx-sla db qos-fill --month` fills the UTC month's legs stored before sql/1710, and only those."""
    from test_qos_report import run_cli

    await db.execute("INSERT INTO servers (name) VALUES ('pbx1') ON CONFLICT DO NOTHING")
    await add_call(db, "A", T0, "acme")
    await db.execute(
        """INSERT INTO qos_legs (server, uniqueid, linkedid, endpoint, at, codec, received, lost)
           VALUES ('pbx1', 'A.1', 'A', 'trunk-a', $1, 'ulaw', 1000, 5),
                  ('pbx1', 'O.1', 'A', 'trunk-a', $2, 'ulaw', 9, 1)""",
        T0 + timedelta(minutes=1),
        datetime(2026, 12, 1, tzinfo=UTC),  # the next UTC month: not filled
    )
    code, text = await run_cli(cli_env, "db", "qos-fill", "--month", "2026-11")
    assert code == 0 and "1 leg(s)" in text, text
    rows = {
        r["uniqueid"]: tuple(r)[1:] for r in await db.fetch("SELECT uniqueid, mos, call_tenant_known FROM qos_legs")
    }
    assert rows == {"A.1": (q.leg_mos(q.LegQuality(1000, 5), q.codec("ulaw")), True), "O.1": (None, False)}
    assert (await run_cli(cli_env, "db", "qos-fill", "--month", "2026-13"))[0] == 2
