"""End to end: real sipp calls into a real Asterisk whose dialplan asks `pbx-sla run`'s FastAGI server.

* an authorised requester calls in E.164 and in the national format: queued to the tier's queue with
  its priority, a sipp agent answers;
* an unknown number dials a tenant DID and keys a wrong PIN (RFC 2833 DTMF): three prompts, then the
  general line (the dialplan's general queue), answered too;
* a requester of a tenant whose calendar is closed today: the closed route (Asterisk hangs up, no queue);
* `pbx-sla sla` then shows the support calls, the answered ones and their service level.

Run under the machine-wide lock: ``flock /tmp/pbx-sla-e2e.lock .venv/bin/pytest tests/e2e/test_support.py -x``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from . import harness
from .daemon import Daemon, daemon_env, pbx_sla, wait_for, write_config

pytestmark = pytest.mark.e2e

PRAGUE = ZoneInfo("Europe/Prague")
ACME_DID = "+420221000111"
BISTRO_DID = "+420221000222"


def catalogue_text() -> str:
    """The example catalogue, with the business calendar closed today and tomorrow (public holidays),
    so bistro (tier1, business hours, out_of_hours = closed) is out of hours whenever the test runs."""
    today = datetime.now(PRAGUE).date()
    text = (harness.REPO / "examples" / "contracts.toml").read_text(encoding="utf-8")
    holidays = ", ".join(f'"{today + timedelta(days=d)}"' for d in (-1, 0, 1))
    old = 'holidays = ["2026-12-24", "2026-12-25", "2026-12-26", "2027-01-01"]'
    assert old in text
    text = text.replace(old, f"holidays = [{holidays}]")
    return text.replace('contract_start = "2026-03-01"', f'contract_start = "{today - timedelta(days=30)}"').replace(
        'contract_end = "2027-02-28"', f'contract_end = "{today + timedelta(days=300)}"'
    )


SUPPORT_VARIABLES = ("SUPPORT_TENANT", "SUPPORT_TIER", "SUPPORT_AUTHORISED", "SUPPORT_IN_HOURS", "SUPPORT_ACTION",
                     "SUPPORT_QUEUE", "QUEUE_PRIO", "SUPPORT_REASON", "SUPPORT_OUT_OF_HOURS")  # fmt: skip


def channel_variables(asterisk: harness.AsteriskTarget, channel: str) -> dict[str, str]:
    """The support variables of a live channel, from ``core show channel`` (its "Variables:" block)."""
    out = asterisk.cli(f"core show channel {channel}")
    found = {}
    for line in out.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name in SUPPORT_VARIABLES:
            found[name] = value
    assert found, out
    return found


async def test_support_line_end_to_end(
    asterisk: harness.AsteriskTarget, ami: harness.AmiClient, sipp: harness.Sipp, db, db_dsn: str, tmp_path: Path
) -> None:
    log_since = asterisk.log_offset()  # only this test's Asterisk warnings count (not earlier tests')
    env = daemon_env(db_dsn, tmp_path / "data")
    contracts = tmp_path / "contracts.toml"
    contracts.write_text(catalogue_text(), encoding="utf-8")
    applied = pbx_sla(env, "contracts", "apply", str(contracts))
    assert applied.returncode == 0, applied.stderr

    config = write_config(tmp_path / "pbx-sla.toml", asterisk, agi_listen=f"{asterisk.agi_host}:{asterisk.agi_port}")
    daemon = Daemon(config, env, tmp_path / "daemon.log")
    for name in ("agent1", "agent2"):
        sipp.agent(name).start()
    for name in ("agent1", "agent2"):
        harness.wait_contact_status(ami, name, "Reachable", timeout=asterisk.qualify_frequency + 10)
    t0 = datetime.now(UTC)
    daemon.start()
    try:
        await wait_for(db, "SELECT resynced_at FROM ami_sessions WHERE server = $1", asterisk.server_name)

        # 1. authorised requester, E.164 and national formats: tier3's queue, priority 5, answered
        #    (all nine variables arrive in one EXEC MSet: read them back from the caller's channel while it
        #    is bridged to the agent, as the dialplan sees them)
        for n, caller in enumerate(("+420777000001", "777000001")):
            mark = ami.mark()
            call = sipp.start_call(caller, ACME_DID, hold_seconds=4)
            route = ami.wait_event("UserEvent", UserEvent="PbxSlaSupport", start=mark)
            assert (route["Action"], route["Queue"], route["Tenant"], route["Reason"]) == (
                "queue", "support-premium", "acme", "authorised-number"), (n, route)  # fmt: skip
            join = ami.wait_event("QueueCallerJoin", Queue="support-premium", start=mark)
            assert join["CallerIDNum"] == caller
            ami.wait_event("AgentConnect", Queue="support-premium", start=mark)
            if asterisk.sandbox:
                assert channel_variables(asterisk, join["Channel"]) == {
                    "SUPPORT_TENANT": "acme", "SUPPORT_TIER": "tier3", "SUPPORT_AUTHORISED": "1",
                    "SUPPORT_IN_HOURS": "1", "SUPPORT_ACTION": "queue", "SUPPORT_QUEUE": "support-premium",
                    "QUEUE_PRIO": "5", "SUPPORT_REASON": "authorised-number", "SUPPORT_OUT_OF_HOURS": ""}  # fmt: skip
            result = call.wait()
            assert result.ok, result.stderr[-3000:]

        # 2. unknown number, wrong PIN: three prompts (the 2nd and 3rd time out), then the general line
        mark = ami.mark()
        result = sipp.call("+420600111222", ACME_DID, dtmf="1234", dtmf_delay=1.5, hold_seconds=30, timeout=90)
        assert result.ok, result.stderr[-3000:]
        route = ami.wait_event("UserEvent", UserEvent="PbxSlaSupport", start=mark, timeout=40)
        assert (route["Action"], route["Reason"], route["Tenant"]) == ("general", "pin-failed", "acme")
        ami.wait_event("QueueCallerJoin", Queue="support-basic", start=mark)
        ami.wait_event("AgentConnect", Queue="support-basic", start=mark)

        # 3. tenant out of hours (holiday today): closed, Asterisk hangs up, no queue
        mark = ami.mark()
        result = sipp.call("+420603000003", BISTRO_DID, hold_seconds=10)
        assert result.ok, result.stderr[-3000:]
        assert result.remote_hangup and result.seconds < 8
        route = ami.wait_event("UserEvent", UserEvent="PbxSlaSupport", start=mark)
        assert (route["Action"], route["Reason"], route["Tenant"], route["Queue"]) == (
            "closed", "out-of-hours", "bistro", "")  # fmt: skip
        assert not [e for e in ami.events[mark:] if e.get("Event") == "QueueCallerJoin"]

        # every call recorded, queue events stored
        await wait_for(db, "SELECT count(*) >= 4 FROM support_calls")
        await wait_for(db, "SELECT count(*) >= 3 FROM queue_events WHERE event = 'AgentConnect'")
    finally:
        assert daemon.stop() == 0, (tmp_path / "daemon.log").read_text(errors="replace")[-4000:]
    assert "refused EXEC MSet" not in (tmp_path / "daemon.log").read_text(errors="replace")  # one MSet per call

    rows = {r["caller"]: r for r in await db.fetch("SELECT * FROM support_calls")}
    assert set(rows) == {"+420777000001", "777000001", "+420600111222", "+420603000003"}
    assert all(r["server"] == asterisk.server_name for r in rows.values())
    # the linkedid (agi_arg_3 from the dialplan) is the channel's, as its PbxSlaSupport UserEvent shows
    routes = {e["Uniqueid"]: e for e in ami.events if e.get("UserEvent") == "PbxSlaSupport" and "Uniqueid" in e}
    assert all(r["linkedid"] and r["linkedid"] == routes[r["uniqueid"]]["Linkedid"] for r in rows.values())
    assert all(r["latency_ms"] < 300 for r in rows.values())
    assert rows["777000001"]["caller_e164"] == "+420777000001"
    assert (rows["+420600111222"]["reason"], rows["+420600111222"]["pin_attempts"]) == ("pin-failed", 3)
    assert rows["+420603000003"]["action"] == "closed"
    assert (rows["+420777000001"]["queue"], rows["+420777000001"]["priority"]) == ("support-premium", 5)
    query = "SELECT s.caller, o.outcome FROM support_call_outcomes o JOIN support_calls s USING (server, uniqueid)"
    outcomes = {r["caller"]: r["outcome"] for r in await db.fetch(query)}
    assert outcomes == {"+420777000001": "answered", "777000001": "answered", "+420600111222": "answered",
                        "+420603000003": "not-queued"}  # fmt: skip

    t1 = datetime.now(UTC) + timedelta(seconds=1)
    out = pbx_sla(env, "sla", "--from", t0.isoformat(), "--to", t1.isoformat(), "--format", "json")
    assert out.returncode == 0, out.stderr
    tenants = {t["tenant"]: t for t in json.loads(out.stdout)["tenants"]}
    acme, bistro = tenants["acme"], tenants["bistro"]
    assert (acme["support_calls"], acme["answered"], acme["abandoned"]) == (3, 3, 0)
    assert acme["answered_within_target"] == 3  # agents answer within seconds; tier3's target is 30 s
    assert acme["service_level"] == 1.0
    assert (bistro["support_calls"], bistro["answered"], bistro["service_level"]) == (1, 0, None)
    if asterisk.sandbox:
        assert asterisk.unexpected_problems(since=log_since) == []
