"""AMI ingest benchmark: a synthetic AMI server on loopback streams a realistic event mix into a real
``pbx-sla run`` subprocess writing to PostgreSQL.

Reports, from one run:
* end to end: events accepted by the daemon's AMI layer per second, and rows committed per second;
* the daemon's RSS sampled over the run (is memory flat?);
* baselines on the same event bytes: panoramisk's own parser (parse only), pbx-sla's reader (parse
  only), pbx-sla's reader + the real features' handlers (in-process), and asyncpg COPY of the same rows.

Usage (the machine is shared: say so when quoting numbers)::

    .venv/bin/python bench/ami_ingest.py --duration 120 [--rate 0] [--dsn postgresql://...]

``--rate 0`` streams as fast as the daemon reads (TCP back-pressure); ``--rate N`` paces N events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_sla.ami.fake import FakeAmi  # noqa: E402

SECRET = "bench-secret"
SERVER = "bench1"
TRUNKS = [f"trunk-{i}" for i in range(20)]
KEPT_TABLES = ("cdr_legs", "trunk_observations", "queue_events")


# -- the event mix --------------------------------------------------------------------------------------
# per 100 events: 70 noise (VarSet 40, Newexten 25, Newstate 5), 10 Cdr, 5 ContactStatus, 3 PeerStatus,
# 12 queue events (QueueCallerJoin, AgentConnect, AgentComplete, QueueCallerLeave: 3 each)
MIX = (
    ["VarSet"] * 40
    + ["Newexten"] * 25
    + ["Newstate"] * 5
    + ["Cdr"] * 10
    + ["ContactStatus"] * 5
    + ["PeerStatus"] * 3
    + ["QueueCallerJoin", "AgentConnect", "AgentComplete", "QueueCallerLeave"] * 3
)
KEPT_PER_100 = 10 + 5 + 3 + 12


def _event(kind: str, i: int, ts: float) -> str:
    uid = f"1700000000.{i}"
    chan = f"PJSIP/trunk-{i % 20}-{i:08x}"
    stamp = f"Timestamp: {ts:.6f}\r\n"
    if kind == "VarSet":
        return (
            f"Event: VarSet\r\nPrivilege: dialplan,all\r\n{stamp}Channel: {chan}\r\nChannelState: 6\r\n"
            f"ChannelStateDesc: Up\r\nCallerIDNum: 0612345678\r\nCallerIDName: Client {i % 97}\r\n"
            f"Context: from-trunk\r\nExten: 0140000000\r\nPriority: 3\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n"
            f"Variable: BRIDGEPEER\r\nValue: PJSIP/agent1-{i:08x}\r\n\r\n"
        )
    if kind == "Newexten":
        return (
            f"Event: Newexten\r\nPrivilege: dialplan,all\r\n{stamp}Channel: {chan}\r\nChannelState: 4\r\n"
            f"ChannelStateDesc: Ring\r\nCallerIDNum: 0612345678\r\nContext: support\r\nExten: s\r\n"
            f"Priority: 2\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\nExtension: s\r\nApplication: Set\r\n"
            f"AppData: QUEUE_PRIO=5\r\n\r\n"
        )
    if kind == "Newstate":
        return (
            f"Event: Newstate\r\nPrivilege: call,all\r\n{stamp}Channel: {chan}\r\nChannelState: 6\r\n"
            f"ChannelStateDesc: Up\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n\r\n"
        )
    if kind == "Cdr":
        sec = i % 50
        return (
            f"Event: Cdr\r\nPrivilege: cdr,all\r\n{stamp}AccountCode: acme\r\nSource: 0612345678\r\n"
            f'Destination: 0140000000\r\nDestinationContext: from-trunk\r\nCallerID: "Client" <0612345678>\r\n'
            f"Channel: {chan}\r\nDestinationChannel: PJSIP/agent1-{i:08x}\r\nLastApplication: Dial\r\n"
            f"LastData: PJSIP/agent1\r\nStartTime: 2026-11-02 10:00:{sec:02d}\r\n"
            f"AnswerTime: 2026-11-02 10:00:{sec:02d}\r\n"
            f"EndTime: 2026-11-02 10:01:{sec:02d}\r\nDuration: 60\r\nBillableSeconds: 60\r\nDisposition: ANSWERED\r\n"
            f"AMAFlags: DOCUMENTATION\r\nUniqueID: {uid}\r\nUserField: \r\nLinkedID: {uid}\r\nSequence: {i}\r\n\r\n"
        )
    if kind == "ContactStatus":
        up = (i // 100) % 2 == 0
        return (
            f"Event: ContactStatus\r\nPrivilege: system,all\r\n{stamp}URI: sip:carrier@127.0.0.1:{5100 + i % 20}\r\n"
            f"ContactStatus: {'Reachable' if up else 'Unreachable'}\r\nAOR: trunk-{i % 20}\r\n"
            f"EndpointName: trunk-{i % 20}\r\nRoundtripUsec: {1500 if up else 0}\r\n\r\n"
        )
    if kind == "PeerStatus":
        up = (i // 100) % 2 == 0
        return (
            f"Event: PeerStatus\r\nPrivilege: system,all\r\n{stamp}ChannelType: PJSIP\r\nPeer: PJSIP/trunk-{i % 20}\r\n"
            f"PeerStatus: {'Reachable' if up else 'Unreachable'}\r\n\r\n"
        )
    # queue events
    return (
        f"Event: {kind}\r\nPrivilege: agent,all\r\n{stamp}Channel: {chan}\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n"
        f"Queue: support-gold\r\nPosition: 1\r\nCount: 1\r\nOriginalPosition: 1\r\nHoldTime: {i % 40}\r\n"
        f"RingTime: 3\r\nTalkTime: 60\r\nReason: agent\r\nMemberName: agent1\r\nInterface: PJSIP/agent1\r\n\r\n"
    )


def events(start: int, count: int, t0: float) -> bytes:
    return "".join(_event(MIX[i % 100], i, t0 + i * 1e-5) for i in range(start, start + count)).encode()


def kept(n: int) -> int:
    """Events among the first n that a feature turns into a row."""
    full, rest = divmod(n, 100)
    return full * KEPT_PER_100 + sum(1 for k in MIX[:rest] if k not in ("VarSet", "Newexten", "Newstate"))


# -- baselines ------------------------------------------------------------------------------------------
def bench_panoramisk_parse(blob: bytes, n: int) -> float:
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        count = 0
        save_stream = None

        def dispatch(self, message):
            Factory.count += 1

    class Transport:
        def write(self, data):
            return None

    proto = AMIProtocol()
    proto.connection_made(Transport())
    proto.factory = Factory()
    proto.version = "bench"
    t = time.perf_counter()
    for i in range(0, len(blob), 65536):
        proto.data_received(blob[i : i + 65536])
    elapsed = time.perf_counter() - t
    assert Factory.count == n, Factory.count
    return n / elapsed


def bench_ours(blob: bytes, n: int, with_handlers: bool) -> tuple[float, list]:
    from pbx_sla.ami.collector import Router
    from pbx_sla.ami.connection import AmiProtocol
    from pbx_sla.config import AsteriskServer, Settings
    from pbx_sla.features import ServiceContext
    from pbx_sla.service import load_features

    records: list = []
    if with_handlers:

        class Catalogue:
            current = None

        settings = Settings(config_file=None, dsn=None, data_dir=Path("."), asterisk=(AsteriskServer(name=SERVER),))
        ctx = ServiceContext(settings=settings, dsn="", submit=records.append, catalogue=Catalogue())
        router = Router([m.event_handlers(ctx) for m in load_features()], records.append)

        def on_event(event):
            router.route(SERVER, event)
    else:
        count = [0]

        def on_event(event):
            count[0] += 1

    class Transport:
        def write(self, data):
            return None

    proto = AmiProtocol(SERVER, on_event, lambda exc: None)
    proto.connection_made(Transport())
    t = time.perf_counter()
    for i in range(0, len(blob), 65536):
        proto.data_received(blob[i : i + 65536])
    elapsed = time.perf_counter() - t
    return n / elapsed, records


async def bench_copy(dsn: str, records: list) -> float:
    """asyncpg COPY of the same rows (record data as text columns) into unlogged scratch tables."""
    by_kind: dict[str, list[dict]] = {}
    for r in records:
        by_kind.setdefault(r.kind, []).append(dict(r.data))
    conn = await asyncpg.connect(dsn)
    try:
        total, elapsed = 0, 0.0
        for kind, rows in by_kind.items():
            cols = sorted({k for row in rows for k in row})
            table = f"bench_copy_{kind}"
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            columns = ", ".join(f'"{c}" text' for c in cols)
            await conn.execute(f'CREATE UNLOGGED TABLE "{table}" ({columns})')
            data = [tuple(None if row.get(c) is None else str(row[c]) for c in cols) for row in rows]
            t = time.perf_counter()
            for i in range(0, len(data), 1000):
                await conn.copy_records_to_table(table, records=data[i : i + 1000], columns=cols)
            elapsed += time.perf_counter() - t
            total += len(data)
            await conn.execute(f'DROP TABLE "{table}"')
        return total / elapsed
    finally:
        await conn.close()


# -- the end-to-end run -----------------------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def committed(conn: asyncpg.Connection) -> int:
    total = 0
    for table in KEPT_TABLES:
        total += await conn.fetchval(f"SELECT count(*) FROM {table}")
    return total


def status(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


async def end_to_end(args: argparse.Namespace, dsn: str, work: Path) -> dict:
    ami = await FakeAmi(secret=SECRET).start()
    ami.responses["PJSIPShowEndpoints"] = [
        {"Response": "Success", "EventList": "start", "Message": "A listing of Endpoints follows"},
        {"Event": "EndpointListComplete", "EventList": "Complete", "ListItems": "0"},
    ]
    ami.responses["PJSIPShowRegistrationsOutbound"] = [
        {"Response": "Success", "EventList": "start", "Message": "Following are Events for each Outbound registration"},
        {"Event": "OutboundRegistrationDetailComplete", "EventList": "Complete", "ListItems": "0"},
    ]
    data_dir = work / "data"
    config = work / "pbx-sla.toml"
    config.write_text(
        f'[[asterisk]]\nname = "{SERVER}"\nport = {ami.port}\nsecret = "{SECRET}"\nping_interval = 10\n'
        f'[agi]\nlisten = "127.0.0.1:{ami.port + 1 if ami.port < 65000 else 45999}"\n'
        f'[daemon]\ndata_dir = "{data_dir}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_")}
    env["PBX_SLA_DSN"] = dsn
    log = (work / "daemon.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once; poll()/pid are what the benchmark needs
        [sys.executable, "-m", "pbx_sla.cli", "run", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    conn = await asyncpg.connect(dsn)
    result: dict = {}
    try:
        deadline = time.monotonic() + 60
        while not (status(data_dir).get("servers") or [{}])[0].get("resynced"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not come up; see {work / 'daemon.log'}")
            await asyncio.sleep(0.2)
        writer = ami.clients[0]
        rss0 = rss_kib(proc.pid)
        cpu0 = cpu_seconds(proc.pid)
        samples: list[tuple[float, int, int, int]] = []  # (t, sent, committed, rss KiB)
        chunk = 2000
        sent = 0
        t0 = time.monotonic()
        ts0 = time.time()
        next_sample = t0
        while True:
            now = time.monotonic()
            if now - t0 >= args.duration:
                break
            if now >= next_sample:
                samples.append((now - t0, sent, await committed(conn), rss_kib(proc.pid)))
                next_sample += args.sample
            writer.write(events(sent, chunk, ts0))
            sent += chunk
            await writer.drain()
            if args.rate:
                ahead = sent / args.rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        t_send = time.monotonic() - t0
        expected = kept(sent)
        # wait for the AMI layer and then the database to catch up
        while (status(data_dir).get("servers") or [{}])[0].get("events", 0) < sent + 1:  # + FullyBooted
            await asyncio.sleep(0.1)
            if time.monotonic() - t0 > args.duration + 300:
                break
        rows = await committed(conn)
        while rows < expected and time.monotonic() - t0 < args.duration + 600:
            await asyncio.sleep(0.2)
            rows = await committed(conn)
        t_commit = time.monotonic() - t0
        samples.append((t_commit, sent, rows, rss_kib(proc.pid)))
        cpu = cpu_seconds(proc.pid) - cpu0
        result = {
            "sent": sent,
            "expected_rows": expected,
            "rows": rows,
            "per_table": {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in KEPT_TABLES},
            "send_seconds": t_send,
            # back-pressure: the writer's drain() returns only when the daemon has read all but the socket
            # buffers (a few MB); so the send time is the accept time, to within those buffers
            "accept_seconds": t_send,
            "commit_seconds": t_commit,
            "rss0_kib": rss0,
            # the daemon's own CPU time (user + system) from the first event streamed to the last row
            # committed: what the ingest costs it, whatever else the shared machine does meanwhile
            "daemon_cpu_seconds": cpu,
            "samples": samples,
            "accepted_events": (status(data_dir).get("servers") or [{}])[0].get("events"),
            "writer": status(data_dir).get("writer"),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            result["exit_code"] = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            result["exit_code"] = "killed"
        log.close()
        await conn.close()
        await ami.close()
    return result


NOTES = """## Reading these numbers

* The daemon applies back-pressure: while PostgreSQL is up but the writer lags (25,000 records queued) it
  stops reading AMI for up to 1 s at a time. So with `--rate 0` the *accept* rate settles at what the
  writer sustains, and the end-to-end rate is the daemon's real capacity; memory stays flat instead of
  growing. Without back-pressure (first version of this benchmark) the AMI layer accepted about 64,000
  events/s while rows were committed at a fraction of that and the queue spilled to disk.
* The daemon is one Python process (one core): parsing plus the features' handlers cost about 13 µs per
  event (parsing alone about 4), the sinks' conversions and asyncpg encoding the rest; PostgreSQL and the event
  generator share the second core.
* The issue asks for memory flat over 10 minutes; this run is shorter (the machine is shared). Run
  `--duration 600` for the full check: RSS per sample is in the table above.
"""


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "free": free, "load": os.getloadavg()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of streaming (default 120)")
    parser.add_argument("--rate", type=int, default=0, help="events/s to pace at; 0 = as fast as accepted")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS/commit samples")
    parser.add_argument("--baseline-events", type=int, default=200_000)
    parser.add_argument(
        "--dsn", default=os.environ.get("PBX_SLA_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ami_ingest.md")
    args = parser.parse_args()

    from pbx_sla.log import setup_logging

    setup_logging("warning", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 - process-long
    name = f"bench_ami_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.dsn.rsplit("/", 1)[0] + f"/{name}"
    pg_version = await admin.fetchval("SHOW server_version")
    try:
        with tempfile.TemporaryDirectory(prefix="pbx-sla-bench-") as tmp:
            e2e = await end_to_end(args, dsn, Path(tmp))
            log_tail = (Path(tmp) / "daemon.log").read_text(errors="replace").splitlines()[-5:]
        n = args.baseline_events
        blob = events(0, n, time.time())
        pano = bench_panoramisk_parse(blob, n)
        ours, _ = bench_ours(blob, n, with_handlers=False)
        handlers, records = bench_ours(blob, n, with_handlers=True)
        copy_rate = await bench_copy(dsn, records)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    report = render(args, e2e, pano, ours, handlers, len(records), n, copy_rate, pg_version, log_tail)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


def render(args, e2e, pano, ours, handlers, n_records, n, copy_rate, pg_version, log_tail) -> str:
    m = machine()
    sent = e2e["sent"]
    accept_rate = sent / e2e["accept_seconds"]
    commit_rate_events = sent / e2e["commit_seconds"]
    commit_rate_rows = e2e["rows"] / e2e["commit_seconds"]
    lines = [
        "# AMI ingest benchmark",
        "",
        f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}  ",
        f"Machine: {m['nproc']} cores, {m['cpu']}; load average at the end {m['load'][0]:.2f} "
        "(the machine is shared with four other engineers' tests and benchmarks)  ",
        f"PostgreSQL {pg_version} (the shared local server, 127.0.0.1:5432)  ",
        f"Command: `.venv/bin/python bench/ami_ingest.py --duration {args.duration:g} --rate {args.rate}`",
        "",
        "```",
        m["free"],
        "```",
        "",
        "Set-up: a synthetic AMI server (asyncio, loopback, in the benchmark process) speaks the banner, Login, "
        "Ping and the trunks resync, then streams events (each with `Timestamp`) to a real `pbx-sla run` "
        "subprocess with the three real features (trunks, calls, support) writing to a fresh database. Mix per "
        "100 events: 70 noise (VarSet 40, Newexten 25, Newstate 5), 10 Cdr, 5 ContactStatus, 3 PeerStatus, "
        "12 queue events; 30 % of events become rows (cdr_legs, trunk_observations, queue_events).",
        "",
        "## End to end",
        "",
        "| measure | value |",
        "|---|---|",
        f"| events streamed | {sent:,} in {e2e['send_seconds']:.1f} s |",
        f"| events accepted by the AMI layer | {e2e['accepted_events']:,} (incl. FullyBooted) |",
        f"| **AMI accept rate** | **{accept_rate:,.0f} events/s** |",
        f"| rows committed | {e2e['rows']:,} of {e2e['expected_rows']:,} expected ({e2e['per_table']}) |",
        f"| **end-to-end rate (events whose rows are committed)** | **{commit_rate_events:,.0f} events/s** "
        f"({commit_rate_rows:,.0f} rows/s) |",
        f"| last row committed after | {e2e['commit_seconds']:.1f} s |",
        f"| daemon exit on SIGTERM | {e2e['exit_code']} |",
        "",
        "Daemon RSS and progress over the run:",
        "",
        "| t (s) | events sent | rows committed | RSS (MiB) |",
        "|---|---|---|---|",
        f"| before | 0 | 0 | {e2e['rss0_kib'] / 1024:.1f} |",
    ]
    lines += [f"| {t:.0f} | {s:,} | {c:,} | {r / 1024:.1f} |" for t, s, c, r in e2e["samples"]]
    lines += [
        "",
        f"## Baselines (same run, same event bytes, {n:,} events, one process, no network)",
        "",
        "| path | rate |",
        "|---|---|",
        f"| panoramisk 1.4 `AMIProtocol.data_received`, parse only | {pano:,.0f} events/s |",
        f"| pbx-sla `AmiProtocol` (incremental UTF-8, plain dicts), parse only | {ours:,.0f} events/s |",
        f"| pbx-sla parse + the real features' handlers → records | {handlers:,.0f} events/s ({n_records:,} records) |",
        "| asyncpg `copy_records_to_table` of those records (text columns, batches of 1000) | "
        f"{copy_rate:,.0f} rows/s |",
        "",
        "Writer at the end: " + json.dumps(e2e["writer"]),
        "",
        NOTES,
        "Last daemon log lines:",
        "",
        "```",
        *log_tail,
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
