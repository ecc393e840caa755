"""The loop of the daemon's periodic tasks (``retention``, ``partitions``, ``trunk_days``, ``support_kept``):
one run shortly after start, then one every interval; a failure is logged and retried at the next interval, so
a database that is down never ends the task or holds up the rest of the daemon. The last run's outcome is kept
for ``status.json``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pbx_sla.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")


async def every(
    what: str,
    run: Callable[[], Awaitable[T]],
    done: Callable[[T], dict[str, Any]],
    last: dict[str, Any],
    *,
    first_delay: float,
    interval: float,
) -> None:
    """Run ``run`` after ``first_delay`` seconds, then every ``interval`` seconds, for ever. ``last`` holds the
    last run: its time and ``done(result)`` (which logs what the run did), or its error. An unreachable
    database (TimeoutError, OSError) is a warning; any other failure an error; neither ends the loop."""
    delay = first_delay
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            result = await run()
        except Exception as exc:  # a database error must not end the task: logged, retried next interval
            unreachable = isinstance(exc, TimeoutError | OSError)
            error = str(exc) if unreachable else f"{type(exc).__name__}: {exc}"
            last.clear()
            last.update(at=datetime.now(UTC).isoformat(), error=error)
            (log.warning if unreachable else log.error)(f"{what} failed; retried at the next interval", error=error)
            continue
        fields = done(result)
        last.clear()
        last.update(at=datetime.now(UTC).isoformat(), **fields)
