"""PIN entry for unknown callers: the prompt loop's constants, slow verification off the event loop, and
the guess limits of :mod:`pbx_sla.domain.pin_limits` kept where they survive a restart.

A caller gets :data:`MAX_ATTEMPTS` tries per call. Every PIN keyed is a guess reserved in the caller's,
the tenant's and the global bucket *before* it is checked (a full bucket: the PIN is not checked and the
call goes on as ``pin-locked``); a correct PIN gives its guess back and clears the caller's bucket. Only
buckets and counts are logged, never the digits.

:class:`PinLimiter` (the daemon) keeps the state in memory, loads it at start from ``<data_dir>/pin-limits.json``
and rewrites that file atomically (0600, fsync'd, renamed) after every change: a few hundred bytes, bounded
by the global limit, never PostgreSQL on the call path. :class:`FilePinLimiter` (the classic script, one
process per call) applies the same functions to ``<data_dir>/pin-failures.json`` under an exclusive
``flock`` of ``pin-failures.json.lock``, with the same atomic rewrite.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pbx_sla.domain import pin_limits as pl
from pbx_sla.domain.pins import verify_pin
from pbx_sla.private_files import replace_private_json

MAX_ATTEMPTS = 3
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


def write_state(path: Path, state: dict[str, list[float]]) -> None:
    """Atomically replace ``path`` with ``state`` (0600, fsync'd): a crash leaves the old file or the new."""
    replace_private_json(path, state, separators=(",", ":"), sort_keys=True)


def read_state(path: Path) -> dict[str, list[float]]:
    try:
        return pl.load(json.loads(path.read_text(encoding="utf-8") or "{}"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}


class PinLimiter:
    """The limits in memory, persisted to ``path`` (None: memory only, for tests and benchmarks)."""

    def __init__(
        self,
        limits: pl.PinLimits | None = None,
        path: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[OSError], None] | None = None,
    ) -> None:
        self.limits = limits or pl.PinLimits()
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.on_error = on_error
        self.state: dict[str, list[float]] = read_state(self.path) if self.path is not None else {}
        pl.prune(self.state, self.clock(), self.limits.window)
        #: guesses refused because a bucket was full, and lockouts begun, since start
        self.denied = 0
        self.lockouts_started = 0

    def blocked(self, caller: str | None, tenant: str | None) -> str | None:
        """The full bucket that stops this caller from being asked at all, else None."""
        return pl.full(self.state, pl.buckets(caller, tenant, self.limits), self.clock(), self.limits.window)

    def reserve(self, caller: str | None, tenant: str | None) -> tuple[str | None, float, list[str]]:
        """Reserve one guess: (full bucket or None, its stamp, buckets this guess filled up)."""
        wanted = pl.buckets(caller, tenant, self.limits)
        now = self.clock()
        blocked = pl.reserve(self.state, wanted, now, self.limits.window)
        if blocked is not None:
            self.denied += 1
            return blocked, now, []
        filled = [b for b, limit in wanted if len(self.state.get(b, ())) == limit]
        self.lockouts_started += len(filled)
        self._save()
        return None, now, filled

    def release(self, caller: str | None, tenant: str | None, stamp: float) -> None:
        pl.release(self.state, pl.buckets(caller, tenant, self.limits), stamp)
        self._save()

    def failures(self, bucket: str) -> int:
        return len(self.state.get(bucket, ()))

    def lockouts(self) -> list[dict[str, Any]]:
        return pl.lockouts(self.state, self.limits, self.clock())

    def status(self) -> dict[str, Any]:
        return {"lockouts": self.lockouts(), "denied": self.denied, "lockouts_started": self.lockouts_started}

    def _save(self) -> None:
        if self.path is None:
            return
        if len(self.state) > 1000:
            pl.prune(self.state, self.clock(), self.limits.window)
        try:
            write_state(self.path, self.state)
        except OSError as exc:  # the counts stay in memory; the next change tries again
            if self.on_error is not None:
                self.on_error(exc)


class FilePinLimiter:
    """The same limits over a file shared by one-process-per-call scripts (flock on a lock file)."""

    def __init__(self, path: Path, limits: pl.PinLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or pl.PinLimits()

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, list[float]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = read_state(self.path)
            before = json.dumps(state, sort_keys=True)
            pl.prune(state, time.time(), self.limits.window)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                write_state(self.path, state)
        finally:
            os.close(fd)

    def blocked(self, caller: str | None, tenant: str | None) -> str | None:
        with self._state() as state:
            return pl.full(state, pl.buckets(caller, tenant, self.limits), time.time(), self.limits.window)

    def reserve(self, caller: str | None, tenant: str | None) -> tuple[str | None, float, list[str]]:
        wanted = pl.buckets(caller, tenant, self.limits)
        with self._state() as state:
            now = time.time()
            blocked = pl.reserve(state, wanted, now, self.limits.window)
            filled = [] if blocked else [b for b, limit in wanted if len(state.get(b, ())) == limit]
            return blocked, now, filled

    def release(self, caller: str | None, tenant: str | None, stamp: float) -> None:
        with self._state() as state:
            pl.release(state, pl.buckets(caller, tenant, self.limits), stamp)

    def failures(self, bucket: str) -> int:
        with self._state() as state:
            return len(state.get(bucket, ()))
