"""``pbx-sla usage`` over generated months of CDRs, checked against figures computed here, directly from
the generator's own call list (not from the stored legs): multi-leg calls, shuffled rows, midnight and
DST boundaries (Europe/Prague), a contract starting mid-month, a leap-year February. Also the billing
views and their read-only role."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from test_cdr_import import TENANTS, TIERS, csv_line, fields, run_cli, seed_catalogue

PRAGUE = ZoneInfo("Europe/Prague")
RANK = {"ANSWERED": 0, "BUSY": 1, "NO ANSWER": 2, "FAILED": 3, "CONGESTION": 4}


def generate(year: int, month: int, seed: int, n_calls: int):
    """(Master.csv rows shuffled, the calls as the generator meant them)."""
    rnd = random.Random(seed)
    first = datetime(year, month, 1, tzinfo=PRAGUE).astimezone(UTC)
    span = int((datetime(year + month // 12, month % 12 + 1, 1, tzinfo=PRAGUE).astimezone(UTC) - first)
               .total_seconds())  # fmt: skip
    rows, calls = [], []
    for c in range(n_calls):
        if c % 10 == 0:  # around a local midnight, legs crossing it
            day = rnd.randint(0, span // 86400)
            start = datetime.combine(date(year, month, 1) + timedelta(days=day), datetime.min.time(), PRAGUE)
            start = start.astimezone(UTC) - timedelta(seconds=rnd.randint(1, 90))
        else:  # anywhere from a day before the month to a day after it
            start = first + timedelta(seconds=rnd.randint(-86400, span + 86400))
        kind = rnd.choice(["acct", "did", "phone", "none"])
        tenant = None if kind == "none" else rnd.choice(sorted(TENANTS))
        _, _, acct, did, phone = TENANTS[tenant] if tenant else (None, 0, "", "", "")
        n_legs = rnd.randint(1, 3)
        acct_leg = rnd.randrange(n_legs)
        disps, billsecs = [], []
        for s in range(n_legs):
            disp = rnd.choice(["ANSWERED", "ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CONGESTION"])
            billsec = rnd.randint(1, 600) if disp == "ANSWERED" else 0
            disps.append(disp)
            billsecs.append(billsec)
            rows.append(
                csv_line(
                    fields(
                        start + timedelta(seconds=30 * s),
                        billsec=billsec,
                        disp=disp,
                        acct=acct if kind == "acct" and s == acct_leg else "",
                        dst=did.replace("+420", "") if kind == "did" else "s",
                        src=phone.replace("+420", "") if kind == "phone" else "100",
                        uid=f"{c}.{s}",
                        linked=f"{c}.0",
                        seq=s,
                    )
                )
            )
        calls.append(
            {
                "tenant": tenant,
                "day": start.astimezone(PRAGUE).date(),
                "disposition": min(disps, key=RANK.__getitem__),
                "billsec": sum(billsecs),
            }
        )
    rnd.shuffle(rows)
    return rows, calls


def expected_usage(calls, year, month, bistro_start):
    """The usage figures, written out straight from the definitions (docs/figures.md)."""
    days = []
    d = date(year, month, 1)
    while d.month == month:
        days.append(d)
        d += timedelta(days=1)
    tiers = {name: (price, max_calls, max_emp) for name, price, max_calls, max_emp in TIERS}
    out = {}
    for tenant in [*sorted(TENANTS), None]:
        mine = [c for c in calls if c["tenant"] == tenant and c["day"] in days]
        n = len(mine)
        answered = sum(c["disposition"] == "ANSWERED" for c in mine)
        delivered = sum(c["disposition"] in ("ANSWERED", "BUSY", "NO ANSWER") for c in mine)
        billsec = sum(c["billsec"] for c in mine)
        daily = {day.isoformat(): sum(1 for c in mine if c["day"] == day) for day in days}
        values = sorted(daily.values())
        rank = -(-95 * len(values) // 100)  # ceil(0.95 n) in integers
        p95 = values[rank - 1]
        row = {
            "calls": n,
            "answered": answered,
            "asr": answered / n if n else None,
            "ner": delivered / n if n else None,
            "acd_seconds": billsec / answered if answered else None,
            "billable_seconds": billsec,
            "daily": daily,
            "calls_per_day": {"mean": n / len(days), "p95": p95, "max": max(values)},
        }
        if tenant is not None:
            tier, employees = TENANTS[tenant][0], TENANTS[tenant][1]
            price, max_calls, _ = tiers[tier]
            fits = [
                (p, name)
                for name, (p, mc, me) in tiers.items()
                if (mc is None or p95 <= mc) and (me is None or employees <= me)
            ]
            row["tier_by_usage"] = min(fits)[1]
            row["over_tier_days"] = 0 if max_calls is None else sum(v > max_calls for v in daily.values())
            start = bistro_start if tenant == "bistro" else date(2020, 1, 1)
            under = [day for day in days if day >= start]
            year_days = 366 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 365
            exact = Fraction(price) * len(under) / year_days
            cents = (exact * 100 + Fraction(1, 2)).__floor__()
            row["fee"] = {"amount": f"{cents // 100}.{cents % 100:02d}", "currency": "CZK"}
        out[tenant] = row
    return out


@pytest.mark.parametrize(("year", "month", "seed"), [(2026, 3, 1), (2026, 10, 2), (2028, 2, 3)])
async def test_usage_month_matches_independent_figures(db, cli_env, tmp_path, capsys, year, month, seed):
    bistro_start = date(year, month, 10)  # contract starts mid-month
    await seed_catalogue(db, bistro_start=bistro_start)
    rows, calls = generate(year, month, seed, 400)
    path = tmp_path / "Master.csv"
    path.write_text("".join(rows), encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    capsys.readouterr()
    status = await asyncio.to_thread(run_cli, "usage", "--period", f"{year}-{month:02d}", "--format", "json")
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["period"]["from"].startswith(f"{year}-{month:02d}-01T00:00:00+0")
    expected = expected_usage(calls, year, month, bistro_start)
    got = {t["tenant"]: t for t in report["tenants"]}
    assert set(got) == set(expected)
    for tenant, exp in expected.items():
        row = got[tenant]
        for key in ("calls", "answered", "billable_seconds", "daily"):
            assert row[key] == exp[key], (tenant, key)
        for key in ("asr", "ner", "acd_seconds"):
            assert row[key] == (None if exp[key] is None else pytest.approx(exp[key], abs=1e-2)), (tenant, key)
        assert row["calls_per_day"]["p95"] == exp["calls_per_day"]["p95"]
        assert row["calls_per_day"]["max"] == exp["calls_per_day"]["max"]
        assert row["calls_per_day"]["mean"] == pytest.approx(exp["calls_per_day"]["mean"], abs=1e-3)
        if tenant is None:
            assert row["tier"] is None and row["fee"] == {"amount": None, "currency": None}
        else:
            assert row["tier"] == TENANTS[tenant][0]
            for key in ("tier_by_usage", "over_tier_days", "fee"):
                assert row[key] == exp[key], (tenant, key)
    assert got["bistro"]["over_tier_days"] > 0  # the generated month really crosses tier1's threshold

    # the billing view agrees with the report, day by day
    view = await db.fetch(
        "SELECT tenant, day, calls FROM billing_daily_calls WHERE day >= $1 AND day < $2",
        date(year, month, 1),
        date(year + month // 12, month % 12 + 1, 1),
    )
    from_view = {(r["tenant"], r["day"].isoformat()): r["calls"] for r in view}
    from_report = {(t, d): n for t, row in got.items() for d, n in row["daily"].items() if n}
    assert from_view == from_report
    monthly = {
        r["tenant"]: r
        for r in await db.fetch("SELECT * FROM billing_tier_usage_monthly WHERE month = $1", date(year, month, 1))
    }
    for tenant in TENANTS:
        assert monthly[tenant]["calls"] == expected[tenant]["calls"]
        assert monthly[tenant]["p95_per_day"] == expected[tenant]["calls_per_day"]["p95"]
        assert monthly[tenant]["over_tier_days"] == expected[tenant]["over_tier_days"]


async def test_every_active_tenant_listed_without_calls_and_formats(db, cli_env, capsys):
    await seed_catalogue(db)
    assert await asyncio.to_thread(run_cli, "usage", "--period", "2026-03", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    rows = {t["tenant"]: t for t in report["tenants"]}
    assert set(rows) == {"acme", "bistro", None}
    assert rows["acme"]["calls"] == 0 and rows["acme"]["asr"] is None and rows["acme"]["acd_seconds"] is None
    assert len(rows["acme"]["daily"]) == 31
    assert rows["acme"]["fee"] == {"amount": "8153.42", "currency": "CZK"}  # 96000 * 31 / 365
    assert await asyncio.to_thread(run_cli, "usage", "--period", "2026-03", "--format", "csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tenant,tier,calls,answered,asr,ner,acd_seconds")
    assert [line.split(",")[0] for line in lines[1:]] == ["acme", "bistro", "(none)"]
    assert await asyncio.to_thread(run_cli, "usage", "--period", "2026-03", "--tenant", "bistro") == 0
    table = capsys.readouterr().out
    assert "bistro" in table and "acme" not in table
    assert await asyncio.to_thread(run_cli, "usage", "--period", "2026-03", "--tenant", "nobody") == 2


async def test_billing_role_reads_views_not_tables(db, pg_server):
    await seed_catalogue(db)
    assert await db.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'pbx_sla_billing'") is False
    await db.execute("SET ROLE pbx_sla_billing")
    try:
        assert await db.fetchval("SELECT count(*) FROM billing_daily_calls") == 0
        assert await db.fetchval("SELECT count(*) FROM billing_tier_usage_monthly") == 0
        for table in ("usage_daily", "calls", "cdr_legs", "tenants", "requesters"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await db.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await db.execute("RESET ROLE")
