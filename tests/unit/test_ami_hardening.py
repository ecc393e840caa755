"""Issue 13, AMI: an oversized message's tail is not a new message, a silent server is named as such, and
warnings about malformed input are rate-limited and counted."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from polling import eventually

from pbx_sla.ami.collector import Collector, Router
from pbx_sla.ami.connection import MAX_MESSAGE
from pbx_sla.ami.fake import FakeAmi, encode
from pbx_sla.config import AsteriskServer, Secret
from pbx_sla.features import trunks
from pbx_sla.input_warnings import INPUT_WARNINGS, InputWarnings
from pbx_sla.log import setup_logging

SECRET = "t0p-s3cret-value"


@pytest.fixture(autouse=True)
def _clean_counts():
    setup_logging("info", json=True, stream=io.StringIO())
    INPUT_WARNINGS.reset()
    yield
    INPUT_WARNINGS.reset()


@pytest.fixture
async def ami():
    server = await FakeAmi(secret=SECRET).start()
    yield server
    await server.close()


def collecting(port: int, **kw) -> tuple[Collector, list[dict]]:
    seen: list[dict] = []

    def handler(server: str, event):
        seen.append(dict(event))
        return ()

    server = AsteriskServer(name="pbx1", port=port, secret=Secret(SECRET), **kw)
    return Collector(server, Router([{"*": handler}], lambda r: None), lambda r: None), seen


async def test_the_tail_of_an_oversized_message_is_not_parsed_as_a_new_message(ami: FakeAmi) -> None:
    """The forged-tail attack: 3 MiB without a message end, then a ContactStatus inside the same message."""
    collector, seen = collecting(ami.port)
    task = asyncio.create_task(collector.run())
    await eventually(lambda: collector.status.state == "connected")
    forged = b"\r\nEvent: ContactStatus\r\nEndpointName: forged\r\nContactStatus: Reachable\r\n\r\n"
    junk = b"A" * (64 * 1024)
    for _ in range(3 * MAX_MESSAGE // len(junk)):
        ami.broadcast(junk)
        await ami.drain()
    ami.broadcast(forged)
    ami.broadcast(encode({"Event": "ContactStatus", "EndpointName": "genuine", "ContactStatus": "Reachable"}))
    # a message end split across two reads also ends the oversized message
    ami.broadcast(b"B" * (MAX_MESSAGE + 10) + b"\r\nEvent: ContactStatus\r\nEndpointName: forged2\r\n\r")
    await ami.drain()
    await asyncio.sleep(0.05)
    ami.broadcast(b"\n" + encode({"Event": "ContactStatus", "EndpointName": "genuine2"}))
    await eventually(lambda: any(e.get("EndpointName") == "genuine2" for e in seen))
    collector.stop()
    await asyncio.wait_for(task, 5)
    names = [e.get("EndpointName") for e in seen if e.get("Event") == "ContactStatus"]
    assert names == ["genuine", "genuine2"]
    assert INPUT_WARNINGS.snapshot()["by_kind"].get("ami.oversized", 0) >= 2


async def test_a_server_that_never_greets_is_named_as_such() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # says nothing, ever

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    collector, _ = collecting(port, action_timeout=0.3)
    task = asyncio.create_task(collector.run())
    try:
        await eventually(lambda: collector.status.last_error is not None)
    finally:
        collector.stop()
        await asyncio.wait_for(task, 5)
        server.close()
    assert collector.status.last_error == f"127.0.0.1:{port}: connected but no AMI greeting within 0.3 s"


async def test_a_server_that_greets_but_never_answers_login_is_named_as_such() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        await reader.read()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    collector, _ = collecting(port, action_timeout=0.3)
    task = asyncio.create_task(collector.run())
    try:
        await eventually(lambda: collector.status.last_error is not None)
    finally:
        collector.stop()
        await asyncio.wait_for(task, 5)
        server.close()
    assert "no answer to Login within 0.3 s" in collector.status.last_error


def test_malformed_events_are_logged_a_few_times_then_counted(caplog) -> None:
    caplog.set_level(logging.WARNING)
    bad = {"Event": "ContactStatus", "EndpointName": "t1", "URI": "sip:x", "ContactStatus": "Bogus"}
    for _ in range(5000):
        assert list(trunks.handle_contact_status("pbx1", bad)) == []
    skipped = [r for r in caplog.records if "event skipped" in r.getMessage()]
    assert 1 <= len(skipped) <= INPUT_WARNINGS.per_window
    assert INPUT_WARNINGS.snapshot() == {"total": 5000, "by_kind": {"event.ContactStatus": 5000}}


def test_the_limit_is_per_kind_and_each_window_ends_with_a_summary() -> None:
    now = [0.0]
    lines: list[tuple[str, dict]] = []

    class Logger:
        def warning(self, event: str, **kw) -> None:
            lines.append((event, kw))

        exception = warning

    limiter = InputWarnings(per_window=3, window=60.0, clock=lambda: now[0])
    for _ in range(10):
        limiter.warn(Logger(), "a", "bad a")
    limiter.warn(Logger(), "b", "bad b")
    assert [e for e, _ in lines].count("bad a") == 3
    assert [e for e, _ in lines].count("bad b") == 1
    now[0] = 61.0
    limiter.flush(Logger())
    summaries = [kw for e, kw in lines if e == "similar warnings suppressed"]
    assert summaries == [{"warning_kind": "a", "suppressed": 7, "window_seconds": 60.0, "total": 10}]
    limiter.warn(Logger(), "a", "bad a")  # a new window logs again
    assert [e for e, _ in lines].count("bad a") == 4
    assert limiter.snapshot() == {"total": 12, "by_kind": {"a": 11, "b": 1}}


async def test_status_json_counts_malformed_input(tmp_path) -> None:
    from pbx_sla.config import Settings
    from pbx_sla.service import Daemon

    trunks.handle_contact_status("pbx1", {"Event": "ContactStatus"})
    snap = Daemon(Settings(config_file=None, dsn=None, data_dir=tmp_path)).snapshot()
    assert json.loads(json.dumps(snap))["input_warnings"] == {"total": 1, "by_kind": {"event.ContactStatus": 1}}
