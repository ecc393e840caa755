"""The harness itself: Asterisk boots with asterisk_conf/, AMI works for the pbx-sla user, trunk
reachability is visible, the support line reaches FastAGI and routes, CDR events carry LinkedID."""

from __future__ import annotations

import time

import pytest

from . import harness

pytestmark = pytest.mark.e2e

CALLER = "+420777000001"


@pytest.fixture(scope="module")
def log_start(asterisk: harness.AsteriskTarget) -> int:
    """messages.log offset when this module started (other modules' tests may log on purpose)."""
    return asterisk.log_offset()


SUPPORT_DID = "+420221000111"


def test_boots_with_essential_modules(asterisk: harness.AsteriskTarget, log_start: int) -> None:
    if not asterisk.sandbox:
        pytest.skip("module list needs the sandbox CLI")
    out = asterisk.cli("module show")
    missing = [m for m in harness.ESSENTIAL_MODULES if m not in out]
    assert not missing, f"modules not loaded: {missing}"
    # our configuration loads without a single ERROR/WARNING line
    assert asterisk.boot_problems == [], "\n".join(asterisk.boot_problems)
    assert asterisk.boot_seconds is not None and asterisk.boot_seconds < 30


def test_ami_user_least_privilege(asterisk: harness.AsteriskTarget, ami: harness.AmiClient) -> None:
    assert ami.action({"Action": "Ping"})[0]["Response"] == "Success"
    # the PJSIP list actions need class system: granted
    items = ami.action({"Action": "PJSIPShowEndpoints"})
    assert items[0]["Response"] == "Success"
    names = {m.get("ObjectName") for m in items if m.get("Event") == "EndpointList"}
    assert {"trunk-a", "trunk-b", "agent1", "agent2"} <= names
    regs = ami.action({"Action": "PJSIPShowRegistrationsOutbound"})
    assert regs[0]["Response"] == "Success"
    # CLI commands and originate are not granted
    assert ami.action({"Action": "Command", "Command": "core show uptime"})[0]["Response"] == "Error"
    denied = ami.action({"Action": "Originate", "Channel": "Local/7000@staff", "Application": "Wait", "Data": "1"})
    assert denied[0]["Response"] == "Error"
    if asterisk.sandbox:
        out = asterisk.cli("manager show user pbx-sla")
        assert "read perm: system,call,agent,user,cdr" in out
        assert "write perm: system" in out


def test_wrong_secret_is_refused(asterisk: harness.AsteriskTarget) -> None:
    with pytest.raises(harness.AmiError):
        harness.AmiClient(asterisk.ami_host, asterisk.ami_port, asterisk.ami_username, "wrong-secret")


def test_trunk_reachable_then_unreachable(asterisk: harness.AsteriskTarget, ami: harness.AmiClient,
                                         sipp: harness.Sipp) -> None:  # fmt: skip
    mark = ami.mark()
    peer = sipp.trunk_peer("trunk-a").start()
    window = asterisk.qualify_frequency + asterisk.qualify_timeout + 5
    up = ami.wait_event("ContactStatus", AOR="trunk-a", ContactStatus="Reachable", timeout=window, start=mark)
    assert up["EndpointName"] == "trunk-a"
    assert "Timestamp" in up  # timestampevents = yes
    ami.wait_event("PeerStatus", Peer="PJSIP/trunk-a", PeerStatus="Reachable", timeout=window, start=mark)
    harness.wait_contact_status(ami, "trunk-a", "Reachable", timeout=window)

    mark = ami.mark()
    t0 = time.monotonic()
    peer.stop()
    down = ami.wait_event("ContactStatus", AOR="trunk-a", ContactStatus="Unreachable", timeout=window, start=mark)
    assert down["RoundtripUsec"] in ("0", "")
    ami.wait_event("PeerStatus", Peer="PJSIP/trunk-a", PeerStatus="Unreachable", timeout=window, start=mark)
    assert time.monotonic() - t0 <= window


def _agent_up(asterisk: harness.AsteriskTarget, ami: harness.AmiClient, sipp: harness.Sipp, name: str) -> None:
    sipp.agent(name).start()
    harness.wait_contact_status(ami, name, "Reachable", timeout=asterisk.qualify_frequency + 10)


def test_support_call_reaches_fastagi_and_queue(asterisk: harness.AsteriskTarget, ami: harness.AmiClient,
                                               sipp: harness.Sipp, agi_listener) -> None:  # fmt: skip
    _agent_up(asterisk, ami, sipp, "agent1")
    listener = agi_listener({
        "SUPPORT_TENANT": "acme",
        "SUPPORT_TIER": "tier3",
        "SUPPORT_AUTHORISED": "1",
        "SUPPORT_IN_HOURS": "1",
        "SUPPORT_ACTION": "queue",
        "SUPPORT_QUEUE": "support-premium",
        "QUEUE_PRIO": "5",
        "SUPPORT_REASON": "authorised-number",
    })  # fmt: skip
    mark = ami.mark()
    result = sipp.call(CALLER, SUPPORT_DID, hold_seconds=3)
    assert result.ok, result.stderr[-3000:]

    session = listener.wait_session()
    assert session.error is None, session.error
    h = session.headers
    assert h["agi_network_script"] == "support"
    assert h["agi_callerid"] == CALLER
    assert h["agi_extension"] == SUPPORT_DID
    assert h["agi_dnid"] == SUPPORT_DID
    assert h["agi_arg_1"] == SUPPORT_DID
    assert h["agi_arg_2"] == asterisk.server_name
    assert all(reply.startswith("200 result=1") for _, reply in session.replies), session.replies

    route = ami.wait_event("UserEvent", UserEvent="PbxSlaSupport", start=mark)
    assert (route["Action"], route["Queue"], route["Tenant"]) == ("queue", "support-premium", "acme")
    join = ami.wait_event("QueueCallerJoin", Queue="support-premium", start=mark)
    assert join["CallerIDNum"] == CALLER
    assert h["agi_arg_3"] == join["Linkedid"]  # the dialplan passes ${CHANNEL(linkedid)}
    connect = ami.wait_event("AgentConnect", Queue="support-premium", start=mark)
    assert connect["Linkedid"] == join["Linkedid"]
    # one Cdr event per leg, all with the call's linkedid and their sequence
    cdr = ami.wait_event("Cdr", LinkedID=join["Linkedid"], Source=CALLER, timeout=15, start=mark)
    assert cdr["Sequence"].isdigit()
    assert cdr["Destination"] == SUPPORT_DID
    assert cdr["Disposition"] == "ANSWERED"


def test_agi_server_down_still_routes(asterisk: harness.AsteriskTarget, ami: harness.AmiClient,
                                     sipp: harness.Sipp) -> None:  # fmt: skip
    # nothing listens at the AGI address: AGISTATUS=FAILURE, the dialplan uses the general queue
    _agent_up(asterisk, ami, sipp, "agent2")
    mark = ami.mark()
    result = sipp.call("+420603000003", "+420221000222", hold_seconds=2)
    assert result.ok, result.stderr[-3000:]
    route = ami.wait_event("UserEvent", UserEvent="PbxSlaSupport", start=mark)
    assert route["Action"] == "fallback"
    assert route["Reason"] == "agi-failure"
    join = ami.wait_event("QueueCallerJoin", Queue="support-basic", start=mark)
    assert join["CallerIDNum"] == "+420603000003"


def test_closed_route_hangs_up(asterisk: harness.AsteriskTarget, ami: harness.AmiClient, sipp: harness.Sipp,
                               agi_listener) -> None:  # fmt: skip
    agi_listener({"SUPPORT_ACTION": "closed", "SUPPORT_QUEUE": "", "SUPPORT_REASON": "out-of-hours"})
    mark = ami.mark()
    result = sipp.call(CALLER, "7000", hold_seconds=15)
    assert result.ok, result.stderr[-3000:]
    assert result.remote_hangup  # Asterisk ended the call (after the closed message), the caller did not
    assert result.seconds < 12
    route = ami.wait_event("UserEvent", UserEvent="PbxSlaSupport", start=mark)
    assert route["Action"] == "closed"
    assert not [e for e in ami.events[mark:] if e.get("Event") == "QueueCallerJoin"]


def test_pin_digits_reach_the_agi_server(asterisk: harness.AsteriskTarget, sipp: harness.Sipp,
                                         agi_listener) -> None:  # fmt: skip
    digits: list[str] = []

    def ask_pin(session: harness.AgiSession, command) -> None:
        # the prompt file need not exist (no sound packages in the root): GET DATA still collects
        reply = command("GET DATA silence/1 6000 4")
        digits.append(reply)
        command('SET VARIABLE SUPPORT_ACTION "closed"')

    agi_listener(script=ask_pin)
    result = sipp.call("+420777000002", "support", dtmf="4711", hold_seconds=10, dtmf_delay=1.0)
    assert result.ok, result.stderr[-3000:]
    assert digits == ["200 result=4711"]


def test_outbound_through_trunk_a(asterisk: harness.AsteriskTarget, ami: harness.AmiClient,
                                  sipp: harness.Sipp) -> None:  # fmt: skip
    sipp.trunk_peer("trunk-a").start()
    harness.wait_contact_status(ami, "trunk-a", "Reachable", timeout=asterisk.qualify_frequency + 10)
    mark = ami.mark()
    result = sipp.call("staff", "900420555123456", source="staff", hold_seconds=2)
    assert result.ok, result.stderr[-3000:]
    cdr = ami.wait_event("Cdr", Destination="900420555123456", timeout=15, start=mark)
    assert cdr["DestinationChannel"].startswith("PJSIP/trunk-a-")
    assert cdr["Disposition"] == "ANSWERED"
    assert cdr["LastApplication"] == "Dial"

    # the trunk goes away: the dial fails at once (CHANUNAVAIL), the caller is not answered
    sipp.trunk_peer("trunk-a").stop()
    harness.wait_contact_status(ami, "trunk-a", "Unreachable", timeout=asterisk.qualify_frequency + 10)
    mark = ami.mark()
    result = sipp.call("staff", "900420555123457", source="staff", expect_answer=False, hold_seconds=5)
    assert result.ok, result.stderr[-3000:]
    cdr = ami.wait_event("Cdr", Destination="900420555123457", timeout=15, start=mark)
    assert cdr["Disposition"] in ("FAILED", "CONGESTION", "NO ANSWER"), cdr


def test_no_errors_logged_by_our_configuration(asterisk: harness.AsteriskTarget, log_start: int) -> None:
    # runs after this module's call tests (file order): dialplan, CDR and queue paths logged nothing unexpected
    if not asterisk.sandbox:
        pytest.skip("needs the sandbox's messages.log")
    # FastAGI down (test_agi_server_down_still_routes) and dialling trunk-a while it is down
    # (test_outbound_through_trunk_a) are logged on purpose: harness.EXPECTED_RUNTIME
    assert asterisk.unexpected_problems(since=log_start) == []
    assert asterisk.master_csv is not None and asterisk.master_csv.exists()
