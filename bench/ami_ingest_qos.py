"""What voice-quality collection costs the AMI ingest, per call leg ingested. Three event mixes (see :func:`use`):

* ``plain``: bench/ami_ingest.py's own, 100 events per 10 call legs (its 10 Cdr events: one per leg);
* ``on``: what the shipped asterisk_conf sends: the same 100 events plus the one ``UserEvent: PbxSlaQos`` per
  leg that the dialplan's hangup handler sends (110 events per 10 legs; a copy of a real one captured from
  the sandbox's Asterisk 22, with its channel snapshot); nothing else changes (no ``channelvars``);
* ``channelvars``: the former way, manager.conf ``channelvars = RTPAUDIOQOS,...`` as Asterisk sends it: 10 of
  the VarSet become Hangup events carrying the filled variables, and every other event with a channel
  snapshot carries the six ``ChanVariable`` lines, empty (100 events per 10 legs).

**Equal work.** ``on`` has more events for the same calls, so events/s would flatter it. Every rate here is
**call legs per second** (events/s times legs per event: 10/100 for ``plain`` and ``channelvars``, 10/110 for
``on``), and the ratio the issue bounds is ``on`` legs/s ÷ ``plain`` legs/s (bar: at least 0.90). In process
each mix is run over the same number of legs (``--legs``), in CPU time.

Runs interleave (plain, on, channelvars, plain, ...) against a real ``pbx-sla run`` each, on fresh databases,
so that all see the same moments of this shared machine; the in-process parse + handlers rate of each mix is
measured in CPU time after each run.

``--rate N`` paces every mix at N legs/s (the daemon then never lags, so its CPU per leg is not blurred by
back-pressure and batch sizes); 0 streams as fast as the daemon accepts.

    .venv/bin/python bench/ami_ingest_qos.py --duration 20 --rounds 3
    .venv/bin/python bench/ami_ingest_qos.py --duration 20 --rounds 3 --rate 1500
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
#: legs per 100 events of ``plain`` (one Cdr per leg)
LEGS_PER_UNIT = PLAIN_MIX.count("Cdr")
#: ``on``: the plain 100 events and one PbxSlaQos UserEvent per leg (10): 110 events per 10 legs
ON_MIX = PLAIN_MIX + ["PbxSlaQos"] * LEGS_PER_UNIT
#: ``channelvars``: the first 10 of the 40 VarSet become Hangup events (one per channel, as many as Cdr)
HANGUP_MIX = ["Hangup"] * LEGS_PER_UNIT + PLAIN_MIX[LEGS_PER_UNIT:]
assert len(HANGUP_MIX) == 100 and HANGUP_MIX.count("VarSet") == 30 and len(ON_MIX) == 110
MIX_OF = {"plain": PLAIN_MIX, "on": ON_MIX, "channelvars": HANGUP_MIX}
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


def _hangup(i: int, ts: float) -> str:
    """A Hangup with channelvars: the five RTPAUDIOQOS variables filled, and the codec."""
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


def _qos_user_event(i: int, ts: float) -> str:
    """The hangup handler's UserEvent: a real one from the sandbox (Asterisk 22.10 with asterisk_conf, the
    trunk-a leg of a call with 5 % loss injected; tests/unit/test_qos_user_event.py holds the same capture),
    with this leg's channel, ids, loss and jitter."""
    uid = f"1700000000.{i}"
    chan = f"PJSIP/trunk-{i % 20}-{i:08x}"
    lost = i % 7
    return (
        f"Event: UserEvent\r\nPrivilege: user,all\r\nTimestamp: {ts:.6f}\r\nChannel: {chan}\r\n"
        "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: +420777000001\r\nCallerIDName: +420777000001\r\n"
        "ConnectedLineNum: agent1\r\nConnectedLineName: Agent One\r\nLanguage: en\r\nAccountCode: \r\n"
        f"Context: pbx-sla-qos\r\nExten: s\r\nPriority: 7\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n"
        f"UserEvent: PbxSlaQos\r\nQos: ssrc=7352232;themssrc=1592594996;lp={lost};rxjitter=0.000000;"
        f"rxcount={3000 - lost};txjitter=0.00{i % 10}875;txcount=0;rlp=0;rtt=0.000000;rxmes=0.000000;"
        "txmes=86.013796;maxrxjitter=0.006750;avgrxjitter=0.000791;maxrtt=0.000000;avgrtt=0.000000\r\n"
        "Codec: (ulaw)\r\n\r\n"
    )


def _event_on(kind: str, i: int, ts: float) -> str:
    return _qos_user_event(i, ts) if kind == "PbxSlaQos" else _plain_event(kind, i, ts)


def _event_channelvars(kind: str, i: int, ts: float) -> str:
    if kind == "Hangup":
        return _hangup(i, ts)
    text = _plain_event(kind, i, ts)
    return text[:-2] + EMPTY_VARS + "\r\n" if kind in CHANNEL_EVENTS else text


def use(mix: str) -> None:
    """Point ami_ingest's generator and row accounting at one mix (``plain``, ``on``, ``channelvars``)."""
    base.MIX = MIX_OF[mix]
    base._event = {"plain": _plain_event, "on": _event_on, "channelvars": _event_channelvars}[mix]
    base.KEPT_PER_100 = 10 + 5 + 3 + 12 + (0 if mix == "plain" else LEGS_PER_UNIT)  # per len(MIX) events
    base.KEPT_TABLES = ("cdr_legs", "trunk_observations", "queue_events", "qos_legs")


def events(start: int, count: int, t0: float) -> bytes:
    """bench/ami_ingest.py's generator for a mix of any length (``on`` has 110 events per 10 legs)."""
    mix, make, size = base.MIX, base._event, len(base.MIX)
    return "".join(make(mix[i % size], i, t0 + i * 1e-5) for i in range(start, start + count)).encode()


def kept(n: int) -> int:
    """Rows the first n events of the current mix give (every event but the noise, Hangups included)."""
    full, rest = divmod(n, len(base.MIX))
    noise = ("VarSet", "Newexten", "Newstate")
    return full * base.KEPT_PER_100 + sum(1 for k in base.MIX[:rest] if k not in noise)


def legs(n_events: int) -> float:
    """Call legs that ``n_events`` of the current mix stand for (LEGS_PER_UNIT per len(MIX) events)."""
    return n_events * LEGS_PER_UNIT / len(base.MIX)


base.kept = kept
base.events = events


async def one_run(args: argparse.Namespace, mix: str) -> dict:
    use(mix)
    name = f"bench_qos_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="pbx-sla-bench-") as tmp:
            # --rate is legs/s: each mix is paced at the events/s that give the same legs/s
            paced = argparse.Namespace(**{**vars(args), "rate": round(args.rate * len(base.MIX) / LEGS_PER_UNIT)})
            result = await base.end_to_end(paced, dsn, Path(tmp))
            # the writer's spool (records through JSON files on disk) costs the daemon CPU: when a write takes
            # over a second (a loaded machine), a run spools and its CPU per leg is not the ingest's alone
            text = (Path(tmp) / "daemon.log").read_text(errors="replace")
            result["spooled"] = sum(text.count(m) for m in ("new records go to the spool", "spilling to disk"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    result["mix"] = mix
    result["load"] = os.getloadavg()[0]
    result["legs"] = legs(result["sent"])
    # call legs per second (equal work: see the module docstring)
    result["accept_rate"] = result["legs"] / result["accept_seconds"]
    result["e2e_rate"] = result["legs"] / result["commit_seconds"]
    result["cpu_rate"] = result["legs"] / result["daemon_cpu_seconds"]
    return result


def in_process(mix: str, n_legs: int) -> float:
    """Call legs/s of pbx-sla's AMI reader + the real features' handlers over the events of ``n_legs`` legs of
    ``mix`` (equal work whatever the mix), in CPU time of this process (wall time on this shared machine
    swings 3x between runs of the same code)."""
    from pbx_sla.ami.collector import Router
    from pbx_sla.ami.connection import AmiProtocol
    from pbx_sla.config import AsteriskServer, Settings
    from pbx_sla.features import ServiceContext
    from pbx_sla.service import load_features

    use(mix)
    n = n_legs * len(base.MIX) // LEGS_PER_UNIT
    blob = events(0, n, time.time())
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
    # the daemon's wiring (Collector): a UserEvent's only handler may read the raw message itself
    reader = router.message_handler("UserEvent") if hasattr(router, "message_handler") else None
    if reader is not None:

        def on_user_event(message: str) -> bool:
            found = reader(base.SERVER, message)
            if found is None:
                return False
            for record in found:
                records.append(record)
            return True

        proto.on_user_event = on_user_event
    proto.connection_made(Transport())  # type: ignore[arg-type]
    t = time.process_time()
    for i in range(0, len(blob), 65536):
        proto.data_received(blob[i : i + 65536])
    elapsed = time.process_time() - t
    assert len(records) == kept(n), (len(records), kept(n))
    if mix != "plain":
        assert sum(1 for r in records if r.kind == "qos_leg") == n_legs
    return n_legs / elapsed


MIXES = ("plain", "on", "channelvars")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of streaming per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of plain/on/channelvars runs, interleaved")
    parser.add_argument(
        "--rate", type=int, default=0, help="call legs/s to pace every mix at (0: as fast as the daemon accepts)"
    )
    parser.add_argument("--sample", type=float, default=10.0)
    parser.add_argument("--legs", type=int, default=5_000, help="call legs per in-process measurement")
    parser.add_argument(
        "--repeat", type=int, default=3, help="in-process runs of each mix per round, the best kept (a shared machine)"
    )
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
                    f"{mix:11s} accept {run['accept_rate']:8,.0f} legs/s  end-to-end {run['e2e_rate']:8,.0f} legs/s  "
                    f"daemon CPU {run['cpu_rate']:8,.0f} legs/s  rows {run['rows']}/{run['expected_rows']}  "
                    f"load {run['load']:.2f}{'  SPOOLED' if run.get('spooled') else ''}",
                    flush=True,
                )
            for _ in range(args.repeat):
                parse[mix].append(in_process(mix, args.legs))
            loads.append(os.getloadavg()[0])
            print(f"{mix:11s} in-process best so far {max(parse[mix]):8,.0f} legs/s (CPU time)", flush=True)
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
        f" --legs {args.legs}{f' --repeat {args.repeat}' if args.repeat != 3 else ''}"
        f"{f' --rate {args.rate}' if args.rate else ''}"
        f"{' --skip-daemon' if args.skip_daemon else ''}`",
        "",
        "Mixes (per 10 call legs):",
        "",
        "* `plain`: bench/ami_ingest.py's own 100 events (70 noise: VarSet 40, Newexten 25, Newstate 5; 10 Cdr,",
        "  one per leg; 5 ContactStatus; 3 PeerStatus; 12 queue events);",
        "* `on`, the shipped asterisk_conf: the same 100 events plus one `UserEvent: PbxSlaQos` per leg from the",
        "  dialplan's hangup handler (a real one captured from the sandbox's Asterisk 22, about 0.65 kB with its",
        "  channel snapshot): 110 events, 10 more `qos_legs` rows;",
        "* `channelvars`, the former way: manager.conf `channelvars = RTPAUDIOQOS,...`; 10 of the VarSet become",
        "  Hangup events carrying the filled variables (about 1.6 kB each), every other event with a channel",
        "  snapshot carries the six `ChanVariable` lines, empty: 100 events, 10 more `qos_legs` rows.",
        "",
        "**Equal work: every rate is call legs per second** (events/s × 10 / events per 10 legs), so that the",
        "10 extra events of `on` do not count as extra throughput; `on / plain` is the issue's ratio (bar 0.90).",
        "",
        "Runs interleave plain, on, channelvars. In-process: pbx-sla's AMI reader and the real features' handlers",
        f"over the events of {args.legs:,} legs, CPU time of the process, best of the round's {args.repeat} runs "
        "(wall time on this machine swings 3x between runs of the same code).",
        "Daemon CPU: the `pbx-sla run` process's user + system CPU time from the first event streamed to the",
        "last row committed (its reader, handlers, sinks and writer; PostgreSQL's own CPU is not counted).",
        "`spooled`: the daemon's writer put records through its disk spool during the run (a write took over a",
        "second: the machine was loaded); that costs it CPU the ingest does not cost otherwise.",
        "",
    ]
    if args.rate and runs:
        lines += [
            f"Daemon runs paced at {args.rate:,} legs/s for every mix ({args.rate * 10:,} events/s of `plain` and",
            f"`channelvars`, {args.rate * 11:,} of `on`), below what the daemon sustains: no backlog, no spooling.",
            "",
        ]
    if runs:
        lines += [
            "| run | mix | events | accept (legs/s) | end to end (legs/s) | legs per daemon CPU second "
            "| rows committed | load (1 min) | daemon exit | spooled |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(runs, 1):
            lines.append(
                f"| {i} | {r['mix']} | {r['sent']:,} | {r['accept_rate']:,.0f} | {r['e2e_rate']:,.0f} | "
                f"{r['cpu_rate']:,.0f} | {r['rows']:,} of {r['expected_rows']:,} | {r['load']:.2f} | "
                f"{r['exit_code']} | {'yes' if r.get('spooled') else 'no'} |"
            )
        lines.append("")

    def med(mix: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["mix"] == mix)

    per = len(parse["plain"]) // args.rounds
    lines += [
        "In-process per round (best of that round's runs of each mix, legs/s in CPU time), so that each `on` is "
        "set against the `plain` measured a minute before:",
        "",
        "| round | plain (legs/s) | on (legs/s) | channelvars (legs/s) | on / plain | channelvars / plain |",
        "|---|---|---|---|---|---|",
    ]
    ratios = []
    for i in range(args.rounds):
        b = {mix: max(v[i * per : (i + 1) * per]) for mix, v in parse.items()}
        ratios.append(b["on"] / b["plain"])
        lines.append(
            f"| {i + 1} | {b['plain']:,.0f} | {b['on']:,.0f} | {b['channelvars']:,.0f} | {b['on'] / b['plain']:.3f} | "
            f"{b['channelvars'] / b['plain']:.3f} |"
        )
    lines += ["", f"Median of the rounds' `on / plain`: **{statistics.median(ratios):.3f}**.", ""]
    if runs:
        lines += [
            "Daemon CPU per round (legs per CPU second of the daemon, the round's own runs):",
            "",
            "| round | plain | on | channelvars | on / plain | channelvars / plain |",
            "|---|---|---|---|---|---|",
        ]
        pairs = []
        for i in range(args.rounds):
            d = {r["mix"]: r["cpu_rate"] for r in runs[i * len(MIXES) : (i + 1) * len(MIXES)]}
            pairs.append(d["on"] / d["plain"])
            lines.append(
                f"| {i + 1} | {d['plain']:,.0f} | {d['on']:,.0f} | {d['channelvars']:,.0f} | "
                f"{d['on'] / d['plain']:.3f} | {d['channelvars'] / d['plain']:.3f} |"
            )
        lines += ["", f"Median of the rounds' daemon `on / plain`: **{statistics.median(pairs):.3f}**.", ""]
    best = {mix: max(v) for mix, v in parse.items()}
    lines += [
        "| measure (legs/s) | plain | on | channelvars | on / plain | channelvars / plain |",
        "|---|---|---|---|---|---|",
    ]
    rows = [("in-process parse + handlers, best", best)]
    if runs:
        rows.insert(
            0, ("daemon CPU: legs per CPU second of the daemon, median", {k: med(k, "cpu_rate") for k in MIXES})
        )
        rows.insert(0, ("daemon end to end, median", {k: med(k, "e2e_rate") for k in MIXES}))
        rows.insert(0, ("daemon accept, median", {k: med(k, "accept_rate") for k in MIXES}))
    for label, v in rows:
        lines.append(
            f"| {label} | {v['plain']:,.0f} | {v['on']:,.0f} | {v['channelvars']:,.0f} | {v['on'] / v['plain']:.3f} | "
            f"{v['channelvars'] / v['plain']:.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
