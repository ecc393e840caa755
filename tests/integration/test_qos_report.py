"""`pbx-sla qos` and the `qos` part of `pbx-sla sla` against PostgreSQL: legs stored through the sink from
Hangup events, calls attributing them to tenants; expected figures worked out by hand below (MOS values
with the E-model written out here, not pbx_sla's)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tomllib
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pbx_sla import cli
from pbx_sla.ami.connection import parse_message
from pbx_sla.domain import qos as q
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.store.catalogue import apply_catalogue
from pbx_sla.store.qos import QosLegSink

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"


def mos_by_hand(loss_pct: float, jitter: float, rtt: float) -> float:
    d = rtt / 2 + 2 * jitter + 20  # G.711 with PLC: Ie 0, Bpl 25.1; no delay term below 177.3 ms
    r = 93.2 - 0.024 * d - 95 * loss_pct / (loss_pct + 25.1)
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def catalogue_with_qos() -> dict[str, Any]:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    tier3 = data["tiers"]["tier3"]
    tier3["qos"] = {"max_loss": 0.01, "min_mos": 4.2, "max_jitter_ms": 30}
    tier3["credits"] = [
        *tier3["credits"],
        {"metric": "qos_loss", "above": 0.02, "percent": 7},
        {"metric": "qos_mos", "below": 4.0, "percent": 3},
    ]
    data["trunks"][0]["qos"] = {"poor_mos": 3.9, "max_poor_ratio": 0.2}
    return data


def hangup(uid: str, linkedid: str, channel: str, at: datetime, main: str, rtt: str = "") -> dict[str, str]:
    lines = [
        "Event: Hangup",
        f"Timestamp: {at.timestamp():.6f}",
        f"Channel: {channel}",
        f"Uniqueid: {uid}",
        f"Linkedid: {linkedid}",
        f"ChanVariable: RTPAUDIOQOS={main}",
        f"ChanVariable: RTPAUDIOQOSRTT={rtt}",
    ]
    return parse_message("\r\n".join(lines))


def main_var(received: int, lost: int, jitter_s: float, rtt_s: float = 0.0) -> str:
    return (
        f"ssrc=1;themssrc=2;lp={lost};rxjitter=0.000000;rxcount={received};txjitter={jitter_s:.6f};txcount=5;"
        f"rlp=0;rtt={rtt_s:.6f};rxmes=0.000000;txmes=80.0"
    )


def t(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


async def store(db) -> None:
    cat = parse_catalogue(catalogue_with_qos(), "test")
    await apply_catalogue(db, cat, "test")
    events = [
        # acme call L1 over trunk-a: 5 % lost, 20 ms jitter, no RTCP from the carrier
        hangup("L1.1", "L1", "PJSIP/trunk-a-00000001", t(2, 9), main_var(950, 50, 0.020)),
        # the agent's leg of the same call: its own loss is the LAN's, never the trunk's
        hangup("L1.2", "L1", "PJSIP/agent1-00000002", t(2, 9), main_var(1000, 100, 0.050)),
        # acme call L2 over trunk-a: clean, the carrier reports RTT 80 ms
        hangup("L2.1", "L2", "PJSIP/trunk-a-00000003", t(3, 9), main_var(1000, 0, 0.0), rtt="maxrtt=000.090000;"),
        # a trunk-a call no tenant owns (no stored call): counts for the trunk only
        hangup("L3.1", "L3", "PJSIP/trunk-a-00000004", t(4, 9), main_var(500, 0, 0.010)),
        # bistro over trunk-b: nothing received, not measured
        hangup("L4.1", "L4", "PJSIP/trunk-b-00000005", t(5, 9), main_var(0, 1, 0.0)),
        # before the period
        hangup("L0.1", "L0", "PJSIP/trunk-a-00000000", datetime(2026, 10, 31, 22, tzinfo=UTC), main_var(10, 90, 0.3)),
    ]
    events[2]["ChanVariable(RTPAUDIOQOS)"] = main_var(1000, 0, 0.0, rtt_s=0.080)
    records = [q.hangup_record("pbx1", e) for e in events]
    sink = QosLegSink()
    async with db.transaction():
        await sink.write(db, [r for r in records if r is not None])
    async with db.transaction():  # replayed: changes nothing
        await sink.write(db, [r for r in records if r is not None])
    for key, tenant, day in (("L1", "acme", 2), ("L2", "acme", 3), ("L4", "bistro", 5)):
        await db.execute(
            """INSERT INTO calls (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                                  direction, trunk, tenant_id)
               VALUES ('pbx1', $1, $1, 2, $2, $2, $3, 'ANSWERED', 60, 'inbound', 'trunk-a', $4)""",
            key,
            t(day, 9) - timedelta(minutes=1),
            t(day, 9).date(),
            tenant,
        )


async def run_cli(cli_env: dict[str, str], *args: str) -> tuple[int, str]:
    """The real console entry point (it runs its own event loop: in a thread)."""
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with redirect_stdout(out):
            code = await asyncio.to_thread(cli.main, list(args))
    finally:  # cli.main points logging at this test's stderr: give the next test its own
        root.handlers[:], root.level = handlers, level
    return code, out.getvalue()


async def test_qos_report_figures_breaches(db, cli_env) -> None:
    await store(db)
    assert await db.fetchval("SELECT count(*) FROM qos_legs") == 6
    code, text = await run_cli(cli_env, "qos", "--period", "2026-11", "--format", "json")
    assert code == 0, text
    report = json.loads(text)
    trunks = {r["trunk"]: r for r in report["trunks"]}
    a, b = trunks["trunk-a"], trunks["trunk-b"]
    m1, m2, m3 = mos_by_hand(5, 20, 0), mos_by_hand(0, 0, 80), mos_by_hand(0, 10, 0)
    assert (a["legs_measured"], a["packets_received"], a["packets_lost"]) == (3, 2450, 50)
    assert a["loss_ratio"] == pytest.approx(50 / 2500)
    assert a["jitter_ms_mean"] == pytest.approx((20 * 950 + 10 * 500) / 2450, abs=1e-6)
    assert a["jitter_ms_p95"] == pytest.approx(20.0)  # per-leg maxima 20, 0, 10: the 3rd of 3
    assert (a["rtt_ms_p95"], a["rtt_coverage"]) == (pytest.approx(80.0), pytest.approx(1 / 3, abs=1e-6))
    assert a["mos_mean"] == pytest.approx((m1 + m2 + m3) / 3, abs=1e-6)
    assert m1 < 3.9 < min(m2, m3)  # the trunk's poor threshold: one poor leg of three
    assert (a["poor_calls"], a["poor_ratio"]) == (1, pytest.approx(1 / 3, abs=1e-6))
    assert a["breaches"] == [{"metric": "qos_poor_ratio", "target": 0.2, "actual": pytest.approx(1 / 3, abs=1e-6)}]
    assert b["legs_measured"] == 0
    assert all(b[k] is None for k in ("loss_ratio", "jitter_ms_mean", "jitter_ms_p95", "rtt_ms_p95", "mos_mean"))

    tenants = {r["tenant"]: r for r in report["tenants"]}
    acme = tenants["acme"]
    assert (acme["legs_measured"], acme["packets_received"], acme["packets_lost"]) == (2, 1950, 50)
    assert acme["loss_ratio"] == pytest.approx(50 / 2000)
    assert (acme["rtt_ms_p95"], acme["rtt_coverage"]) == (pytest.approx(80.0), 0.5)
    assert acme["mos_mean"] == pytest.approx((m1 + m2) / 2, abs=1e-6)
    assert [(x["metric"], x["target"]) for x in acme["breaches"]] == [("qos_loss", 0.01), ("qos_mos", 4.2)]
    assert tenants["bistro"]["legs_measured"] == 0 and tenants["bistro"]["breaches"] == []

    code, text = await run_cli(cli_env, "qos", "--period", "2026-11", "--tenant", "acme", "--format", "json")
    only = json.loads(text)
    assert [r["tenant"] for r in only["tenants"]] == ["acme"]
    assert [r["trunk"] for r in only["trunks"]] == ["trunk-a"]
    assert only["trunks"][0]["legs_measured"] == 2
    code, text = await run_cli(cli_env, "qos", "--period", "2026-11", "--trunk", "pbx1/trunk-b", "--format", "csv")
    assert code == 0 and text.splitlines()[1].startswith("trunk,pbx1/trunk-b,0,")


async def test_sla_report_carries_qos_and_its_credit(db, cli_env) -> None:
    await store(db)
    code, text = await run_cli(cli_env, "sla", "--period", "2026-11", "--tenant", "acme", "--format", "json")
    assert code == 0, text
    acme = json.loads(text)["tenants"][0]
    assert acme["qos"]["legs_measured"] == 2
    assert acme["qos"]["loss_ratio"] == pytest.approx(0.025)
    assert {"metric": "qos_loss", "target": 0.01, "actual": 0.025} in acme["breaches"]
    # loss 2.5 % is above the 2 % credit rule (7 %); MOS 4.12 is not below 4.0: 7 % of the fee
    fee = (Decimal(96000) * 30 / 365).quantize(Decimal("0.01"))
    assert acme["credit"]["percent"] == 7.0
    assert acme["credit"]["amount"] == str((fee * 7 / 100).quantize(Decimal("0.01")))


async def test_unknown_trunk_or_tenant_is_a_usage_error(db, cli_env, capsys) -> None:
    await store(db)
    assert (await run_cli(cli_env, "qos", "--period", "2026-11", "--trunk", "nope"))[0] == 2
    assert "--trunk: no trunk 'nope'" in capsys.readouterr().err
    assert (await run_cli(cli_env, "qos", "--period", "2026-11", "--tenant", "nope"))[0] == 2
