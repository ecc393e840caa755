"""What voice-quality collection costs the AMI ingest. Three event mixes (see :func:`use`): bench/ami_ingest.py's
own (``plain``), the same with Hangup events and no channelvars (``off``), and with manager.conf ``channelvars``
as Asterisk sends them (``on``: every channel event carries the five ChanVariable lines, the Hangups filled).

Runs alternate (plain, off, on, plain, ...) against a real ``pbx-sla run`` each, on fresh databases, so
that all see the same moments of this shared machine; the in-process parse + handlers rate of each mix is
measured in CPU time after each run. The issue's bar: ``on`` at least 90 % of bench/ami_ingest.py's rate.

    .venv/bin/python bench/ami_ingest_qos.py --duration 30 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import ami_ingest as base  # noqa: E402

PLAIN_MIX = list(base.MIX)
#: the first 10 of the 40 VarSet become Hangup events (one per channel: as many as Cdr events, one per leg)
HANGUP_MIX = ["Hangup"] * 10 + PLAIN_MIX[10:]
assert len(HANGUP_MIX) == 100 and HANGUP_MIX.count("VarSet") == 30
_plain_event = base._event
#: events that carry a channel snapshot, hence manager.conf ``channelvars`` (empty until the hangup)
CHANNEL_EVENTS = frozenset({"VarSet", "Newexten", "Newstate", "QueueCallerJoin", "AgentConnect", "AgentComplete",
                            "QueueCallerLeave"})  # fmt: skip
EMPTY_VARS = (
    "".join(
        f"ChanVariable: {name}=\r\n"
        for name in ("RTPAUDIOQOS", "RTPAUDIOQOSJITTER", "RTPAUDIOQOSLOSS", "RTPAUDIOQOSRTT", "RTPAUDIOQOSMES")
    )
    + "ChanVariable: CHANNEL(audionativeformat)=(ulaw)\r\n"
)


def _hangup(i: int, ts: float, with_vars: bool) -> str:
    uid = f"1700000000.{i}"
    chan = f"PJSIP/trunk-{i % 20}-{i:08x}"
    lost = i % 7
    head = (
        f"Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: {ts:.6f}\r\nChannel: {chan}\r\nChannelState: 6\r\n"
        f"ChannelStateDesc: Up\r\nCallerIDNum: 0612345678\r\nCallerIDName: Client {i % 97}\r\n"
        f"ConnectedLineNum: agent1\r\nConnectedLineName: Agent One\r\nLanguage: en\r\nAccountCode: \r\n"
        f"Context: support-line\r\nExten: +420221000111\r\nPriority: 9\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n"
    )
    tail = "Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
    if not with_vars:
        return head + tail
    return (
        head + f"ChanVariable: RTPAUDIOQOS=ssrc=1462493359;themssrc=1592594996;lp={lost};rxjitter=0.000000;"
        f"rxcount={3000 - lost};txjitter=0.00{i % 10}875;txcount=3000;rlp=0;rtt=0.000000;rxmes=0.000000;"
        f"txmes=88.087887\r\n"
        "ChanVariable: RTPAUDIOQOSJITTER=minrxjitter=000.000000;maxrxjitter=000.009750;avgrxjitter=000.004070;"
        "stdevrxjitter=000.000134;mintxjitter=000.000000;maxtxjitter=000.000000;avgtxjitter=000.000000;"
        "stdevtxjitter=000.000000;\r\n"
        "ChanVariable: RTPAUDIOQOSLOSS=  minrxlost=000.000000;  maxrxlost=001.000000;  avgrxlost=000.100000;"
        "  stdevrxlost=000.300000;  mintxlost=000.000000;  maxtxlost=000.000000;  avgtxlost=000.000000;"
        "  stdevtxlost=000.000000;\r\n"
        "ChanVariable: RTPAUDIOQOSRTT=     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;"
        "     stdevrtt=000.000000;\r\n"
        "ChanVariable: RTPAUDIOQOSMES=   minrxmes=088.087887;   maxrxmes=088.087887;   avgrxmes=088.087887;"
        "   stdevrxmes=000.000000;   mintxmes=000.000000;   maxtxmes=000.000000;   avgtxmes=000.000000;"
        "   stdevtxmes=000.000000;\r\n"
        "ChanVariable: CHANNEL(audionativeformat)=(ulaw)\r\n" + tail
    )


def _event_off(kind: str, i: int, ts: float) -> str:
    return _hangup(i, ts, False) if kind == "Hangup" else _plain_event(kind, i, ts)


def _event_on(kind: str, i: int, ts: float) -> str:
    if kind == "Hangup":
        return _hangup(i, ts, True)
    text = _plain_event(kind, i, ts)
    return text[:-2] + EMPTY_VARS + "\r\n" if kind in CHANNEL_EVENTS else text


def use(mix: str) -> None:
    """Point ami_ingest's generator and row accounting at one mix: ``plain`` (bench/ami_ingest.py's own),
    ``off`` (10 Hangup events per 100, channelvars not configured) or ``on`` (the same with channelvars)."""
    base.MIX = PLAIN_MIX if mix == "plain" else HANGUP_MIX
    base._event = {"plain": _plain_event, "off": _event_off, "on": _event_on}[mix]
    base.KEPT_PER_100 = 10 + 5 + 3 + 12 + (10 if mix == "on" else 0)
    base.KEPT_TABLES = ("cdr_legs", "trunk_observations", "queue_events", "qos_legs")


def kept(n: int) -> int:
    full, rest = divmod(n, 100)
    noise = ("VarSet", "Newexten", "Newstate") + (() if base._event is _event_on else ("Hangup",))
    return full * base.KEPT_PER_100 + sum(1 for k in base.MIX[:rest] if k not in noise)


base.kept = kept


async def one_run(args: argparse.Namespace, mix: str) -> dict:
    use(mix)
    name = f"bench_qos_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="pbx-sla-bench-") as tmp:
            result = await base.end_to_end(args, dsn, Path(tmp))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    result["mix"] = mix
    result["load"] = os.getloadavg()[0]
    result["accept_rate"] = result["sent"] / result["accept_seconds"]
    result["e2e_rate"] = result["sent"] / result["commit_seconds"]
    result["cpu_rate"] = result["sent"] / result["daemon_cpu_seconds"]
    return result


def in_process(mix: str, n: int) -> float:
    """Events/s of pbx-sla's AMI reader + the real features' handlers over ``n`` events of ``mix``, in CPU
    time of this process (wall time on this shared machine swings 3x between runs of the same code)."""
    from pbx_sla.ami.collector import Router
    from pbx_sla.ami.connection import AmiProtocol
    from pbx_sla.config import AsteriskServer, Settings
    from pbx_sla.features import ServiceContext
    from pbx_sla.service import load_features

    use(mix)
    blob = base.events(0, n, time.time())
    records: list = []

    class Catalogue:
        current = None

    settings = Settings(config_file=None, dsn=None, data_dir=Path("."), asterisk=(AsteriskServer(name=base.SERVER),))
    ctx = ServiceContext(settings=settings, dsn="", submit=records.append, catalogue=Catalogue())
    router = Router([m.event_handlers(ctx) for m in load_features()], records.append)

    class Transport:
        def write(self, data: bytes) -> None:
            return None

    proto = AmiProtocol(base.SERVER, lambda event: router.route(base.SERVER, event), lambda exc: None)
    proto.connection_made(Transport())  # type: ignore[arg-type]
    t = time.process_time()
    for i in range(0, len(blob), 65536):
        proto.data_received(blob[i : i + 65536])
    elapsed = time.process_time() - t
    assert len(records) == kept(n), (len(records), kept(n))
    return n / elapsed


MIXES = ("plain", "off", "on")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of streaming per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of plain/off/on runs, alternating")
    parser.add_argument("--rate", type=int, default=0)
    parser.add_argument("--sample", type=float, default=10.0)
    parser.add_argument("--baseline-events", type=int, default=50_000)
    parser.add_argument("--skip-daemon", action="store_true", help="in-process measurement only")
    parser.add_argument(
        "--dsn", default=os.environ.get("PBX_SLA_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ami_ingest_qos.md")
    args = parser.parse_args()

    from pbx_sla.log import setup_logging

    setup_logging("warning", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 - process-long
    runs: list[dict] = []
    parse: dict[str, list[float]] = {mix: [] for mix in MIXES}
    loads: list[float] = []
    for _ in range(args.rounds):
        for mix in MIXES:
            if not args.skip_daemon:
                run = await one_run(args, mix)
                runs.append(run)
                print(
                    f"{mix:5s} accept {run['accept_rate']:9,.0f} ev/s  end-to-end {run['e2e_rate']:9,.0f} ev/s  "
                    f"daemon CPU {run['cpu_rate']:9,.0f} ev/s  rows {run['rows']}/{run['expected_rows']}  "
                    f"load {run['load']:.2f}",
                    flush=True,
                )
            for _ in range(3):
                parse[mix].append(in_process(mix, args.baseline_events))
            loads.append(os.getloadavg()[0])
            print(f"{mix:5s} in-process best so far {max(parse[mix]):9,.0f} ev/s (CPU time)", flush=True)
    report = render(args, runs, parse, loads)
    args.out.write_text(report)
    print(report)


def render(args: argparse.Namespace, runs: list[dict], parse: dict[str, list[float]], loads: list[float]) -> str:
    m = base.machine()
    lines = [
        "# AMI ingest with voice-quality collection",
        "",
        f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}  ",
        f"Machine: {m['nproc']} cores, {m['cpu']}; shared with other engineers' tests and benchmarks; "
        f"load average (1 min) during the runs {min(loads):.2f} .. {max(loads):.2f}  ",
        f"Command: `.venv/bin/python bench/ami_ingest_qos.py --duration {args.duration:g} --rounds {args.rounds}"
        f"{' --skip-daemon' if args.skip_daemon else ''}`",
        "",
        "Mixes (per 100 events):",
        "",
        "* `plain`: bench/ami_ingest.py's own (70 noise: VarSet 40, Newexten 25, Newstate 5; 10 Cdr;",
        "  5 ContactStatus; 3 PeerStatus; 12 queue events);",
        "* `off`: 10 of the VarSet replaced by Hangup events (one per channel), manager.conf without",
        "  `channelvars`;",
        "* `on`: the same with `channelvars = RTPAUDIOQOS,...` as Asterisk sends it: every event with a",
        "  channel snapshot carries the five `ChanVariable` lines (empty until the hangup), each Hangup the",
        "  filled values (about 1.6 kB); the 10 Hangups become 10 `qos_legs` rows.",
        "",
        "Runs alternate plain, off, on. In-process: pbx-sla's AMI reader and the real features' handlers over",
        f"{args.baseline_events:,} events, CPU time of the process, best of "
        f"{len(parse['plain'])} (wall time on this machine swings 3x between runs of the same code).",
        "Daemon CPU: the `pbx-sla run` process's user + system CPU time from the first event streamed to the",
        "last row committed (its reader, handlers, sinks and writer; PostgreSQL's own CPU is not counted).",
        "",
    ]
    if runs:
        lines += [
            "| run | mix | accept (events/s) | end to end (events/s) | per daemon CPU second (events) | rows committed "
            "| load (1 min) | daemon exit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(runs, 1):
            lines.append(
                f"| {i} | {r['mix']} | {r['accept_rate']:,.0f} | {r['e2e_rate']:,.0f} | {r['cpu_rate']:,.0f} | "
                f"{r['rows']:,} of "
                f"{r['expected_rows']:,} | {r['load']:.2f} | {r['exit_code']} |"
            )
        lines.append("")

    def med(mix: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["mix"] == mix)

    per = len(parse["plain"]) // args.rounds
    lines += [
        "In-process per round (best of that round's runs of each mix, CPU time), so that each `on` is set "
        "against the `plain` and `off` measured minutes apart:",
        "",
        "| round | plain (events/s) | off (events/s) | on (events/s) | on / plain | on / off |",
        "|---|---|---|---|---|---|",
    ]
    for i in range(args.rounds):
        b = {mix: max(v[i * per : (i + 1) * per]) for mix, v in parse.items()}
        lines.append(
            f"| {i + 1} | {b['plain']:,.0f} | {b['off']:,.0f} | {b['on']:,.0f} | {b['on'] / b['plain']:.3f} | "
            f"{b['on'] / b['off']:.3f} |"
        )
    lines.append("")
    best = {mix: max(v) for mix, v in parse.items()}
    lines += ["| measure | plain | off | on | on / plain | on / off |", "|---|---|---|---|---|---|"]
    rows = [("in-process parse + handlers, best (events/s)", best)]
    if runs:
        rows.insert(
            0, ("daemon CPU: events per CPU second of the daemon, median", {k: med(k, "cpu_rate") for k in MIXES})
        )
        rows.insert(0, ("daemon end to end, median (events/s)", {k: med(k, "e2e_rate") for k in MIXES}))
        rows.insert(0, ("daemon accept, median (events/s)", {k: med(k, "accept_rate") for k in MIXES}))
    for label, v in rows:
        lines.append(
            f"| {label} | {v['plain']:,.0f} | {v['off']:,.0f} | {v['on']:,.0f} | {v['on'] / v['plain']:.3f} | "
            f"{v['on'] / v['off']:.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
