"""Support-line routing over FastAGI under load, and the classic script's per-call time, in one run.

The FastAGI server (pbx_sla.agi.server, the example catalogue in memory, records counted, no database)
runs in its own process; this process plays Asterisk: ``--concurrency`` connections in flight at all
times, each a whole call (headers, 9 SET VARIABLE, GET FULL VARIABLE), for ``--seconds``. Reported:
decisions/s, per-call latency (connect → last reply, client side) p50/p99, and the server's own
latency per call (headers → variables set) p50/p99. Then the classic script is spawned ``--classic``
times with a simulated AGI stdin (answers pre-written) and its wall time per call reported.

    .venv/bin/python bench/agi.py [--concurrency 200] [--seconds 10] [--classic 20] [--out bench/results/agi.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "contracts.toml"
CALLERS = ["+420777000001", "777000002", "+420603000003", "+420600999888", "anonymous", "221000199"]
DIALLED = ["+420221000111", "+420221000222", "7000"]

SERVER = r"""
import asyncio, json, signal, sys, tomllib
from datetime import datetime
from zoneinfo import ZoneInfo
from pbx_sla.log import setup_logging
from pbx_sla.agi.server import SupportAGIServer
from pbx_sla.domain.catalogue_file import parse_catalogue, seal_pins

class Source:
    current = seal_pins(parse_catalogue(tomllib.load(open(sys.argv[1], "rb")), "x"), {})

async def main():
    setup_logging("warning", json=True)
    latencies = []
    clock = lambda: datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Prague"))
    agi = SupportAGIServer(Source(), lambda r: latencies.append(r.data["latency_ms"]), clock=clock)
    server = await agi.serve("127.0.0.1", int(sys.argv[2]))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    print(json.dumps(latencies), flush=True)

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def headers(i: int) -> bytes:
    caller = CALLERS[i % len(CALLERS)]
    dialled = DIALLED[i % len(DIALLED)]
    if caller in ("+420600999888", "anonymous") and dialled == "+420221000111":
        dialled = "7000"  # no PIN prompts in the load test
    lines = ["agi_network_script: support", "agi_channel: PJSIP/bench-1", f"agi_callerid: {caller}",
             "agi_calleridname: Bench", f"agi_uniqueid: bench.{i}", f"agi_arg_1: {dialled}"]  # fmt: skip
    return ("\n".join(lines) + "\n\n").encode()


class FakeAsterisk(asyncio.Protocol):
    """One call as Asterisk plays it: headers, then a reply per command line, until the server closes.
    A bare Protocol (not streams) so that the client costs as little CPU as possible."""

    def __init__(self, head: bytes, done: asyncio.Future) -> None:
        self.head, self.done, self.buf = head, done, b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.head)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            self.transport.write(b"200 result=1 (bench.0)\n" if line.startswith(b"GET FULL") else b"200 result=1\n")

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def one_call(port: int, i: int) -> float:
    loop = asyncio.get_running_loop()
    t = time.perf_counter()
    done = loop.create_future()
    transport, _ = await loop.create_connection(lambda: FakeAsterisk(headers(i), done), "127.0.0.1", port)
    await done
    transport.close()
    return (time.perf_counter() - t) * 1000


async def load(port: int, concurrency: int, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            latencies.append(await one_call(port, next(counter)))

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def classic(n: int) -> list[float]:
    """Wall time per call of agi_scripts/support_route.py with a simulated AGI stdin."""
    from pbx_sla.domain.catalogue_file import parse_catalogue, seal_pins, to_document

    tmp = Path(tempfile.mkdtemp(prefix="pbx-sla-bench-"))
    cat = seal_pins(parse_catalogue(tomllib.loads(EXAMPLE.read_text()), "x"), {})
    (tmp / "catalogue-cache.json").write_text(json.dumps({"revision": 1, "sha256": "x", "document": to_document(cat)}))
    env = {**os.environ, "PBX_SLA_DATA_DIR": str(tmp), "PBX_SLA_DSN": "postgresql://nobody@127.0.0.1:1/none",
           "PBX_SLA_CONFIG": str(tmp / "none.toml")}  # fmt: skip
    (tmp / "none.toml").write_text("")
    stdin = headers(0) + b"200 result=1\n" * 9 + b"200 result=1 (bench.0)\n"
    out = []
    for _ in range(n):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "agi_scripts" / "support_route.py")], input=stdin,
                              capture_output=True, env=env, timeout=60)  # fmt: skip
        out.append((time.perf_counter() - t) * 1000)
        assert proc.returncode == 0 and b"SUPPORT_ACTION" in proc.stdout, proc.stderr[-500:]
    time.sleep(1)  # let the detached children finish spooling
    return out


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.strip()
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "free": free, "loadavg": " ".join(load),
            "python": platform.python_version()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--classic", type=int, default=20)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(EXAMPLE), str(port)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)  # fmt: skip
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    m = machine()
    # baseline: one call at a time (no contention)
    base, _ = asyncio.run(load(port, 1, 2))
    light, light_wall = asyncio.run(load(port, 20, 3))  # a busy PBX: 20 calls in flight
    latencies, wall = asyncio.run(load(port, args.concurrency, args.seconds))
    server.send_signal(signal.SIGTERM)
    server_ms = json.loads(server.stdout.readlines()[-1])[len(base) :]
    server.wait(10)
    classic_ms = classic(args.classic)
    r = {
        "calls": len(latencies), "wall_s": round(wall, 2), "decisions_per_s": round(len(latencies) / wall),
        "p50_ms": round(pct(latencies, 0.5), 2), "p99_ms": round(pct(latencies, 0.99), 2),
        "server_p50_ms": round(pct(server_ms, 0.5), 3), "server_p99_ms": round(pct(server_ms, 0.99), 3),
        "serial_p50_ms": round(pct(base, 0.5), 3), "serial_p99_ms": round(pct(base, 0.99), 3),
        "serial_per_s": round(len(base) / 2),
        "light_p50_ms": round(pct(light, 0.5), 2), "light_p99_ms": round(pct(light, 0.99), 2),
        "light_per_s": round(len(light) / light_wall),
        "classic_mean_ms": round(statistics.mean(classic_ms), 1), "classic_p50_ms": round(pct(classic_ms, 0.5), 1),
        "classic_max_ms": round(max(classic_ms), 1),
    }  # fmt: skip
    print(json.dumps({**r, **m}, indent=2))
    if args.out:
        cmd = " ".join(["bench/agi.py", *sys.argv[1:]])
        pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip() or "n/a"
        c = args.concurrency
        rows = [
            ("baseline, one call at a time: per-call p50 / p99",
             f"{r['serial_p50_ms']} / {r['serial_p99_ms']} ms ({r['serial_per_s']} calls/s)"),
            ("20 concurrent (3 s): per-call p50 / p99, decisions/s",
             f"{r['light_p50_ms']} / {r['light_p99_ms']} ms, {r['light_per_s']}/s"),
            (f"{c} concurrent: calls", f"{r['calls']} in {r['wall_s']} s"),
            (f"{c} concurrent: decisions/s", f"**{r['decisions_per_s']}** (target >= 2,000)"),
            (f"{c} concurrent: per-call latency p50 / p99 (client)", f"{r['p50_ms']} / **{r['p99_ms']}** ms"),
            (f"{c} concurrent: server time per call p50 / p99 (headers to variables set)",
             f"{r['server_p50_ms']} / {r['server_p99_ms']} ms"),
            (f"classic script (support_route.py, {args.classic} spawns): wall per call mean / p50 / max",
             f"{r['classic_mean_ms']} / {r['classic_p50_ms']} / {r['classic_max_ms']} ms"),
        ]  # fmt: skip
        ok = r["p99_ms"] < 300
        verdict = (
            f"Targets: p99 < 10 ms is {'met' if r['serial_p99_ms'] < 10 else 'NOT met'} one call at a time and "
            f"{'met' if r['light_p99_ms'] < 10 else 'NOT met'} with 20 in flight; with {c} calls always in flight "
            f"latency is bounded below by Little's law ({c} / decisions/s), so p99 < 10 ms is not reachable there. "
            f">= 2,000 decisions/s is {'met' if r['decisions_per_s'] >= 2000 else 'NOT met'} "
            f"({r['decisions_per_s']}/s): each call is 11 round trips (Asterisk reads AGI commands one at a "
            f"time, so they cannot be pipelined) and both processes share 2 busy cores. spec.md's 300 ms answer "
            f"budget {'holds' if ok else 'is EXCEEDED at p99'} with {c} in flight."
        )
        table = "\n".join(["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])
        args.out.write_text(f"""# FastAGI routing benchmark (bench/agi.py)

Date: {datetime.now(UTC).isoformat(timespec="seconds")}
Machine: {m["nproc"]} cores ({m["cpu"]}), Python {m["python"]}, load average before the run {m["loadavg"]}
(shared with other engineers' work: numbers are indicative).
```
{m["free"]}
```
PostgreSQL: not involved (decisions never touch it; records are counted in memory). Client `{pg}` installed.
Command: `.venv/bin/python {cmd}`

Server process: `SupportAGIServer`, example catalogue, no PIN prompts. Client process (the same 2 cores):
{args.concurrency} connections in flight for {args.seconds:g} s, each a whole call: headers, 9 `SET VARIABLE`,
`GET FULL VARIABLE ${{CHANNEL(linkedid)}}`.

{table}

{verdict}
""")


if __name__ == "__main__":
    main()
