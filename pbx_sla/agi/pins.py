"""PIN entry for unknown callers: the prompt loop, slow verification off the event loop, rate limiting.

A caller gets :data:`MAX_ATTEMPTS` tries per call. Wrong PINs are counted per caller (normalised
number, else the raw caller ID, so all anonymous callers share one bucket): after
:data:`MAX_FAILURES` wrong PINs within :data:`WINDOW_SECONDS`, further calls skip the prompt
(``pin-locked``) until the oldest failure leaves the window. A correct PIN clears the caller's count.
Only the caller and counts are logged, never the digits.

:class:`PinLimiter` is in-memory (the daemon, one per FastAGI server); :class:`FilePinLimiter` keeps the
same counts in a JSON file under an exclusive ``flock``, for the classic script (one process per call).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from pbx_sla.domain.pins import verify_pin

MAX_ATTEMPTS = 3
MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
PIN_MAX_DIGITS = 12  # domain.pins.valid_pin: 4..12 digits
PIN_MIN_DIGITS = 4
PIN_TIMEOUT_MS = 6000
PIN_PROMPT = "beep"  # a stock sound; GET DATA works (silently) when it is not installed


def match_pin(pin: str, candidates: Sequence[tuple[str, str]]) -> str | None:
    """The requester whose hash ``pin`` verifies, else None. Slow (scrypt per candidate): call it in a
    thread. Every candidate is checked, so the time does not tell which one matched."""
    if not (PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS and pin.isascii() and pin.isdigit()):
        return None
    found = None
    for name, encoded in candidates:
        if verify_pin(pin, encoded) and found is None:
            found = name
    return found


class PinLimiter:
    """Failures per caller in a sliding window, in memory."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self.max_failures, self.window = max_failures, window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, caller: str, now: float) -> deque[float]:
        q = self._failures.get(caller)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[caller]
        return q

    def locked(self, caller: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return len(self._recent(caller, now)) >= self.max_failures

    def failures(self, caller: str, now: float | None = None) -> int:
        return len(self._recent(caller, time.time() if now is None else now))

    def fail(self, caller: str, now: float | None = None) -> int:
        """Count one wrong PIN; returns the caller's failures in the window."""
        now = time.time() if now is None else now
        q = self._recent(caller, now)
        q.append(now)
        self._failures[caller] = q
        if len(self._failures) > 100_000:  # bound memory against number-spraying callers
            self._prune(now)
        return len(q)

    def succeed(self, caller: str) -> None:
        self._failures.pop(caller, None)

    def _prune(self, now: float) -> None:
        for caller in list(self._failures):
            self._recent(caller, now)


class FilePinLimiter:
    """The same policy over a JSON file ``{caller: [epoch, ...]}``, for one-process-per-call scripts."""

    def __init__(self, path: Path, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self.path, self.max_failures, self.window = Path(path), max_failures, window

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, list[float]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                data = json.loads(fh.read() or "{}")
                if not isinstance(data, dict):
                    data = {}
            except ValueError:
                data = {}
            now = time.time()
            state = {
                k: [t for t in v if isinstance(t, int | float) and t > now - self.window]
                for k, v in data.items()
                if isinstance(v, list)
            }
            state = {k: v for k, v in state.items() if v}
            before = json.dumps(state, sort_keys=True)
            yield state
            after = json.dumps({k: v for k, v in state.items() if v}, sort_keys=True)
            if after != before or after != json.dumps(data, sort_keys=True):
                fh.seek(0)
                fh.truncate()
                fh.write(after)
                fh.flush()

    def locked(self, caller: str) -> bool:
        with self._state() as state:
            return len(state.get(caller, [])) >= self.max_failures

    def fail(self, caller: str) -> int:
        with self._state() as state:
            state.setdefault(caller, []).append(time.time())
            return len(state[caller])

    def succeed(self, caller: str) -> None:
        with self._state() as state:
            state.pop(caller, None)
