"""``--server NAME`` on ``usage``, ``sla``, ``qos``, ``requests`` and ``trunks`` over two PBXs in one database.

Expected figures come from what the test stored (the generators' own call lists, calls and legs written out
here), not from the code under test: each server's view holds that server's calls only, the per-server
views add up to the fleet view (plus the support calls labelled ``unknown``), and a per-server view prints
the contract's money and prepaid-hours figures as null while the fleet view computes them.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from test_cdr_import import TENANTS, run_cli, seed_catalogue
from test_qos_report import hangup, main_var
from test_sla_report import EXAMPLE, START, call, qev, store_calls, store_trunk_a, t
from test_usage import expected_usage, generate

from pbx_sla.domain import qos as q
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.store.catalogue import apply_catalogue
from pbx_sla.store.qos import QosLegSink
from pbx_sla.store.support import QueueEventSink, SupportCallSink

COUNTS = ("calls", "answered", "busy", "no_answer", "failed", "congestion", "billable_seconds")
KEY = {"ANSWERED": "answered", "BUSY": "busy", "NO ANSWER": "no_answer", "FAILED": "failed",
       "CONGESTION": "congestion"}  # fmt: skip


def report(capsys, *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert run_cli(*argv, "--format", "json") == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def by_tenant(data: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {row["tenant"]: row for row in data["tenants"]}


def counted(calls: list[dict[str, Any]], month: int) -> dict[str | None, dict[str, int]]:
    """Per tenant: calls, each disposition and billable seconds of the month's calls, from the generator's list."""
    out: dict[str | None, dict[str, int]] = {tenant: dict.fromkeys(COUNTS, 0) for tenant in [*TENANTS, None]}
    for c in calls:
        if c["day"].month != month:
            continue
        row = out[c["tenant"]]
        row["calls"] += 1
        row[KEY[c["disposition"]]] += 1
        row["billable_seconds"] += c["billsec"]
    return out


async def test_usage_per_server_adds_up_to_the_fleet(db, cli_env, tmp_path, capsys):
    await seed_catalogue(db)
    sent = {}
    for server, seed in (("pbx-a", 11), ("pbx-b", 12)):
        rows, calls = generate(2026, 10, seed, 300)  # the same uniqueids on both PBXs; October has a DST change
        path = tmp_path / f"{server}.csv"
        path.write_text("".join(rows), encoding="utf-8")
        assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", server) == 0
        sent[server] = calls
    period = ("usage", "--period", "2026-10")

    fleet = await asyncio.to_thread(report, capsys, *period)
    assert (fleet["servers"], fleet["scope"]) == (["pbx-a", "pbx-b", "pbx1"], "fleet")  # pbx1: the catalogue's trunk
    views = {s: await asyncio.to_thread(report, capsys, *period, "--server", s) for s in sent}
    both = await asyncio.to_thread(report, capsys, *period, "--server", "pbx-b", "--server", "pbx-a")
    assert (both["servers"], both["scope"]) == (["pbx-a", "pbx-b"], "servers")

    for server, calls in sent.items():
        view = by_tenant(views[server])
        assert (views[server]["servers"], views[server]["scope"]) == ([server], "servers")
        expected = counted(calls, 10)
        independent = expected_usage(calls, 2026, 10, date(2026, 3, 10))
        for tenant, exp in expected.items():
            assert {k: view[tenant][k] for k in COUNTS} == exp, (server, tenant)
            assert view[tenant]["daily"] == independent[tenant]["daily"], (server, tenant)
            assert view[tenant]["calls_per_day"]["max"] == independent[tenant]["calls_per_day"]["max"]
            # the contract's figures are not a server's: null, never a share
            for key in ("tier_by_usage", "over_tier_days", "fee"):
                assert view[tenant][key] is None, (server, tenant, key)
            if tenant is not None:
                assert view[tenant]["support_hours"] is None

    combined = counted(sent["pbx-a"] + sent["pbx-b"], 10)
    independent = expected_usage(sent["pbx-a"] + sent["pbx-b"], 2026, 10, date(2026, 3, 10))
    for tenant, row in by_tenant(fleet).items():
        assert {k: row[k] for k in COUNTS} == combined[tenant]
        a, b = by_tenant(views["pbx-a"])[tenant], by_tenant(views["pbx-b"])[tenant]
        assert {k: a[k] + b[k] for k in COUNTS} == {k: row[k] for k in COUNTS}
        assert {d: a["daily"][d] + b["daily"][d] for d in row["daily"]} == row["daily"]
        assert {k: by_tenant(both)[tenant][k] for k in COUNTS} == {k: row[k] for k in COUNTS}
        if tenant is not None:  # the fleet view bills as before
            assert row["fee"] == independent[tenant]["fee"]
            assert row["over_tier_days"] == independent[tenant]["over_tier_days"]
            assert row["tier_by_usage"] == independent[tenant]["tier_by_usage"]
    assert combined["bistro"]["calls"] > 0 and combined[None]["calls"] > 0

    # the table says which servers and that the contract's figures are not shown
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, *period, "--server", "pbx-a") == 0
    table = capsys.readouterr().out
    assert (
        "servers: pbx-a only (per-server view: the contract's tier by usage, over-tier days, fee and support hours"
        in table
    )
    assert await asyncio.to_thread(run_cli, *period) == 0
    assert "servers:" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["usage", "sla", "qos", "requests", "trunks"])
async def test_an_unknown_server_is_a_usage_error_listing_the_known_ones(db, cli_env, capsys, command):
    await seed_catalogue(db)  # knows pbx1 (trunk-a)
    await db.execute("INSERT INTO servers (name) VALUES ('pbx2')")
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, command, "--period", "2026-11", "--server", "pbx1", "--server", "pbx9") == 2
    err = capsys.readouterr().err
    assert "--server: unknown server 'pbx9' (known servers: pbx1, pbx2)" in err


def two_pbx_catalogue() -> dict[str, Any]:
    """The example catalogue with a second PBX: trunk-c on pbx2, also one of acme's trunks."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["trunks"].append({"name": "trunk-c", "server": "pbx2"})
    acme = next(x for x in data["tenants"] if x["id"] == "acme")
    acme["trunks"] = ["pbx1/trunk-a", "pbx2/trunk-c"]
    return data


async def store_pbx2(db) -> None:
    """pbx2's support calls (after every pbx1 call, so its requests are its own), trunk-c down 2 h all month
    observed, and trunk legs on both PBXs with their calls."""
    calls, events = [], []
    for uid, day, wait, answered in (("p2a", 12, 5, True), ("p2b", 13, 40, False), ("p2c", 14, 45, True)):
        at = t(day, 9)
        calls.append(call(uid, at, server="pbx2"))
        events.append(qev(uid, "QueueCallerJoin", at + timedelta(seconds=1), server="pbx2"))
        if answered:
            events.append(qev(uid, "AgentConnect", at + timedelta(seconds=1 + wait), server="pbx2", hold_time=wait))
        else:
            events.append(qev(uid, "QueueCallerAbandon", at + timedelta(seconds=1 + wait), server="pbx2",
                              hold_time=wait))  # fmt: skip
    await SupportCallSink().write(db, calls)
    await QueueEventSink().write(db, events)
    await db.execute(
        "INSERT INTO ami_sessions (server, session_id, login_at, resynced_at, last_seen_at) "
        "VALUES ('pbx2', 's2', $1, $1, $2)",
        START - timedelta(hours=1),
        START + timedelta(days=31),
    )
    for at, status in ((START - timedelta(minutes=5), "Reachable"), (t(20, 10), "Unreachable"),
                       (t(20, 12), "Reachable")):  # fmt: skip
        await db.execute(
            "INSERT INTO trunk_observations (server, trunk, at, source, status) VALUES ('pbx2', 'trunk-c', $1, "
            "'peer', $2)",
            at,
            status,
        )
    # trunk legs: pbx1 trunk-a 2 legs (acme, and one no call owns), pbx2 trunk-c 3 legs (2 acme, 1 bistro)
    legs = {
        "pbx1": [("A1", "PJSIP/trunk-a-00000001", 2, main_var(950, 50, 0.020)),
                 ("A2", "PJSIP/trunk-a-00000002", 3, main_var(1000, 0, 0.0))],
        "pbx2": [("A1", "PJSIP/trunk-c-00000001", 4, main_var(990, 10, 0.005)),
                 ("C2", "PJSIP/trunk-c-00000002", 5, main_var(800, 200, 0.040)),
                 ("C3", "PJSIP/trunk-c-00000003", 6, main_var(1000, 0, 0.001))],
    }  # fmt: skip
    owners = {("pbx1", "A1"): "acme", ("pbx2", "A1"): "acme", ("pbx2", "C2"): "acme", ("pbx2", "C3"): "bistro"}
    for server, rows in legs.items():
        records = [q.hangup_record(server, hangup(f"{k}.1", k, ch, t(day, 9), var)) for k, ch, day, var in rows]
        async with db.transaction():
            await QosLegSink().write(db, [r for r in records if r is not None])
    for (server, key), tenant in owners.items():
        day = next(d for k, _, d, _ in legs[server] if k == key)
        await db.execute(
            """INSERT INTO calls (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                                  direction, tenant_id)
               VALUES ($1, $2, $2, 1, $3, $3, $4, 'ANSWERED', 60, 'inbound', $5)""",
            server,
            key,
            t(day, 9) - timedelta(minutes=1),
            t(day, 9).date(),
            tenant,
        )


@pytest.fixture
async def two_pbxs(db, cli_env):
    cat = parse_catalogue(two_pbx_catalogue(), "two-pbx")
    await apply_catalogue(db, cat, "two-pbx")
    await store_calls(db)  # pbx1: a1 a2 a3 b1 b2 c1 d1 (acme), u1 under 'unknown', g1 without a tenant
    await store_trunk_a(db)  # pbx1: trunk-a down 1 h, 2 h maintenance
    await store_pbx2(db)
    return db


NOW = ("--now", "2026-12-01T00:00:00+01:00")


async def test_sla_per_server_counts_that_servers_calls_and_withholds_money(two_pbxs, capsys):
    period = ("sla", "--period", "2026-11", *NOW)
    fleet = await asyncio.to_thread(report, capsys, *period)
    views = {s: await asyncio.to_thread(report, capsys, *period, "--server", s) for s in ("pbx1", "pbx2", "unknown")}
    assert fleet["scope"] == "fleet" and fleet["servers"] == ["pbx1", "pbx2", "unknown"]
    acme = {s: by_tenant(v)["acme"] for s, v in views.items()}
    fleet_acme = by_tenant(fleet)["acme"]

    # by hand: pbx1 a1 a2 a3 b1 b2 c1 d1 (answered a1 a2 a3; abandoned b1 b2 c1; within 30 s: a1 a2; abandoned
    # after the target: b2 c1); pbx2 p2a p2b p2c (answered p2a p2c; within: p2a; abandoned after: p2b);
    # unknown: u1 (answered in 20 s)
    expected = {"pbx1": (7, 3, 3, 2), "pbx2": (3, 2, 1, 1), "unknown": (1, 1, 0, 1)}
    for server, (calls, answered, abandoned, within) in expected.items():
        row = acme[server]
        assert (row["support_calls"], row["answered"], row["abandoned"], row["answered_within_target"]) == (
            calls, answered, abandoned, within), server  # fmt: skip
        assert (row["credit"], row["fee"], row["support_hours"]) == (None, None, None)
    assert acme["pbx1"]["service_level"] == pytest.approx(2 / (3 + 2))
    assert acme["pbx2"]["service_level"] == pytest.approx(1 / (2 + 1))
    for key in ("support_calls", "answered", "abandoned", "answered_within_target"):
        assert sum(acme[s][key] for s in views) == fleet_acme[key], key
    assert fleet_acme["service_level"] == pytest.approx(4 / (6 + 3))

    # availability: pbx1 trunk-a 717 h up of 718 h observed (2 h maintenance); pbx2 trunk-c 718 of 720
    assert acme["pbx1"]["availability"] == pytest.approx(717 / 718, abs=1e-6)
    assert acme["pbx2"]["availability"] == pytest.approx(718 / 720, abs=1e-6)
    assert acme["unknown"]["availability"] is None  # no trunk there
    assert fleet_acme["availability"] == pytest.approx((717 + 718) / (718 + 720), abs=1e-6)
    # per-server breaches are shown against the tier's targets (informative): both miss 0.999 and 0.9
    assert {b["metric"] for b in acme["pbx2"]["breaches"]} == {"service_level", "availability"}
    # the fleet bills: 0.997914 is below 0.999 → 5 % of 96000 * 30 / 365 = 7890.41 → 394.52
    assert fleet_acme["credit"] == {"percent": 5.0, "amount": "394.52", "currency": "CZK"}
    assert fleet_acme["fee"] == {"amount": "7890.41", "currency": "CZK"}

    # voice quality of acme's trunk legs: pbx1 one (A1), pbx2 two (A1, C2)
    assert [acme[s]["qos"]["legs_measured"] for s in ("pbx1", "pbx2")] == [1, 2]
    assert fleet_acme["qos"]["legs_measured"] == 3
    # reaction: requests by the server of their opening call; pbx2 has two (p2a answered; p2b joined by p2c)
    assert acme["pbx2"]["reaction"]["requests"] == 2
    assert sum(acme[s]["reaction"]["requests"] for s in views) == fleet_acme["reaction"]["requests"]

    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, *period, "--server", "pbx2") == 0
    table = capsys.readouterr().out
    assert "servers: pbx2 only (per-server view: the contract's fee, credit and support hours" in table


async def test_requests_per_server_partition_the_fleets(two_pbxs, capsys):
    period = ("requests", "--period", "2026-11", *NOW)
    fleet = (await asyncio.to_thread(report, capsys, *period))["requests"]
    views = {
        s: (await asyncio.to_thread(report, capsys, *period, "--server", s))["requests"]
        for s in ("pbx1", "pbx2", "unknown")
    }
    pbx2 = [(r["opened_at"], r["why"], r["calls"], r["reacted_by"]) for r in views["pbx2"]]
    assert pbx2 == [
        ("2026-11-12T10:00:00+01:00", "answered", 1, "answer"),
        ("2026-11-13T10:00:00+01:00", "abandoned", 2, "answer"),
    ]
    merged = sorted((r["opened_at"], r["tenant"]) for v in views.values() for r in v)
    assert merged == sorted((r["opened_at"], r["tenant"]) for r in fleet)
    assert len(merged) == len(set(merged)) and views["pbx1"]


async def test_qos_and_trunks_per_server(two_pbxs, capsys):
    fleet = await asyncio.to_thread(report, capsys, "qos", "--period", "2026-11")
    views = {s: await asyncio.to_thread(report, capsys, "qos", "--period", "2026-11", "--server", s)
             for s in ("pbx1", "pbx2")}  # fmt: skip
    legs = {s: {(r["server"], r["trunk"]): r["legs_measured"] for r in v["trunks"]} for s, v in views.items()}
    assert legs == {"pbx1": {("pbx1", "trunk-a"): 2, ("pbx1", "trunk-b"): 0}, "pbx2": {("pbx2", "trunk-c"): 3}}
    assert {(r["server"], r["trunk"]): r["legs_measured"] for r in fleet["trunks"]} == legs["pbx1"] | legs["pbx2"]
    tenants = {s: {r["tenant"]: r["legs_measured"] for r in v["tenants"]} for s, v in views.items()}
    assert tenants == {"pbx1": {"acme": 1, "bistro": 0}, "pbx2": {"acme": 2, "bistro": 1}}
    assert {r["tenant"]: r["legs_measured"] for r in fleet["tenants"]} == {"acme": 3, "bistro": 1}
    # pbx2's packets: 990 + 800 + 1000 received, 10 + 200 lost
    c = views["pbx2"]["trunks"][0]
    assert (c["packets_received"], c["packets_lost"]) == (2790, 210)
    # --trunk on another server than --server is a usage error
    capsys.readouterr()
    argv = ("qos", "--period", "2026-11", "--server", "pbx2", "--trunk", "pbx1/trunk-a")
    assert await asyncio.to_thread(run_cli, *argv) == 2
    assert "--trunk: pbx1/trunk-a is not on --server pbx2" in capsys.readouterr().err

    trunks = {
        s: sorted((r["server"], r["trunk"]) for r in (await asyncio.to_thread(
            report, capsys, "trunks", "--period", "2026-11", *(("--server", s) if s else ())))["trunks"])
        for s in ("pbx1", "pbx2", None)
    }  # fmt: skip
    assert trunks["pbx2"] == [("pbx2", "trunk-c")]
    assert trunks["pbx1"] == [("pbx1", "trunk-a"), ("pbx1", "trunk-b")]
    assert trunks[None] == trunks["pbx1"] + trunks["pbx2"]
    assert Counter(s for s, _ in trunks[None]) == {"pbx1": 2, "pbx2": 1}
