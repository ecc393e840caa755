"""FastAGI hardening (issue 13): overall deadlines (slowloris), the session cap, MSet refusals per
session, records of calls that end during the PIN prompt. Each test failed on the code before the fix."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_agi_protocol import parse_args
from test_agi_server import MON, Source, fake_call, headers, set_vars
from test_routing import ACME_DID

from pbx_sla.agi.pins import PinLimiter
from pbx_sla.agi.server import SupportAGIServer
from pbx_sla.config import AsteriskServer
from pbx_sla.domain.routing import VARIABLES

PIN_CALLER = "+420600111222"  # not a requester's number: asked for a PIN on acme's DID


async def _start(records: list, **options):
    servers = [AsteriskServer("pbx1", host="127.0.0.1")]
    srv = SupportAGIServer(Source(), records.append, servers=servers, limiter=PinLimiter(), clock=lambda: MON,
                           **options)  # fmt: skip
    listener = await srv.serve("127.0.0.1", 0)
    return srv, listener, listener.sockets[0].getsockname()[1]


@pytest.fixture
async def make():
    started = []

    async def factory(**options):
        records: list = []
        srv, listener, port = await _start(records, **options)
        started.append(listener)
        return srv, port, records

    yield factory
    for listener in started:
        listener.close()
        await listener.wait_closed()


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (reads and drops whatever it sends)."""
    t = time.monotonic()
    while True:
        try:
            data = await asyncio.wait_for(reader.read(4096), limit)
        except ConnectionResetError:  # a session cut by a deadline is aborted
            return time.monotonic() - t
        if not data:
            return time.monotonic() - t


async def _drip(writer: asyncio.StreamWriter, chunks: list[bytes], every: float) -> None:
    for chunk in chunks:
        try:
            writer.write(chunk)
            await writer.drain()
        except (ConnectionError, RuntimeError):
            return
        await asyncio.sleep(every)


async def test_header_dripped_byte_by_byte_is_closed_at_the_header_deadline(make):
    # before: every byte restarted the header timer, so a drip kept the session open for as long as it lasted
    _srv, port, records = await make(header_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = headers()
    drip = asyncio.create_task(_drip(writer, [head[i : i + 1] for i in range(len(head))], 0.05))
    elapsed = await _closed_after(reader, 5)
    drip.cancel()
    writer.close()
    assert 0.4 < elapsed < 1.0
    assert records == []


@pytest.mark.parametrize("noise", [b"\n", b"HANGUP\n"])
async def test_noise_after_the_headers_does_not_extend_a_command(make, noise):
    # before: each blank line (or HANGUP notice) restarted the reply timer: open forever
    _srv, port, records = await make(command_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(headers())
    drip = asyncio.create_task(_drip(writer, [noise] * 100, 0.1))
    elapsed = await _closed_after(reader, 5)
    drip.cancel()
    writer.close()
    assert elapsed < 1.2
    await asyncio.sleep(0.05)
    [rec] = records  # the call is still recorded
    assert rec.data["action"] == "hangup"


async def test_slow_valid_replies_are_closed_at_the_session_deadline(make):
    # every reply comes in time for its command, but the whole session takes longer than allowed
    srv, port, records = await make(command_timeout=1.0, session_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(headers(caller=PIN_CALLER))
    await writer.drain()
    t = time.monotonic()
    commands = 0
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
        except ConnectionResetError:  # aborted at the session deadline
            break
        if not line:
            break
        commands += 1
        await asyncio.sleep(0.4)
        writer.write(b"200 result= (timeout)\n")
        await writer.drain()
    elapsed = time.monotonic() - t
    writer.close()
    assert 0.9 < elapsed < 1.5 and commands == 3
    assert srv.stats["session_deadline"] == 1
    await asyncio.sleep(0.05)
    [rec] = records
    assert rec.data["action"] == "hangup" and rec.data["reason"] == "pin-none"


async def test_sessions_over_the_cap_are_closed_at_once_and_counted(make):
    srv, port, _records = await make(max_sessions=3, header_timeout=5)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_after(reader, 2) < 0.5
    writer.close()
    assert srv.stats["rejected_over_cap"] == 1 and srv.stats["active"] == 3
    for _, w in held:
        w.close()
    await asyncio.sleep(0.1)
    assert srv.stats["active"] == 0
    cmds = await fake_call(port, headers())
    assert set_vars(cmds)["SUPPORT_ACTION"] == "queue"


async def test_mset_refusal_does_not_switch_later_calls_to_single_commands(make):
    # before: one refusal made the whole server send 9 SET VARIABLE per call until restart
    _srv, port, _records = await make()

    def refuse(cmd):
        return "510 Invalid or unknown command" if cmd.startswith("EXEC") else None

    cmds = await fake_call(port, headers(), refuse)
    assert [parse_args(c)[2] for c in cmds if c.startswith("SET VARIABLE")] == list(VARIABLES)
    cmds = await fake_call(port, headers(uniqueid="2"))
    assert cmds[0].startswith("EXEC MSet") and len(cmds) == 2


def _get_data(reply: str):
    def answer(cmd: str):
        return reply if cmd.startswith("GET DATA") else None

    return answer


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (_get_data("CLOSE"), "pin-none"),  # connection closed during the prompt, no HANGUP line
        (_get_data("garbage that is no AGI reply"), "pin-none"),
        (lambda cmd: "200 result=1111" if cmd.startswith("GET DATA") else None, "pin-failed"),  # then silence
    ],
    ids=["close", "garbage", "wrong-then-close"],
)
async def test_calls_ending_during_the_pin_prompt_are_recorded(make, answer, reason):
    _srv, port, records = await make(command_timeout=0.5)
    state = {"n": 0}

    def scripted(cmd: str):
        if cmd.startswith("GET DATA"):
            state["n"] += 1
            if reason == "pin-failed" and state["n"] > 1:
                return "CLOSE"
        return answer(cmd)

    await fake_call(port, headers(caller=PIN_CALLER), scripted)
    await asyncio.sleep(0.1)
    [rec] = records
    d = rec.data
    assert (d["action"], d["reason"], d["tenant"], d["authorised"]) == ("hangup", reason, "acme", False)


async def test_call_timing_out_during_the_pin_prompt_is_recorded(make):
    _srv, port, records = await make(command_timeout=0.3, pin_timeout_ms=100)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(headers(caller=PIN_CALLER))
    assert await _closed_after(reader, 5) < 1.5  # GET DATA never answered
    writer.close()
    await asyncio.sleep(0.05)
    [rec] = records
    assert (rec.data["action"], rec.data["reason"], rec.data["dialled"]) == ("hangup", "pin-none", ACME_DID)


async def _call_from(source: str, port: int, head: bytes) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(head)
    lines = []
    while line := await asyncio.wait_for(reader.readline(), 5):
        lines.append(line)
        writer.write(b"200 result=1 (1.0)\n" if line.startswith(b"GET FULL") else b"200 result=1\n")
    writer.close()
    return lines


async def test_peer_outside_every_allow_list_is_refused_and_cannot_name_a_server(make):
    # before: anyone reaching the port wrote support records, under any server name it liked
    srv, port, records = await make()
    lines = await _call_from("127.0.0.2", port, headers(extra=b"agi_arg_2: pbx1\n"))
    assert lines == [] and srv.stats["refused_peers"] == 1
    await asyncio.sleep(0.05)
    assert records == []


async def test_agi_peers_allow_a_network_and_the_record_names_its_server(make):
    records: list = []
    servers = [AsteriskServer("pbx1", host="127.0.0.1"), AsteriskServer("edge", host="198.51.100.1",
                                                                       agi_peers=("127.0.0.0/29",))]  # fmt: skip
    srv = SupportAGIServer(Source(), records.append, servers=servers, clock=lambda: MON)
    listener = await srv.serve("127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        # 127.0.0.3 is only in edge's list: the record says edge whatever agi_arg_2 claims
        assert await _call_from("127.0.0.3", port, headers(extra=b"agi_arg_2: pbx1\n"))
        # 127.0.0.1 is in both lists: agi_arg_2 chooses among them
        assert await _call_from("127.0.0.1", port, headers(uniqueid="2", extra=b"agi_arg_2: pbx1\n"))
        assert await _call_from("127.0.0.1", port, headers(uniqueid="3"))
        assert await _call_from("127.0.0.9", port, headers(uniqueid="4")) == []
    finally:
        listener.close()
    await asyncio.sleep(0.05)
    assert [(r.data["uniqueid"], r.data["server"]) for r in records] == [
        ("1732370000.1", "edge"), ("2", "pbx1"), ("3", "unknown")]  # fmt: skip
    assert srv.stats["refused_peers"] == 1


# --- PIN guessing ------------------------------------------------------------------------------------


@pytest.fixture
def checked(monkeypatch):
    """Counts the PINs actually checked against the hashes (the guesses an attacker gets)."""
    import pbx_sla.agi.server as server_module

    calls = []
    real = server_module.match_pin

    def counting(pin, candidates):
        calls.append(pin)
        return real(pin, candidates)

    monkeypatch.setattr(server_module, "match_pin", counting)
    return calls


def _always(reply: str):
    return lambda cmd: reply if cmd.startswith("GET DATA") else None


async def test_concurrent_calls_from_one_number_get_the_limit_not_more(make, checked):
    # before: every call passed the "locked?" check before any failure was counted (24 guesses checked here)
    srv, port, records = await make()
    await asyncio.gather(*(fake_call(port, headers(caller=PIN_CALLER, uniqueid=f"c{i}"), _always("200 result=1111"))
                           for i in range(20)))  # fmt: skip
    assert len(checked) == 5
    await asyncio.sleep(0.05)
    assert len(records) == 20 and {r.data["reason"] for r in records} <= {"pin-failed", "pin-locked"}
    assert [lock["bucket"] for lock in srv.limiter.lockouts()] == [f"caller:{PIN_CALLER}"]


async def test_a_new_number_per_call_still_spends_the_tenant_limit(make, checked):
    # before: each new caller number had 5 guesses of its own (45 checked here)
    srv, port, _records = await make()
    for i in range(15):
        await fake_call(port, headers(caller=f"+42060000{i:04d}", uniqueid=f"n{i}"), _always("200 result=1111"))
    assert len(checked) == 20  # [agi] pin_tenant_limit
    assert [lock["bucket"] for lock in srv.limiter.lockouts()] == ["tenant:acme"]
    # a requester calling from their registered number is not affected (no PIN asked)
    cmds = await fake_call(port, headers(uniqueid="ok"))
    assert set_vars(cmds)["SUPPORT_REASON"] == "authorised-number"


async def test_unnumbered_callers_share_one_count(make, checked):
    # before: "anonymous", "restricted", "Anonymous", "" ... each had its own 5 guesses (20 checked here)
    srv, port, _records = await make()
    for i, caller in enumerate(["anonymous", "restricted", "Anonymous", "", "unknown", "Private", "x y"]):
        await fake_call(port, headers(caller=caller, uniqueid=f"a{i}"), _always("200 result=1111"))
    assert len(checked) == 5
    assert srv.limiter.failures("caller:anonymous") == 5


async def test_counts_survive_a_restart(tmp_path, checked):
    state = tmp_path / "pin-limits.json"
    for round_ in range(2):  # two daemon lifetimes over the same file
        records: list = []
        srv = SupportAGIServer(Source(), records.append, servers=[AsteriskServer("pbx1", host="127.0.0.1")],
                               limiter=PinLimiter(path=state), clock=lambda: MON)  # fmt: skip
        listener = await srv.serve("127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        for i in range(2):
            await fake_call(port, headers(caller=PIN_CALLER, uniqueid=f"r{round_}.{i}"), _always("200 result=1111"))
        listener.close()
    assert len(checked) == 5  # 3 + 2 in the first life, none in the second
    assert state.stat().st_mode & 0o777 == 0o600
    assert "1111" not in state.read_text()


async def test_right_pin_gives_its_guess_back(make, checked):
    srv, port, _records = await make()
    await fake_call(port, headers(caller=PIN_CALLER), _always("200 result=4711"))
    assert srv.limiter.state == {}
