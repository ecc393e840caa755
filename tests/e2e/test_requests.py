"""End to end: a support request opened by a real abandoned queue call and reacted to by a real callback.

* acme (tier3: 24/7 calendar, reaction target 4 h) — its requester +420777000001 dials acme's DID; both
  agents' phones ring and are never picked up (scripts/sipp/agent_ringing.xml); the caller hangs up after a
  few seconds: QueueCallerAbandon → a request opens;
* the sipp "staff" phone (endpoint ``staff``, listed in ``[support] staff``) calls the requester back through
  the outbound route (``00420777000001`` over trunk-a, whose sipp carrier answers) and talks 3 s (the
  catalogue's ``callback_min_seconds`` is 2);
* `pbx-sla requests` shows one request, ``why`` abandoned, reacted by callback, ``met``, with business seconds
  = callback answer - opening (24/7: wall time), checked against the stored records.

The business-hours case (a request opened on a Friday evening is due on Monday) needs a Friday evening: it is
tested at integration level with stored records and a fixed clock (tests/integration/test_requests_report.py).

Run under the machine-wide lock: ``flock /tmp/pbx-sla-e2e.lock .venv/bin/pytest tests/e2e/test_requests.py -x``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from . import harness
from .daemon import Daemon, daemon_env, pbx_sla, wait_for, write_config

pytestmark = pytest.mark.e2e

ACME_DID = "+420221000111"
REQUESTER = "+420777000001"


def asterisk_zone() -> str:
    """The zone of the sandbox Asterisk's local clock (its CDR times): this machine's, as Asterisk runs here."""
    try:
        return Path("/etc/timezone").read_text(encoding="utf-8").strip() or "UTC"
    except OSError:
        return "UTC"


def catalogue_text() -> str:
    """The example catalogue plus the request keys: tier3 reacts within 4 h, the staff phone is support staff."""
    text = (harness.REPO / "examples" / "contracts.toml").read_text(encoding="utf-8")
    assert "[tiers.tier3]\n" in text
    text = text.replace("[tiers.tier3]\n", '[tiers.tier3]\nreaction_target = "4h"\nreaction_share_target = 0.9\n')
    return text + '\n[support]\nstaff = ["staff"]\ncallback_min_seconds = 2\n'


async def test_abandoned_call_then_callback(
    asterisk: harness.AsteriskTarget, ami: harness.AmiClient, sipp: harness.Sipp, db, db_dsn: str, tmp_path: Path
) -> None:
    log_since = asterisk.log_offset()
    env = daemon_env(db_dsn, tmp_path / "data")
    contracts = tmp_path / "contracts.toml"
    contracts.write_text(catalogue_text(), encoding="utf-8")
    applied = pbx_sla(env, "contracts", "apply", str(contracts))
    assert applied.returncode == 0, applied.stderr

    # CDR times are Asterisk's local clock: say which zone, else they are read in the catalogue's (Prague)
    config = write_config(
        tmp_path / "pbx-sla.toml",
        asterisk,
        agi_listen=f"{asterisk.agi_host}:{asterisk.agi_port}",
        extra_server=f'timezone = "{asterisk_zone()}"',
    )
    daemon = Daemon(config, env, tmp_path / "daemon.log")
    for name in ("agent1", "agent2"):
        sipp.agent(name, answers=False).start()
    sipp.trunk_peer("trunk-a").start()
    for name in ("agent1", "agent2", "trunk-a"):
        harness.wait_contact_status(ami, name, "Reachable", timeout=asterisk.qualify_frequency + 10)
    t0 = datetime.now(UTC)
    daemon.start()
    try:
        await wait_for(db, "SELECT resynced_at FROM ami_sessions WHERE server = $1", asterisk.server_name)

        # 1. the requester waits 5 s while the agents' phones ring, then hangs up: abandoned in the queue
        mark = ami.mark()
        result = sipp.call(REQUESTER, ACME_DID, hold_seconds=5)
        assert result.ok, result.stderr[-3000:]
        join = ami.wait_event("QueueCallerJoin", Queue="support-premium", start=mark)
        ami.wait_event("QueueCallerAbandon", Uniqueid=join["Uniqueid"], start=mark, timeout=20)
        assert not [e for e in ami.events[mark:] if e.get("Event") == "AgentConnect"]

        # 2. the staff phone calls the requester back through trunk-a; the carrier answers; 3 s of talk
        mark = ami.mark()
        result = sipp.call("staff", "00420777000001", source="staff", hold_seconds=3)
        assert result.ok, result.stderr[-3000:]
        ami.wait_event("Cdr", Destination="00420777000001", Disposition="ANSWERED", start=mark, timeout=20)
        # the outbound route's legs report their voice quality: the staff phone's (pushed in the dialplan)
        # and the trunk's (Dial's b() option), each in one PbxSlaQos UserEvent (docs/qos.md)
        qos_legs = {
            e["Channel"].rpartition("-")[0]
            for e in ami.events[mark:]
            if e.get("Event") == "UserEvent" and e.get("UserEvent") == "PbxSlaQos" and e.get("Qos")
        }
        assert qos_legs == {"PJSIP/staff", "PJSIP/trunk-a"}, qos_legs

        await wait_for(db, "SELECT count(*) = 1 FROM support_calls")
        await wait_for(db, "SELECT count(*) >= 1 FROM queue_events WHERE event = 'QueueCallerAbandon'")
        await wait_for(
            db, "SELECT count(*) >= 1 FROM cdr_legs WHERE src_endpoint = 'staff' AND disposition = 'ANSWERED'"
        )
    finally:
        assert daemon.stop() == 0, (tmp_path / "daemon.log").read_text(errors="replace")[-4000:]

    opened = await db.fetchval("SELECT decided_at FROM support_calls")
    leg = await db.fetchrow(
        "SELECT answer_at, billsec, dialled_e164 FROM cdr_legs"
        " WHERE src_endpoint = 'staff' AND disposition = 'ANSWERED'"
    )
    assert leg["dialled_e164"] == REQUESTER and leg["billsec"] >= 2
    t1 = datetime.now(UTC) + timedelta(seconds=1)
    out = pbx_sla(env, "requests", "--from", t0.isoformat(), "--to", t1.isoformat(), "--format", "json")
    assert out.returncode == 0, out.stderr
    [request] = json.loads(out.stdout)["requests"]
    context = (request, opened, dict(leg))
    assert (request["tenant"], request["requester"], request["caller"], request["why"]) == (
        "acme", "Jana Novakova", REQUESTER, "abandoned")  # fmt: skip
    assert (request["reacted_by"], request["status"], request["calls"]) == ("callback", "met", 1), context
    assert datetime.fromisoformat(request["opened_at"]) == opened
    assert datetime.fromisoformat(request["reacted_at"]) == leg["answer_at"]
    assert datetime.fromisoformat(request["deadline"]) == opened + timedelta(hours=4)
    # 24/7: business time is wall time from the opening to the callback's answer
    assert request["business_seconds"] == pytest.approx((leg["answer_at"] - opened).total_seconds(), abs=1e-3)
    assert 2 < request["business_seconds"] < 120  # the caller waited 5 s; CDR times have whole seconds

    sla = pbx_sla(env, "sla", "--from", t0.isoformat(), "--to", t1.isoformat(), "--format", "json")
    assert sla.returncode == 0, sla.stderr
    acme = {t["tenant"]: t for t in json.loads(sla.stdout)["tenants"]}["acme"]
    assert (acme["reaction"]["requests"], acme["reaction"]["met"], acme["reaction"]["share"]) == (1, 1, 1.0)
    if asterisk.sandbox:
        assert asterisk.unexpected_problems(since=log_since) == []
