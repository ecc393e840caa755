"""Descriptor exhaustion (issue 13): the FastAGI server in a child process with a low open-file limit.

Before the fix, 200 held connections against a limit of 128 made asyncio's accept loop log a traceback per
pending connection and retry in a storm (thousands of lines a second, the CPU busy) and new calls failed.
Now sessions are capped below the limit (the excess closed at once and counted) and, when the cap is set
above the limit on purpose, accept pauses with one rate-limited log line instead of spinning.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pbx_sla import fd_limit

CHILD = textwrap.dedent(
    """
    import asyncio, json, signal, sys
    from pbx_sla.agi.server import SupportAGIServer
    from pbx_sla.log import setup_logging

    class Source:
        current = None

    async def main():
        setup_logging("info", json=True, stream=sys.stderr)
        options = json.loads(sys.argv[1])
        records = []
        agi = SupportAGIServer(Source(), records.append, header_timeout=60, **options)
        listener = await agi.serve("127.0.0.1", 0)
        print(listener.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print(json.dumps({**getattr(agi, "stats", {}), "records": len(records)}), flush=True)

    asyncio.run(main())
    """
)

HEAD = b"agi_network_script: support\nagi_uniqueid: 1.1\nagi_callerid: 123\nagi_arg_1: 0\n\n"


def _low_limit(soft: int, hard: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _call(port: int, timeout: float = 5.0) -> bool:
    """A normal FastAGI call (no catalogue: fallback); True when the server answered with commands."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(HEAD)
        f = s.makefile("rb")
        lines = 0
        while line := f.readline():
            lines += 1
            s.sendall(b"200 result=1 (1.0)\n" if line.startswith(b"GET FULL") else b"200 result=0\n")
        return lines >= 1


def _run(tmp_path: Path, options: dict, soft: int = 128):
    err = (tmp_path / "stderr").open("w+")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=err,
        preexec_fn=_low_limit(soft, soft),
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    return child, port, err


def _finish(child: subprocess.Popen, err) -> tuple[dict, list[str]]:
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=20)
    err.seek(0)
    return json.loads(out.decode().strip().splitlines()[-1]), err.read().splitlines()


def test_held_sessions_beyond_the_limit_are_capped_not_a_traceback_storm(tmp_path: Path) -> None:
    child, port, err = _run(tmp_path, {})
    held = []
    calls = 0
    try:
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        cpu = _cpu_seconds(child.pid)
        time.sleep(2.0)
        spent = _cpu_seconds(child.pid) - cpu
        for s in held:
            s.close()
        held.clear()
        time.sleep(0.3)
        calls = sum(_call(port) for _ in range(5))  # normal calls work again
    finally:
        for s in held:
            s.close()
        stats, lines = _finish(child, err)
    cap = fd_limit.auto_max_sessions(128)
    print(f"cap {cap}, stats {stats}, log lines {len(lines)}, cpu while held {spent:.2f} s, calls {calls}/5")
    assert calls == 5
    assert spent < 0.5  # no spinning while the sessions are held
    assert len(lines) < 20, lines[:5]
    assert stats["records"] == 5
    assert cap == 96
    assert stats["rejected_over_cap"] == 200 - cap and stats["accept_resource_errors"] == 0


def test_cap_set_above_the_limit_pauses_accept_with_one_log_line(tmp_path: Path) -> None:
    child, port, err = _run(tmp_path, {"max_sessions": 1000})
    held = []
    try:
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        cpu = _cpu_seconds(child.pid)
        time.sleep(2.0)
        spent = _cpu_seconds(child.pid) - cpu
        for s in held:
            s.close()
        held.clear()
        time.sleep(1.5)  # the paused accept resumes within its longest pause
        assert all(_call(port) for _ in range(5))
    finally:
        for s in held:
            s.close()
        stats, lines = _finish(child, err)
    print(f"stats {stats}, log lines {len(lines)}, cpu while held {spent:.2f} s")
    storm = [line for line in lines if "cannot accept" in line or "out of system resource" in line]
    assert stats["accept_resource_errors"] >= 1
    assert 1 <= len(storm) <= 2, storm[:3]  # one line per minute at most
    assert not any("Traceback" in line or '"exception"' in line for line in lines)
    assert spent < 0.5
    assert stats["records"] == 5


@pytest.mark.parametrize(("limit", "cap"), [(64, 48), (128, 96), (1024, 768), (65536, 10_000), (20, 4)])
def test_auto_cap_stays_below_the_limit(limit: int, cap: int) -> None:
    assert fd_limit.auto_max_sessions(limit) == cap


def test_daemon_start_raises_the_soft_limit_where_allowed() -> None:
    code = (
        "from pbx_sla import fd_limit; import resource; "
        "print(fd_limit.raise_soft_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, preexec_fn=_low_limit(64, 300)
    ).stdout.strip()
    assert out == "(64, 300) (300, 300)"
