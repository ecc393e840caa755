"""End to end: sipp calls through the real Asterisk produce ``Cdr`` events that `pbx-sla run` (the real
daemon, as a subprocess, with its FastAGI server answering the support dialplan) stores as legs and calls;
after `contracts apply examples/contracts.toml`, `pbx-sla usage --format json` over the test window shows
each call once, under the right tenant, with the right disposition:

* a requester of acme dials acme's DID +420221000111: the support line queues it, a sipp agent answers
  (several legs: caller, the ringall agents) -> acme, attributed by the DID, ANSWERED;
* a requester of acme calls out from the staff phone through trunk-a (a sipp carrier answers)
  -> acme, attributed by the caller's number, ANSWERED, outbound over trunk-a;
* a requester of bistro calls out through trunk-b, whose carrier is down: the dial fails at once
  -> bistro, attributed by the caller's number, not answered (FAILED / CONGESTION / NO ANSWER).

Run under the machine-wide lock: ``flock /tmp/pbx-sla-e2e.lock .venv/bin/pytest tests/e2e/test_calls.py -x``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from . import harness
from .daemon import Daemon, daemon_env, pbx_sla, wait_for, write_config

pytestmark = pytest.mark.e2e

PRAGUE = ZoneInfo("Europe/Prague")
ACME_DID = "+420221000111"
ACME_REQUESTERS = ("+420777000001", "+420777000002")
BISTRO_REQUESTER = "+420603000003"
NOT_ANSWERED = ("FAILED", "CONGESTION", "NO ANSWER")


async def test_calls_from_cdr_events_in_usage(
    asterisk: harness.AsteriskTarget, ami: harness.AmiClient, sipp: harness.Sipp, db, db_dsn: str, tmp_path: Path
) -> None:
    server = asterisk.server_name
    log_start = asterisk.log_offset()
    env = daemon_env(db_dsn, tmp_path / "data")
    contracts = harness.REPO / "examples" / "contracts.toml"
    applied = pbx_sla(env, "contracts", "apply", str(contracts))
    assert applied.returncode == 0, applied.stderr

    config = write_config(tmp_path / "pbx-sla.toml", asterisk, agi_listen=f"{asterisk.agi_host}:{asterisk.agi_port}")
    daemon = Daemon(config, env, tmp_path / "daemon.log")
    for name in ("agent1", "agent2", "trunk-a"):
        sipp.agent(name).start() if name.startswith("agent") else sipp.trunk_peer(name).start()
    for name in ("agent1", "agent2", "trunk-a"):
        harness.wait_contact_status(ami, name, "Reachable", timeout=asterisk.qualify_frequency + 10)
    harness.wait_contact_status(ami, "trunk-b", "Unreachable", timeout=asterisk.qualify_frequency + 15)

    daemon.start()
    try:
        await wait_for(db, "SELECT resynced_at FROM ami_sessions WHERE server = $1", server)

        # 1. inbound to acme's DID, queued, answered by an agent
        mark = ami.mark()
        result = sipp.call(ACME_REQUESTERS[0], ACME_DID, hold_seconds=3)
        assert result.ok, result.stderr[-3000:]
        ami.wait_event("AgentConnect", start=mark, timeout=20)
        inbound = ami.wait_event("Cdr", Destination=ACME_DID, Disposition="ANSWERED", start=mark, timeout=20)

        # 2. outbound through trunk-a from the staff phone, answered by the carrier
        mark = ami.mark()
        result = sipp.call(ACME_REQUESTERS[1], "900420555123456", source="staff", hold_seconds=2)
        assert result.ok, result.stderr[-3000:]
        outbound = ami.wait_event("Cdr", Destination="900420555123456", start=mark, timeout=20)
        assert outbound["Disposition"] == "ANSWERED", outbound

        # 3. outbound through trunk-b, whose carrier is down: the dial fails, nobody answers
        mark = ami.mark()
        result = sipp.call(BISTRO_REQUESTER, "8420555123457", source="staff", expect_answer=False, hold_seconds=5)
        assert result.ok, result.stderr[-3000:]
        failed = ami.wait_event("Cdr", Destination="8420555123457", start=mark, timeout=20)
        assert failed["Disposition"] in NOT_ANSWERED, failed

        # the daemon stored every leg Asterisk reported (one Cdr event = one leg)
        expected_legs = len([e for e in ami.events if e.get("Event") == "Cdr"])
        await wait_for(db, "SELECT count(*) >= $1 FROM cdr_legs WHERE server = $2", expected_legs, server)
    finally:
        assert daemon.stop() == 0, (tmp_path / "daemon.log").read_text(errors="replace")[-4000:]

    assert await db.fetchval("SELECT count(*) FROM cdr_legs WHERE source <> 'ami'") == 0
    calls = {r["linkedid"]: r for r in await db.fetch("SELECT * FROM calls WHERE server = $1", server)}
    assert len(calls) == 3, list(calls.values())
    c1, c2, c3 = (calls[e["LinkedID"]] for e in (inbound, outbound, failed))
    assert (c1["tenant_id"], c1["attributed_by"], c1["disposition"]) == ("acme", "did", "ANSWERED")
    assert (c1["caller_e164"], c1["dialled_e164"], c1["direction"]) == (ACME_REQUESTERS[0], ACME_DID, "internal")
    assert c1["legs"] >= 2  # the caller's leg and the agents' legs: one call
    assert (c2["tenant_id"], c2["attributed_by"], c2["disposition"]) == ("acme", "requester", "ANSWERED")
    assert (c2["direction"], c2["trunk"]) == ("outbound", "trunk-a")
    assert (c3["tenant_id"], c3["attributed_by"]) == ("bistro", "requester")
    assert c3["disposition"] in NOT_ANSWERED and c3["billsec"] == 0
    if failed["DestinationChannel"]:  # a channel towards trunk-b was created before the dial failed
        assert c3["direction"] == "outbound" and c3["trunk"] == "trunk-b"
    # billable seconds: summed over the ANSWERED legs of each call
    for c in (c1, c2, c3):
        legs = await db.fetchval(
            "SELECT coalesce(sum(billsec) FILTER (WHERE disposition = 'ANSWERED'), 0) FROM cdr_legs"
            " WHERE server = $1 AND call_key = $2",
            server,
            c["call_key"],
        )
        assert c["billsec"] == legs

    today = datetime.now(PRAGUE).date()
    out = pbx_sla(env, "usage", "--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=2)),
              "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    tenants = {t["tenant"]: t for t in json.loads(out.stdout)["tenants"]}
    acme, bistro = tenants["acme"], tenants["bistro"]
    assert (acme["calls"], acme["answered"], acme["asr"]) == (2, 2, 1.0)
    assert acme["billable_seconds"] == c1["billsec"] + c2["billsec"] > 0
    assert sum(acme["daily"].values()) == 2
    assert (bistro["calls"], bistro["answered"], bistro["asr"], bistro["acd_seconds"]) == (1, 0, 0.0, None)
    assert tenants.get(None, {"calls": 0})["calls"] == 0
    if asterisk.sandbox:
        # allowed: the intended failure of dialling trunk-b while its carrier is down
        allow = ("res_agi.c", "Could not create dialog to invalid URI", "Failed to create outgoing session")
        assert asterisk.unexpected_problems(allow, since=log_start) == []
