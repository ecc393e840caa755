"""The FastAGI server over real sockets, with a scripted fake Asterisk: decisions and variables, the
PIN path, hang-ups at every step, clients leaving mid-headers, hostile caller text, many calls at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from polling import eventually
from test_agi_protocol import parse_args
from test_routing import ACME_DID, CAT

from pbx_sla.agi.pins import PinLimiter
from pbx_sla.agi.server import SupportAGIServer
from pbx_sla.config import AsteriskServer
from pbx_sla.domain.routing import VARIABLES, decide

PRAGUE = ZoneInfo("Europe/Prague")
MON = datetime(2026, 11, 23, 10, 0, tzinfo=PRAGUE)


@dataclass
class Source:
    current: object = CAT


@dataclass
class Harness:
    server: SupportAGIServer
    port: int
    records: list = field(default_factory=list)


@pytest.fixture
async def agi():
    records: list = []
    servers = [AsteriskServer("pbx1", host="127.0.0.1"), AsteriskServer("pbx2", host="10.9.9.9")]
    srv = SupportAGIServer(
        Source(), records.append, servers=servers, limiter=PinLimiter(), header_timeout=0.5, command_timeout=2,
        clock=lambda: MON,
    )  # fmt: skip
    server = await srv.serve("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield Harness(srv, port, records)
    server.close()
    await server.wait_closed()


def headers(caller="+420777000001", dialled=ACME_DID, uniqueid="1732370000.1", script="support", name="Jana",
            extra=b"") -> bytes:  # fmt: skip
    lines = [
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1/{script}",
        "agi_channel: PJSIP/caller-00000001",
        f"agi_callerid: {caller}",
        f"agi_calleridname: {name}",
        f"agi_uniqueid: {uniqueid}",
        "agi_extension: s",
        f"agi_arg_1: {dialled}",
    ]
    return ("\n".join(lines) + "\n").encode() + extra + b"\n"


async def fake_call(port: int, head: bytes, answer=None, linkedid="1732370000.0") -> list[str]:
    """Play Asterisk: send ``head``, answer each command with ``answer(cmd)`` (default 200 result=1).
    Returns the command lines received (decoded), until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    received: list[str] = []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                break
            cmd = line.decode("utf-8")
            assert cmd.endswith("\n")
            received.append(cmd[:-1])
            reply = answer(cmd[:-1]) if answer else None
            if reply is None:
                reply = f"200 result=1 ({linkedid})" if cmd.startswith("GET FULL VARIABLE") else "200 result=1"
                reply = "200 result=0" if cmd.startswith("EXEC MSet") else reply
            if reply == "CLOSE":
                break
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
    return received


#: characters MSet's argument splitting (ast_app_separate_args) would interpret: never sent in an MSet
MSET_SPECIAL = set(',|"\\()[]{}$ =\t')


def mset_pairs(data: str) -> list[tuple[str, str]]:
    """What Asterisk's MSet does with ``data`` when it holds no special characters: split on ``,``, then on
    the first ``=``. Asserts that no value carries a character MSet would interpret."""
    out = []
    for pair in data.split(","):
        name, sep, value = pair.partition("=")
        assert sep and name.isidentifier(), pair
        assert not set(value) & MSET_SPECIAL, pair
        out.append((name, value))
    return out


def set_vars(commands: list[str]) -> dict[str, str]:
    """The variables the commands set, in order (SET VARIABLE and EXEC MSet alike)."""
    out = {}
    for c in commands:
        args = parse_args(c)
        if args[:2] == ["SET", "VARIABLE"]:
            assert len(args) == 4, c
            out[args[2]] = args[3]
        elif args[:2] == ["EXEC", "MSet"]:
            assert len(args) == 3, c
            out.update(mset_pairs(args[2]))
    return out


async def test_authorised_call_sets_the_decision_and_records_it(agi):
    cmds = await fake_call(agi.port, headers())
    expected = decide("+420777000001", ACME_DID, MON, CAT).variables()
    assert set_vars(cmds) == expected
    assert list(set_vars(cmds)) == list(VARIABLES)
    # two commands per call: every variable in one MSet, then the linkedid
    assert [c.split(" ", 2)[:2] for c in cmds] == [["EXEC", "MSet"], ["GET", "FULL"]]
    assert cmds[-1] == 'GET FULL VARIABLE "${CHANNEL(linkedid)}"'
    await eventually(lambda: agi.records)
    [rec] = agi.records
    assert rec.kind == "support_call"
    d = rec.data
    assert (d["uniqueid"], d["linkedid"], d["server"], d["tenant"], d["action"], d["queue"], d["priority"]) == (
        "1732370000.1", "1732370000.0", "pbx1", "acme", "queue", "support-premium", 5)  # fmt: skip
    assert d["reason"] == "authorised-number" and d["authorised"] is True and d["requester"] == "Jana Novakova"
    assert 0 <= d["latency_ms"] < 300
    assert d["decided_at"] == MON.isoformat()


async def test_no_catalogue_is_fallback(agi):
    agi.server.catalogue = Source(None)
    cmds = await fake_call(agi.port, headers())
    assert set_vars(cmds)["SUPPORT_ACTION"] == "fallback"
    assert set_vars(cmds)["SUPPORT_REASON"] == "no-catalogue"


def pin_answers(*replies: str):
    queue = list(replies)

    def answer(cmd: str):
        if cmd.startswith("GET DATA"):
            return queue.pop(0)
        return None

    return answer


async def test_pin_ok(agi):
    cmds = await fake_call(agi.port, headers(caller="+420600111222"), pin_answers("200 result=4711"))
    assert cmds[0] == 'GET DATA "beep" 6000 12'
    v = set_vars(cmds)
    assert (v["SUPPORT_TENANT"], v["SUPPORT_AUTHORISED"], v["SUPPORT_REASON"], v["SUPPORT_ACTION"]) == (
        "acme", "1", "pin-ok", "queue")  # fmt: skip
    await eventually(lambda: agi.records)
    assert agi.records[0].data["requester"] == "Petr Svoboda" and agi.records[0].data["pin_attempts"] == 1


async def test_pin_second_attempt_after_timeout(agi):
    cmds = await fake_call(agi.port, headers(caller="+420600111222"),
                           pin_answers("200 result= (timeout)", "200 result=4711"))  # fmt: skip
    assert sum(c.startswith("GET DATA") for c in cmds) == 2
    assert set_vars(cmds)["SUPPORT_REASON"] == "pin-ok"


async def test_pin_failures_then_lock(agi, capsys):
    wrong = pin_answers(*["200 result=1111"] * 3)
    cmds = await fake_call(agi.port, headers(caller="+420600111222"), wrong)
    assert sum(c.startswith("GET DATA") for c in cmds) == 3
    v = set_vars(cmds)
    assert (v["SUPPORT_ACTION"], v["SUPPORT_REASON"], v["SUPPORT_AUTHORISED"], v["SUPPORT_QUEUE"], v["QUEUE_PRIO"]) == (
        "general", "pin-failed", "0", "", "0")  # fmt: skip
    # two more failures reach the limit of 5 within 15 minutes: the prompt stops after the 5th
    cmds = await fake_call(
        agi.port, headers(caller="+420600111222", uniqueid="2"), pin_answers(*["200 result=2222"] * 3)
    )
    assert sum(c.startswith("GET DATA") for c in cmds) == 2
    # the next call is not asked at all, even with the right PIN ready
    cmds = await fake_call(agi.port, headers(caller="+420600111222", uniqueid="3"), pin_answers("200 result=4711"))
    assert not any(c.startswith("GET DATA") for c in cmds)
    assert set_vars(cmds)["SUPPORT_REASON"] == "pin-locked"
    # another caller is not affected
    cmds = await fake_call(agi.port, headers(caller="+420600111333", uniqueid="4"), pin_answers("200 result=4711"))
    assert set_vars(cmds)["SUPPORT_REASON"] == "pin-ok"


async def test_pin_digits_never_logged(agi, caplog):
    caplog.set_level("DEBUG")
    await fake_call(agi.port, headers(caller="+420600111222"), pin_answers(*["200 result=98765"] * 3))
    assert "98765" not in caplog.text


async def test_pin_empty_entries_are_pin_none_and_not_counted(agi):
    cmds = await fake_call(agi.port, headers(caller="+420600111222"), pin_answers(*["200 result= (timeout)"] * 3))
    assert set_vars(cmds)["SUPPORT_REASON"] == "pin-none"
    assert agi.server.limiter.failures("caller:+420600111222") == 0


async def test_hangup_during_pin(agi):
    cmds = await fake_call(agi.port, headers(caller="+420600111222"), pin_answers("HANGUP\n200 result=-1"))
    assert set_vars(cmds) == {}
    await eventually(lambda: agi.records)
    [rec] = agi.records
    assert rec.data["action"] == "hangup" and rec.data["tenant"] == "acme"


async def test_hangup_notice_between_commands_does_not_shift_replies(agi):
    def answer(cmd):
        if cmd.startswith("EXEC"):
            return "HANGUP\n200 result=-1"
        return None

    cmds = await fake_call(agi.port, headers(), answer)
    assert [c.split(" ", 1)[0] for c in cmds] == ["EXEC"]  # nothing sent after the hang-up
    await eventually(lambda: agi.records)
    assert agi.records[0].data["action"] == "hangup"


async def test_hangup_notice_during_single_variables(agi):
    def answer(cmd):
        if cmd.startswith("EXEC"):
            return "200 result=-2"
        if "SUPPORT_TIER" in cmd:
            return "HANGUP\n511 Command Not Permitted on a dead channel or intercept routine"
        return None

    cmds = await fake_call(agi.port, headers(), answer)
    assert [parse_args(c)[2] for c in cmds if c.startswith("SET VARIABLE")] == ["SUPPORT_TENANT", "SUPPORT_TIER"]
    await eventually(lambda: agi.records)
    assert agi.records[0].data["action"] == "hangup"


async def test_linkedid_from_the_third_argument_saves_the_round_trip(agi):
    cmds = await fake_call(agi.port, headers(extra=b"agi_arg_2: pbx1\nagi_arg_3: 1732369999.7\n"))
    assert len(cmds) == 1 and cmds[0].startswith("EXEC MSet ")
    assert set_vars(cmds) == decide("+420777000001", ACME_DID, MON, CAT).variables()
    await eventually(lambda: agi.records)
    d = agi.records[0].data
    assert (d["linkedid"], d["server"], d["action"]) == ("1732369999.7", "pbx1", "queue")
    assert d["decide_ms"] >= 0 and d["latency_ms"] >= 0


@pytest.mark.parametrize("arg3", ["", "not a linkedid", "${CHANNEL(linkedid)}", "x" * 65])
async def test_implausible_linkedid_argument_is_asked_for(agi, arg3):
    cmds = await fake_call(agi.port, headers(extra=f"agi_arg_2: pbx1\nagi_arg_3: {arg3}\n".encode()))
    assert cmds[-1] == 'GET FULL VARIABLE "${CHANNEL(linkedid)}"'
    await eventually(lambda: agi.records)
    assert agi.records[0].data["linkedid"] == "1732370000.0"


@pytest.mark.parametrize("refusal", ["200 result=-2", "510 Invalid or unknown command"])
async def test_without_mset_every_variable_is_set_one_by_one(agi, refusal):
    def answer(cmd):
        return refusal if cmd.startswith("EXEC") else None

    cmds = await fake_call(agi.port, headers(), answer)
    singles = [parse_args(c)[2] for c in cmds if c.startswith("SET VARIABLE")]
    assert singles == list(VARIABLES)
    expected = decide("+420777000001", ACME_DID, MON, CAT).variables()
    assert {parse_args(c)[2]: parse_args(c)[3] for c in cmds if c.startswith("SET VARIABLE")} == expected
    # the refusal is this session's: the next call tries MSet again (and falls back again)
    cmds = await fake_call(agi.port, headers(uniqueid="2"), answer)
    assert cmds[0].startswith("EXEC MSet") and len(cmds) == 11
    await eventually(lambda: len(agi.records) == 2)
    assert [r.data["action"] for r in agi.records] == ["queue", "queue"]


async def test_mset_failing_on_the_channel_falls_back_for_this_call_only(agi):
    def answer(cmd):
        return "200 result=-1" if cmd.startswith("EXEC") else None

    cmds = await fake_call(agi.port, headers(), answer)
    assert [parse_args(c)[2] for c in cmds if c.startswith("SET VARIABLE")] == list(VARIABLES)
    cmds = await fake_call(agi.port, headers(uniqueid="2"))
    assert cmds[0].startswith("EXEC MSet")


@pytest.mark.parametrize("cut", [1, 20, 60, 150])
async def test_disconnect_mid_headers_and_server_stays_up(agi, cut):
    _, writer = await asyncio.open_connection("127.0.0.1", agi.port)
    writer.write(headers()[:cut])
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.05)  # the scenario: the server sees the half-sent call closed...
    cpu = time.process_time()
    await asyncio.sleep(0.3)  # ...then idles: measure that it does not spin
    assert time.process_time() - cpu < 0.1  # no busy loop
    cmds = await fake_call(agi.port, headers())
    assert set_vars(cmds)["SUPPORT_ACTION"] == "queue"
    assert len(agi.records) == 1


async def test_stalled_headers_time_out(agi):
    reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
    writer.write(b"agi_network_script: support\n")
    await writer.drain()
    t = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the server
    assert 0.4 < time.monotonic() - t < 2
    writer.close()


async def test_oversized_headers_are_refused(agi):
    reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
    writer.write(b"agi_x: " + b"a" * 40_000 + b"\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    assert agi.records == []


async def test_unknown_script_closes_the_session_only(agi):
    cmds = await fake_call(agi.port, headers(script="other"))
    assert cmds == [] and agi.records == []


async def test_hostile_caller_text_injects_nothing(agi):
    head = headers(caller='"Evil\\" \xff" <+420777000001>', name='x" \\ "\r', extra=b"agi_arg_3: \xc3\x28\n")
    head = head.replace(b"\xc3\xbf", b"\xff")  # a raw non-UTF-8 byte in the header
    cmds = await fake_call(agi.port, head)
    assert all(parse_args(c)[:2] in (["EXEC", "MSet"], ["GET", "FULL"]) for c in cmds)
    assert set(set_vars(cmds)) == set(VARIABLES)
    assert set_vars(cmds)["SUPPORT_TENANT"] == "acme"  # the number in <> still identifies Jana
    await eventually(lambda: agi.records)
    d = agi.records[0].data
    assert "\r" not in d["caller_name"] and "\n" not in d["caller"]


async def test_server_name_mapping(agi):
    from pbx_sla.agi.protocol import Headers

    s = agi.server
    assert s.server_name("127.0.0.1", Headers({})) == "pbx1"
    assert s.server_name("10.9.9.9", Headers({})) == "pbx2"
    assert s.server_name("10.0.0.1", Headers({})) == "unknown"
    # agi_arg_2 never overrides the allow-list: a peer cannot claim another server's name
    assert s.server_name("10.0.0.1", Headers({"arg_2": "pbx7"})) == "unknown"
    assert s.server_name("127.0.0.1", Headers({"arg_2": "pbx2"})) == "pbx1"
    assert s.server_name("::ffff:10.9.9.9", Headers({})) == "pbx2"


async def test_many_concurrent_calls(agi):
    heads = [headers(caller=f"+420777{i:06d}" if i % 2 else "+420777000001", uniqueid=f"u{i}") for i in range(200)]
    results = await asyncio.gather(*(fake_call(agi.port, h) for h in heads))
    assert all(set_vars(r).keys() == set(VARIABLES) for r in results)
    await eventually(lambda: len(agi.records) >= 200)
    assert len(agi.records) == 200
    assert {r.data["uniqueid"] for r in agi.records} == {f"u{i}" for i in range(200)}
