"""Waiting in tests for something to happen: poll a condition until it holds, with a deadline.

A fixed ``sleep(N)`` before an assertion is either too short on a loaded machine (a flaky test) or too
long everywhere (a slow suite). :func:`eventually` returns as soon as the condition holds and fails with
a message naming it when the deadline passes. Sleeps that *are* the scenario (a daemon stopped for 6 s,
calls arriving at a given rate, "nothing happens for a while") stay sleeps.

``tests/`` is on ``sys.path`` (the rootdir conftest), so tests import it as ``from polling import ...``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Condition = Callable[[], object] | Callable[[], Awaitable[object]]


async def eventually(
    condition: Condition,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline; asyncio.timeout could not name the condition
    interval: float = 0.02,
    what: str | None = None,
) -> float:
    """Wait until ``condition()`` (a plain or async callable) is truthy; return the seconds waited.

    Raises AssertionError naming ``what`` (or the condition) once ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return loop.time() - start
        if loop.time() - start > timeout:
            raise AssertionError(f"not reached within {timeout} s: {what or _name(condition)}")
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05, what: str | None = None
) -> float:
    """:func:`eventually` for code outside an event loop (threads, subprocesses)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not reached within {timeout} s: {what or _name(condition)}")
        time.sleep(interval)
    return time.monotonic() - start


def _name(condition: Callable[..., object]) -> str:
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return repr(condition)
