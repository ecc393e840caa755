"""The AMI adapter against a raw loopback AMI server: login, bad bytes, bad messages, bad handlers, backoff,
half-open detection, actions, sessions."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from polling import eventually

from pbx_sla.ami.collector import SESSION_KIND, Backoff, Collector, Router
from pbx_sla.ami.connection import AmiActions, AmiManager, AuthenticationError, parse_message
from pbx_sla.ami.fake import FakeAmi, encode
from pbx_sla.config import AsteriskServer, Secret
from pbx_sla.errors import RemoteError
from pbx_sla.log import setup_logging
from pbx_sla.pipeline import Record

SECRET = "t0p-s3cret-value"


@pytest.fixture(autouse=True)
def _logging():
    setup_logging("info", json=True, stream=io.StringIO())


@pytest.fixture
async def ami():
    server = await FakeAmi(secret=SECRET).start()
    yield server
    await server.close()


def server_for(ami: FakeAmi, secret: str = SECRET, **kw) -> AsteriskServer:
    return AsteriskServer(name="pbx1", port=ami.port, secret=Secret(secret), **kw)


class Sink:
    """Collects what a collector submits."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def __call__(self, record: Record) -> None:
        self.records.append(record)

    def of(self, kind: str) -> list[dict]:
        return [dict(r.data) for r in self.records if r.kind == kind]


def start(collector: Collector) -> asyncio.Task:
    return asyncio.create_task(collector.run())


async def stop(collector: Collector, task: asyncio.Task) -> None:
    collector.stop()
    await asyncio.wait_for(task, 5)


def test_parse_message_keeps_first_value_and_ignores_lines_without_separator() -> None:
    msg = parse_message("Event: VarSet\r\nVariable: A\r\nVariable: B\r\ngarbage line\r\nValue: x: y")
    assert msg == {"Event": "VarSet", "Variable": "A", "Value": "x: y"}


async def test_events_survive_bad_bytes_bad_messages_and_a_failing_handler(ami: FakeAmi, caplog) -> None:
    seen: list[dict] = []

    def good(server: str, event):
        seen.append({"server": server, **event})
        return [Record("echo", {"n": event.get("N")})]

    def bad(server: str, event):
        if event.get("N") == "3":
            raise RuntimeError("handler bug")
        return ()

    sink = Sink()
    collector = Collector(server_for(ami), Router([{"Test": good}, {"*": bad}], sink), sink)
    task = start(collector)
    await asyncio.wait_for(ami.authenticated.wait(), 5)
    await eventually(lambda: collector.status.state == "connected")
    ami.broadcast(encode({"Event": "Test", "N": "1", "Timestamp": "1700000000.123456"}))
    ami.broadcast(b"this is not an AMI message\r\nno separator here\r\n\r\n")  # malformed: skipped
    ami.broadcast(b"Event: Test\r\nN: 2\r\nCallerIDName: Ren\xe9\xff\r\n\r\n")  # latin-1, not UTF-8
    ami.broadcast(encode({"Event": "Test", "N": "3"}))  # the '*' handler raises on this one
    data = encode({"Event": "Test", "N": "4", "CallerIDName": "Zoë"})
    cut = data.index("ë".encode()) + 1  # split inside the two-byte character
    ami.broadcast(data[:cut])
    await ami.drain()
    await asyncio.sleep(0.05)  # the scenario: the two halves arrive in two TCP reads
    ami.broadcast(data[cut:])
    ami.broadcast(encode({"Event": "Unrouted", "N": "5"}))
    ami.broadcast(encode({"Event": "Test", "N": "6"}))
    await eventually(lambda: len(seen) == 5)
    await stop(collector, task)

    assert [e["N"] for e in seen] == ["1", "2", "3", "4", "6"]
    assert seen[0]["Timestamp"] == "1700000000.123456"  # Asterisk's time kept
    assert all(float(e["Timestamp"]) > 1.7e9 for e in seen)  # receipt time where absent
    assert seen[1]["CallerIDName"] == "René\u00ff"  # not UTF-8: read as CP1252, as cdr import reads it
    assert seen[3]["CallerIDName"] == "Zoë"  # a character split across two reads is kept
    assert [r["n"] for r in sink.of("echo")] == ["1", "2", "3", "4", "6"]
    text = caplog.text
    assert "not UTF-8" in text
    assert "without Event or Response" in text
    assert "event handler failed" in text and "handler bug" in text
    assert collector.router.errors == 1
    assert collector.status.events == 7  # FullyBooted included
    assert SECRET not in text


async def test_session_records_login_resync_and_stop(ami: FakeAmi) -> None:
    calls: list[str] = []

    async def on_login(server: str, actions: AmiActions):
        reply = await actions.send({"Action": "Ping"})
        calls.append(reply[0]["Ping"])
        return [Record("resync", {"server": server})]

    sink = Sink()
    collector = Collector(server_for(ami), Router([], sink), sink, [on_login])
    task = start(collector)
    await eventually(lambda: collector.status.resynced)
    await stop(collector, task)
    sessions = sink.of(SESSION_KIND)
    assert calls == ["Pong"]
    assert sink.of("resync") == [{"server": "pbx1"}]
    assert {s["session_id"] for s in sessions} == {collector.status.session_id}
    last = sessions[-1]
    assert last["login_at"] <= last["resynced_at"] <= last["lost_at"]
    assert last["lost_reason"] == "stopped"
    assert "resynced_at" not in sessions[0]
    assert collector.status.state == "stopped"


async def test_failing_resync_hook_leaves_the_session_unresynced_but_collecting(ami: FakeAmi, caplog) -> None:
    async def on_login(server: str, actions: AmiActions):
        raise RuntimeError("feature bug")

    seen = []
    sink = Sink()
    collector = Collector(
        server_for(ami), Router([{"Test": lambda s, e: seen.append(e) or ()}], sink), sink, [on_login]
    )
    task = start(collector)
    await eventually(lambda: collector.status.state == "connected")
    await eventually(lambda: "resync hook" in (collector.status.last_error or ""))
    ami.broadcast(encode({"Event": "Test"}))
    await eventually(lambda: len(seen) == 1)
    await stop(collector, task)
    assert all("resynced_at" not in s for s in sink.of(SESSION_KIND))
    assert "feature bug" in caplog.text


async def test_wrong_secret_backs_off_and_never_logs_the_secret(ami: FakeAmi, caplog) -> None:
    wrong = "wr0ng-secret-xyz"
    sink = Sink()
    collector = Collector(server_for(ami, secret=wrong), Router([], sink), sink, backoff=Backoff(0.2, 60))
    task = start(collector)
    await asyncio.sleep(2.5)  # the scenario: count the login attempts made in 2.5 s
    await stop(collector, task)
    # 0.2, 0.4, 0.8, 1.6 s (±25 %) between attempts: about 4 in 2.5 s, never a tight loop
    assert 3 <= ami.login_attempts <= 5
    assert ami.logins == 0
    assert collector.status.last_error and "refused" in collector.status.last_error
    assert "AMI login refused" in caplog.text and "pbx1" in caplog.text
    assert wrong not in caplog.text and wrong not in str(collector.status.as_dict())
    assert sink.of(SESSION_KIND) == []


async def test_login_failure_raises_authentication_error(ami: FakeAmi) -> None:
    manager = AmiManager(server_for(ami, secret="nope"), lambda e: None)
    with pytest.raises(AuthenticationError, match="pbx1"):
        await manager.open()


async def test_unanswered_ping_drops_the_connection_and_reconnects(ami: FakeAmi) -> None:
    sink = Sink()
    server = server_for(ami, ping_interval=0.2, action_timeout=0.3)
    collector = Collector(server, Router([], sink), sink, backoff=Backoff(0.05, 1))
    task = start(collector)
    await eventually(lambda: collector.status.state == "connected")
    first = collector.status.session_id
    ami.mute = True  # half-open: TCP stays up, nothing answers
    await eventually(lambda: collector.status.reconnects >= 1)
    ami.mute = False
    await eventually(lambda: collector.status.state == "connected" and collector.status.session_id != first)
    await stop(collector, task)
    lost = [s for s in sink.of(SESSION_KIND) if s["session_id"] == first and "lost_at" in s]
    assert lost and lost[-1]["lost_reason"] == "connection-lost"
    assert ami.logins == 2


async def test_server_closing_the_connection_is_a_lost_session_then_a_new_one(ami: FakeAmi) -> None:
    sink = Sink()
    collector = Collector(server_for(ami), Router([], sink), sink, backoff=Backoff(0.05, 1))
    task = start(collector)
    await eventually(lambda: collector.status.state == "connected")
    ami.broadcast(b"Event: Partial\r\nN: 1\r\n")  # truncated by the drop below
    await ami.drain()
    ami.drop_clients()
    await eventually(lambda: ami.logins == 2 and collector.status.state == "connected")
    await stop(collector, task)
    sessions = {s["session_id"] for s in sink.of(SESSION_KIND)}
    assert len(sessions) == 2


async def test_actions_list_error_and_timeout(ami: FakeAmi) -> None:
    ami.responses["PJSIPShowEndpoints"] = [
        {"Response": "Success", "EventList": "start", "Message": "A listing of Endpoints follows"},
        {"Event": "EndpointList", "ObjectName": "trunk-a", "DeviceState": "Not in use"},
        {"Event": "EndpointList", "ObjectName": "trunk-b", "DeviceState": "Unavailable"},
        {"Event": "EndpointListComplete", "EventList": "Complete", "ListItems": "2"},
    ]
    ami.responses["Slow"] = []  # never answered
    manager = AmiManager(server_for(ami), lambda e: None)
    await manager.open()
    actions = AmiActions(manager, timeout=0.3)
    try:
        items = await actions.send({"Action": "PJSIPShowEndpoints"})
        assert [i.get("Event") or i.get("Response") for i in items] == [
            "Success",
            "EndpointList",
            "EndpointList",
            "EndpointListComplete",
        ]
        assert items[2]["ObjectName"] == "trunk-b" and all(isinstance(i, dict) for i in items)
        with pytest.raises(RemoteError, match="Invalid/unknown command"):
            await actions.send({"Action": "Nonsense"})
        with pytest.raises(TimeoutError, match="Slow"):
            await actions.send({"Action": "Slow"})
    finally:
        manager.close()


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    b = Backoff(1.0, 60.0)
    delays = [b.next() for _ in range(10)]
    nominal = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert all(0.75 * n <= d <= 1.25 * n for d, n in zip(delays, nominal, strict=True))
    b.reset()
    assert b.next() <= 1.25


def test_panoramisk_logger_stays_at_info_even_in_debug() -> None:
    setup_logging("debug", json=True, stream=io.StringIO())
    assert logging.getLogger("panoramisk").getEffectiveLevel() >= logging.INFO


class Congestion:
    def __init__(self) -> None:
        self.congested = True
        self.relieved = False
        self.full = False


async def test_back_pressure_pauses_reading_and_resumes_without_losing_events(ami: FakeAmi) -> None:
    seen = []
    sink = Sink()
    congestion = Congestion()
    collector = Collector(
        server_for(ami), Router([{"Test": lambda s, e: seen.append(e) or ()}], sink), sink, congestion=congestion
    )
    collector.MAX_PAUSE = 0.3
    task = start(collector)
    await eventually(lambda: collector.status.state == "connected")
    ami.broadcast(b"".join(encode({"Event": "Test", "N": str(n)}) for n in range(5000)))
    await eventually(lambda: collector.status.pauses >= 1)
    paused_at = len(seen)
    assert paused_at < 5000  # reading stopped part-way
    congestion.congested, congestion.relieved = False, True
    await eventually(lambda: len(seen) == 5000)
    await stop(collector, task)
    assert [e["N"] for e in seen] == [str(n) for n in range(5000)]


async def test_user_event_reader_takes_its_messages_and_declines_the_others(ami: FakeAmi, caplog) -> None:
    """A UserEvent's only handler with a ``message`` reader: the collector offers it the raw message (records and
    event counts as for a routed event); declined messages are parsed and routed; a reader that raises costs
    nothing (the message is routed); with a second handler for the name the reader is not used."""
    seen: list[dict] = []

    class Handler:
        def __call__(self, server: str, event):
            seen.append(dict(event))
            return [Record("routed", {"n": event.get("N")})]

        def message(self, server: str, text: str):
            if "N: boom" in text:
                raise RuntimeError("reader bug")
            return [Record("raw", {"text": text})] if "N: raw" in text else None

    handler = Handler()
    assert Router([{"UserEvent": handler}, {"*": lambda s, e: ()}], Sink()).message_handler("UserEvent") is None
    assert Router([{"UserEvent": handler}, {"UserEvent": handler}], Sink()).message_handler("UserEvent") is None
    sink = Sink()
    collector = Collector(server_for(ami), Router([{"UserEvent": handler}], sink), sink)
    task = start(collector)
    await asyncio.wait_for(ami.authenticated.wait(), 5)
    await eventually(lambda: collector.status.state == "connected")
    for n in ("raw", "other", "boom"):
        ami.broadcast(encode({"Event": "UserEvent", "UserEvent": "X", "N": n}))
    await eventually(lambda: len(sink.of("raw")) + len(sink.of("routed")) == 3)
    await stop(collector, task)
    assert sink.of("raw") == [{"text": "Event: UserEvent\r\nUserEvent: X\r\nN: raw"}]
    assert [r["n"] for r in sink.of("routed")] == ["other", "boom"]
    assert [e["N"] for e in seen] == ["other", "boom"]
    assert collector.status.events == 4  # FullyBooted included
    assert collector.status.event_counts["UserEvent"] == 3
    assert "raw message reader failed" in caplog.text
