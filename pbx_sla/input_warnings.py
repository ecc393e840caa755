"""Warnings about bad input, rate-limited per kind and counted for ``status``.

A peer that sends malformed data in a loop must not turn the log into the bottleneck (an unbounded
warning per bad AMI message wrote 26,652 lines in 20 s): each *kind* of warning is logged at most
``per_window`` times per ``window`` seconds, the rest are counted and summarised once the window ends.
Every occurrence is counted, logged or not; ``status.json`` shows the counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Window:
    start: float
    logged: int = 0
    suppressed: int = 0


class InputWarnings:
    """Per-kind counters and a fixed-window log limit (``per_window`` lines per ``window`` seconds)."""

    def __init__(self, per_window: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window = per_window
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self._windows: dict[str, _Window] = {}

    def warn(self, logger: Any, kind: str, event: str, *, exception: bool = False, **fields: Any) -> bool:
        """Count one warning of ``kind``; log it unless its window is full. True when it was logged."""
        now = self._clock()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            window = self._windows.get(kind)
            if window is None or now - window.start >= self.window:
                if window is not None and window.suppressed:
                    self._summary(logger, kind, window)
                window = self._windows[kind] = _Window(now)
            if window.logged >= self.per_window:
                window.suppressed += 1
                return False
            window.logged += 1
            last = window.logged == self.per_window
        (logger.exception if exception else logger.warning)(event, warning_kind=kind, **fields)
        if last:
            logger.warning(
                "further warnings of this kind are counted, not logged, until the window ends",
                warning_kind=kind,
                window_seconds=self.window,
            )
        return True

    def flush(self, logger: Any) -> None:
        """Log the summary of every window that has ended with suppressed warnings (called periodically)."""
        now = self._clock()
        with self._lock:
            ended = [(k, w) for k, w in self._windows.items() if now - w.start >= self.window]
            for kind, window in ended:
                del self._windows[kind]
                if window.suppressed:
                    self._summary(logger, kind, window)

    def _summary(self, logger: Any, kind: str, window: _Window) -> None:
        logger.warning(
            "similar warnings suppressed",
            warning_kind=kind,
            suppressed=window.suppressed,
            window_seconds=self.window,
            total=self.counts.get(kind, 0),
        )

    def snapshot(self) -> dict[str, Any]:
        """For ``status.json``: the total and the count per kind since start."""
        with self._lock:
            counts = dict(sorted(self.counts.items()))
        return {"total": sum(counts.values()), "by_kind": counts}

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self._windows.clear()


#: the process's one set of counters (the daemon reports it in ``status.json``)
INPUT_WARNINGS = InputWarnings()


def warn_input(logger: Any, kind: str, event: str, **fields: Any) -> bool:
    """Rate-limited warning about bad input of ``kind`` (see :class:`InputWarnings`)."""
    return INPUT_WARNINGS.warn(logger, kind, event, **fields)
