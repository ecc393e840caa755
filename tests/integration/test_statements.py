"""``pbx-sla statement close/show`` against PostgreSQL: frozen figures equal the ``usage`` and ``sla`` JSON,
closing twice changes nothing, closed rows cannot be changed, and a late CDR leg after a close appears as an
adjustment on the next statement while the closed one stays as it was."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from test_cdr_import import csv_line, fields
from test_cdr_import import run_cli as cdr_cli
from test_sla_report import run_cli
from web_data import PRAGUE, load_month

from pbx_sla import __version__
from pbx_sla.reports.statements import close_month, statement_report

AFTER_DECEMBER = datetime(2027, 1, 1, 12, tzinfo=UTC)
AFTER_JANUARY = datetime(2027, 2, 1, 12, tzinfo=UTC)


async def cli_json(*args: str) -> dict:
    code, text = await run_cli(*args, "--format", "json")
    assert code == 0, text
    return json.loads(text)


@pytest.fixture
async def month(db, cli_env, tmp_path):
    await load_month(db, tmp_path)
    return db


async def test_close_freezes_the_report_figures_and_twice_is_idempotent(month):
    code, out = await run_cli("statement", "close", "--period", "2026-11")
    assert code == 0 and out.startswith("closed 2026-11: 2 statements, 0 with adjustments")
    usage = {t["tenant"]: t for t in (await cli_json("usage", "--period", "2026-11"))["tenants"]}
    sla = {t["tenant"]: t for t in (await cli_json("sla", "--period", "2026-11"))["tenants"]}
    shown = await cli_json("statement", "show", "--period", "2026-11")
    assert shown["closed"]["code_version"] == __version__
    revision = await month.fetchval("SELECT max(id) FROM catalogue_revisions")
    assert shown["closed"]["catalogue_revision"] == revision is not None
    assert [s["tenant"] for s in shown["statements"]] == ["acme", "bistro"]
    for s in shown["statements"]:
        f, u, t = s["figures"], usage[s["tenant"]], sla[s["tenant"]]
        assert (f["calls"], f["answered"], f["billable_seconds"], f["over_tier_days"]) == (
            u["calls"], u["answered"], u["billable_seconds"], u["over_tier_days"])  # fmt: skip
        assert (f["fee"], f["currency"]) == (u["fee"]["amount"], u["fee"]["currency"])
        assert (f["service_level"], f["availability"], f["breaches"]) == (
            t["service_level"], t["availability"], t["breaches"])  # fmt: skip
        assert (f["credit"], f["credit_percent"]) == (t["credit"]["amount"], t["credit"]["percent"])
        due = Decimal(u["fee"]["amount"]) - Decimal(t["credit"]["amount"])
        assert s["amount_due"] == {"amount": str(due), "currency": "CZK"} and s["adjustments"] == []
    before = await month.fetch("SELECT * FROM statements ORDER BY tenant_id")
    code, out = await run_cli("statement", "close", "--period", "2026-11")
    assert code == 0 and "closed already" in out and "nothing changed" in out
    assert await month.fetch("SELECT * FROM statements ORDER BY tenant_id") == before
    assert await month.fetchval("SELECT count(*) FROM statement_closes") == 1


async def test_closed_rows_cannot_be_changed(month):
    assert (await run_cli("statement", "close", "--period", "2026-11"))[0] == 0
    for sql in ("UPDATE statements SET amount_due = 0", "DELETE FROM statements", "TRUNCATE statements CASCADE",
                "UPDATE statement_closes SET tenants = 0", "DELETE FROM statement_closes"):  # fmt: skip
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await month.execute(sql)


async def test_two_closes_racing_write_one(month, db_dsn):
    conns = [await asyncpg.connect(db_dsn) for _ in range(2)]
    try:
        results = await asyncio.gather(*(close_month(c, "2026-11") for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sorted(written for written, _, _ in results) == [False, True]
    assert await month.fetchval("SELECT count(*) FROM statements") == 2


async def test_month_not_over_and_not_closed_are_usage_errors(month):
    code, _ = await run_cli("statement", "close", "--period", "2099-01")
    assert code == 2
    code, _ = await run_cli("statement", "show", "--period", "2026-10")
    assert code == 2


async def test_late_leg_after_close_is_an_adjustment_on_the_next_statement(month, tmp_path):
    assert (await run_cli("statement", "close", "--period", "2026-11"))[0] == 0
    november = await statement_report(month, "2026-11")
    # late CDRs of November, imported after its close: a new answered bistro call of 90 s, and a second leg
    # of bistro's first NO ANSWER call of 1 Nov (uid bistro-1-0) that answered it after a transfer (30 s)
    late = [
        fields(datetime(2026, 11, 12, 15, 0, tzinfo=PRAGUE), acct="bistro", uid="late-1", linked="late-1",
               billsec=90),
        fields(datetime(2026, 11, 1, 10, 1, tzinfo=PRAGUE), acct="bistro", uid="late-2", linked="bistro-1-0",
               billsec=30, seq=2),
    ]  # fmt: skip
    path = tmp_path / "late.csv"
    path.write_text("".join(csv_line(f) for f in late), encoding="utf-8")
    assert await asyncio.to_thread(cdr_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    usage_now = {t["tenant"]: t for t in (await cli_json("usage", "--period", "2026-11"))["tenants"]}
    frozen = {s["tenant"]: s["figures"] for s in november["statements"]}
    assert usage_now["bistro"]["calls"] == frozen["bistro"]["calls"] + 1
    assert usage_now["bistro"]["answered"] == frozen["bistro"]["answered"] + 2

    # the closed month is as it was
    assert await statement_report(month, "2026-11") == november
    written, _, _ = await close_month(month, "2026-12", AFTER_DECEMBER)
    assert written
    december = {s["tenant"]: s for s in (await statement_report(month, "2026-12"))["statements"]}
    assert december["acme"]["adjustments"] == []
    adj = {a["figure"]: a for a in december["bistro"]["adjustments"]}
    assert set(adj) == {"calls", "answered", "billable_seconds"}
    assert adj["calls"] == {"period": "2026-11", "figure": "calls", "was": frozen["bistro"]["calls"],
                            "now": frozen["bistro"]["calls"] + 1, "delta": 1}  # fmt: skip
    assert adj["answered"]["delta"] == 2 and adj["billable_seconds"]["delta"] == 90 + 30
    assert adj["billable_seconds"]["now"] == usage_now["bistro"]["billable_seconds"]
    # stated once: the next close finds nothing new for November
    assert (await close_month(month, "2027-01", AFTER_JANUARY))[0]
    january = await statement_report(month, "2027-01")
    assert all(s["adjustments"] == [] for s in january["statements"])

    code, table = await run_cli("statement", "show", "--period", "2026-12")
    assert code == 0 and "bistro: 2026-11 calls" in table and "(+1)" in table
    html_path = tmp_path / "dec.html"
    code, _ = await run_cli("statement", "show", "--period", "2026-12", "--format", "html", "--output", str(html_path))
    html = html_path.read_text(encoding="utf-8")
    assert code == 0 and html.count('<section class="statement"') == 2
    assert "Changes to earlier months" in html and "4711" not in html


async def test_reaction_share_is_frozen_and_a_late_change_is_an_adjustment(month):
    """The share of requests reacted to in time is a statement figure like availability: frozen at the close,
    and a late support call that changes it is stated on the next statement (was → now, no delta)."""
    from test_requests_report import catalogue as reaction_catalogue
    from test_sla_report import call, qev, t

    from pbx_sla.domain.catalogue_file import parse_catalogue
    from pbx_sla.store.catalogue import apply_catalogue
    from pbx_sla.store.support import QueueEventSink, SupportCallSink

    # the example catalogue with 4 h reaction targets (the requests tests' variant)
    await apply_catalogue(month, parse_catalogue(reaction_catalogue(), "contracts.toml"), "contracts.toml")
    assert (await run_cli("statement", "close", "--period", "2026-11"))[0] == 0
    frozen = {s["tenant"]: s["figures"] for s in (await statement_report(month, "2026-11"))["statements"]}
    sla = {t["tenant"]: t for t in (await cli_json("sla", "--period", "2026-11"))["tenants"]}
    assert frozen["acme"]["reaction"] == sla["acme"]["reaction"]["share"] is not None
    assert frozen["acme"]["reaction_share_target"] == sla["acme"]["reaction_share_target"] == 0.95
    # late: acme called on 28 Nov and hung up in the queue; nobody reacted: a request overdue (before: 2 met
    # of 3 judged, 1 breached; now 2 of 4)
    await SupportCallSink().write(month, [call("late-1", t(28, 9))])
    events = [
        qev("late-1", "QueueCallerJoin", t(28, 9, 0, 1)),
        qev("late-1", "QueueCallerAbandon", t(28, 9, 1, 1), hold_time=60),
    ]
    await QueueEventSink().write(month, events)
    now = (await cli_json("sla", "--period", "2026-11"))["tenants"]
    share = next(x for x in now if x["tenant"] == "acme")["reaction"]["share"]
    assert (frozen["acme"]["reaction"], share) == (0.666667, 0.5)
    assert (await close_month(month, "2026-12", AFTER_DECEMBER))[0]
    december = {s["tenant"]: s for s in (await statement_report(month, "2026-12"))["statements"]}
    adj = {a["figure"]: a for a in december["acme"]["adjustments"]}
    assert adj["reaction"] == {"period": "2026-11", "figure": "reaction", "was": frozen["acme"]["reaction"],
                               "now": share, "delta": None}  # fmt: skip


async def test_a_month_closed_without_the_reaction_figure_is_not_adjusted_for_it(month):
    """Statements closed by a version that did not freeze ``reaction`` never get a reaction adjustment."""
    assert (await close_month(month, "2026-11", AFTER_DECEMBER))[0]
    # as an older version froze it: the same figures without the key (the append-only trigger is bypassed
    # the way a restore would, as the table owner with triggers disabled)
    await month.execute("SET session_replication_role = replica")
    await month.execute("UPDATE statements SET figures = figures - 'reaction' - 'reaction_share_target'")
    await month.execute("RESET session_replication_role")
    assert (await close_month(month, "2026-12", AFTER_DECEMBER))[0]
    december = (await statement_report(month, "2026-12"))["statements"]
    assert all(a["figure"] != "reaction" for s in december for a in s["adjustments"])
