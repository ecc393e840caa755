"""The daemon's periodic loop (retention, partitions): a failed run is recorded and retried, never ends it."""

from __future__ import annotations

import asyncio
from typing import Any

from pbx_sla.features.periodic import every


async def test_a_failed_run_is_recorded_and_the_next_one_still_runs() -> None:
    outcomes: list[Any] = [OSError("connection refused"), ValueError("bad row"), 3]
    last: dict[str, Any] = {}
    seen: list[dict[str, Any]] = []
    finished = asyncio.Event()

    async def run() -> int:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    def done(result: int) -> dict[str, Any]:
        finished.set()
        return {"made": result}

    async def watch() -> None:
        while not finished.is_set():
            if last and (not seen or seen[-1] != last):
                seen.append(dict(last))
            await asyncio.sleep(0.001)

    task = asyncio.create_task(every("test task", run, done, last, first_delay=0.0, interval=0.01))
    await asyncio.wait_for(asyncio.gather(watch(), finished.wait()), timeout=5)
    task.cancel()
    assert [s["error"] for s in seen if "error" in s] == ["connection refused", "ValueError: bad row"]
    assert last["made"] == 3 and "error" not in last and "at" in last
