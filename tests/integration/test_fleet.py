"""A fleet: two real ``pbx-sla run`` processes, each beside its own (fake) PBX with its own AMI stream and
server name, writing into one database at the same time.

Both streams use the *same* uniqueids (two PBXs do not coordinate theirs), part of each stream is sent
twice (an AMI replay after a reconnect), and both are sent concurrently. Expected counts come from what
the test sent: every leg and call stored exactly once per server, nothing lost, nothing doubled; the
trunk report per server holds only that server's trunks and the combined one both; `usage` counts the
calls of both PBXs, and `usage --server` each PBX's own (adding up to the combined figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from polling import eventually
from test_cdr_import import run_cli, seed_catalogue
from test_daemon import free_port

from pbx_sla.ami.fake import FakeAmi

SECRET = "fleet-secret"
CALLS = 300  # per PBX
REPLAYED = 50  # the first calls of each stream, sent a second time
SENT_EVENTS = CALLS + REPLAYED + 3  # and three ContactStatus events
ROOT = Path(__file__).resolve().parents[2]


def cdr_event(i: int, server: str) -> bytes:
    """A one-leg inbound call on trunk-a of ``server`` (accountcode acme), answered, 60 s."""
    uid = f"1764000000.{i}"
    minute, sec = divmod(i, 60)
    return (
        f"Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: acme\r\nSource: 0612345678\r\n"
        f'Destination: 221000111\r\nDestinationContext: from-trunk\r\nCallerID: "Client" <0612345678>\r\n'
        f"Channel: PJSIP/trunk-{server}-{i:08x}\r\nDestinationChannel: PJSIP/agent1-{i:08x}\r\n"
        f"LastApplication: Dial\r\nLastData: PJSIP/agent1\r\nStartTime: 2026-11-02 10:{minute:02d}:{sec:02d}\r\n"
        f"AnswerTime: 2026-11-02 10:{minute:02d}:{sec:02d}\r\nEndTime: 2026-11-02 11:{minute:02d}:{sec:02d}\r\n"
        f"Duration: 3600\r\nBillableSeconds: 3600\r\nDisposition: ANSWERED\r\nAMAFlags: DOCUMENTATION\r\n"
        f"UniqueID: {uid}\r\nUserField: \r\nLinkedID: {uid}\r\nSequence: {i}\r\n\r\n"
    ).encode()


def contact_event(server: str, up: bool, ts: float) -> bytes:
    return (
        f"Event: ContactStatus\r\nPrivilege: system,all\r\nTimestamp: {ts:.6f}\r\n"
        f"URI: sip:carrier@127.0.0.1:5100\r\nContactStatus: {'Reachable' if up else 'Unreachable'}\r\n"
        f"AOR: trunk-{server}\r\nEndpointName: trunk-{server}\r\nRoundtripUsec: 1500\r\n\r\n"
    ).encode()


async def fake_pbx() -> FakeAmi:
    ami = await FakeAmi(secret=SECRET).start()
    ami.responses["PJSIPShowEndpoints"] = [
        {"Response": "Success", "EventList": "start", "Message": "A listing of Endpoints follows"},
        {"Event": "EndpointListComplete", "EventList": "Complete", "ListItems": "0"},
    ]
    ami.responses["PJSIPShowRegistrationsOutbound"] = [
        {"Response": "Success", "EventList": "start", "Message": "Following are Events for each registration"},
        {"Event": "OutboundRegistrationDetailComplete", "EventList": "Complete", "ListItems": "0"},
    ]
    return ami


def start_daemon(work: Path, name: str, ami: FakeAmi, dsn: str) -> tuple[subprocess.Popen, Path]:
    data_dir = work / name
    data_dir.mkdir()
    config = work / f"{name}.toml"
    config.write_text(
        f'[[asterisk]]\nname = "{name}"\nport = {ami.port}\nsecret = "{SECRET}"\n'
        f'[agi]\nlisten = "127.0.0.1:{free_port()}"\n[daemon]\ndata_dir = "{data_dir}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_")}
    env["PBX_SLA_DSN"] = dsn
    log = (work / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pbx_sla.cli", "run", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    return proc, data_dir


def status(data_dir: Path) -> dict:
    try:
        snapshot: dict = json.loads((data_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return snapshot


def resynced(data_dir: Path) -> bool:
    return bool((status(data_dir).get("servers") or [{}])[0].get("resynced"))


async def stream(ami: FakeAmi, server: str) -> None:
    """The PBX's events in chunks (yielding between them so both streams interleave), then a replay."""
    t0 = time.time()
    writer = ami.clients[0]
    writer.write(contact_event(server, True, t0 - 3600))
    for start in range(0, CALLS, 25):
        writer.write(b"".join(cdr_event(i, server) for i in range(start, start + 25)))
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.write(contact_event(server, False, t0 - 1800) + contact_event(server, True, t0 - 1700))
    writer.write(b"".join(cdr_event(i, server) for i in range(REPLAYED)))  # replayed after a "reconnect"
    await writer.drain()


async def test_two_daemons_write_into_one_database_without_loss_or_duplicates(db, db_dsn, cli_env, tmp_path, capsys):
    await seed_catalogue(db)  # tenant acme by account code; time zone Europe/Prague
    servers = ("pbx-a", "pbx-b")
    amis = {s: await fake_pbx() for s in servers}
    daemons = {s: start_daemon(tmp_path, s, amis[s], db_dsn) for s in servers}
    try:
        deadline = time.monotonic() + 120
        while not all(resynced(d) for _, d in daemons.values()):
            for s, (proc, _) in daemons.items():
                assert proc.poll() is None, (tmp_path / f"{s}.log").read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "daemons did not come up"
            await asyncio.sleep(0.2)
        await asyncio.gather(*(stream(amis[s], s) for s in servers))

        def settled() -> bool:
            """Each daemon read every event sent to it and its writer wrote every record to the database."""
            for _, data_dir in daemons.values():
                snapshot = status(data_dir)
                server = (snapshot.get("servers") or [{}])[0]
                writer = snapshot.get("writer") or {}
                if server.get("events", 0) < SENT_EVENTS or writer.get("written", 0) < CALLS + REPLAYED:
                    return False
                if writer.get("memory") or writer.get("spooled"):
                    return False
            return True

        await eventually(settled, timeout=180, interval=0.5, what="both daemons read and wrote everything")
    finally:
        for proc, _ in daemons.values():
            proc.send_signal(signal.SIGTERM)
        codes = {s: proc.wait(60) for s, (proc, _) in daemons.items()}
        for ami in amis.values():
            await ami.close()
    assert codes == dict.fromkeys(servers, 0)

    # exactly once per server: legs, distinct uniqueids, calls
    for s in servers:
        legs = await db.fetchval("SELECT count(*) FROM cdr_legs WHERE server = $1", s)
        distinct = await db.fetchval("SELECT count(DISTINCT uniqueid) FROM cdr_legs WHERE server = $1", s)
        calls = await db.fetchval("SELECT count(*) FROM calls WHERE server = $1", s)
        assert (legs, distinct, calls) == (CALLS, CALLS, CALLS), s
    assert await db.fetchval("SELECT count(*) FROM calls WHERE tenant_id = 'acme'") == 2 * CALLS

    # the trunk report: per server only its own trunk, combined both
    def trunks(*extra: str) -> list[tuple[str, str]]:
        capsys.readouterr()
        assert run_cli("trunks", "--period", "2026-12", "--format", "json", *extra) == 0
        return sorted((t["server"], t["trunk"]) for t in json.loads(capsys.readouterr().out)["trunks"])

    combined = await asyncio.to_thread(trunks)
    for s in servers:
        assert await asyncio.to_thread(trunks, "--server", s) == [(s, f"trunk-{s}")]
    assert [t for t in combined if t[0] in servers] == sorted((s, f"trunk-{s}") for s in servers)

    # usage: both PBXs' calls, once each (2 * CALLS calls of an hour on 2026-11-02); per server CALLS each,
    # adding up to the combined report; the fee only in the combined (fleet) report
    def usage(*extra: str) -> dict:
        capsys.readouterr()
        argv = ("usage", "--period", "2026-11", "--tenant", "acme", "--format", "json", *extra)
        assert run_cli(*argv) == 0
        report: dict = json.loads(capsys.readouterr().out)
        assert len(report["tenants"]) == 1
        return report

    fleet = await asyncio.to_thread(usage)
    (acme,) = fleet["tenants"]
    assert (acme["calls"], acme["answered"], acme["billable_seconds"]) == (2 * CALLS, 2 * CALLS, 2 * CALLS * 3600)
    assert acme["daily"]["2026-11-02"] == 2 * CALLS and acme["fee"] is not None
    assert fleet["scope"] == "fleet" and set(servers) <= set(fleet["servers"])
    for s in servers:
        view = await asyncio.to_thread(usage, "--server", s)
        (mine,) = view["tenants"]
        assert (view["servers"], view["scope"]) == ([s], "servers")
        assert (mine["calls"], mine["answered"], mine["billable_seconds"]) == (CALLS, CALLS, CALLS * 3600), s
        assert mine["daily"]["2026-11-02"] == CALLS and mine["fee"] is None
