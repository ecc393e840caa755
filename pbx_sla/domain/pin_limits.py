"""How many PIN guesses are allowed: per caller, per tenant, overall, in a sliding window. Pure.

A guess is *reserved* before its PIN is checked: :func:`reserve` counts it in every bucket at once, or
in none when one bucket is full. The check and the count are one step, so concurrent calls from one number
cannot each pass the check and then guess (issue 13: 104 guesses against a limit of 5). A correct PIN
gives the guess back (:func:`release`) and clears the caller's bucket.

Buckets:

* ``caller:<E.164>`` per caller number; every caller without a usable number (anonymous, restricted,
  empty, unknown, any text) shares ``caller:anonymous``;
* ``tenant:<id>`` per tenant whose DID was dialled (a new caller number per call no longer escapes);
* ``global``, all guesses.

State: ``{bucket: [epoch seconds, ...]}`` (JSON-able), pruned to the window. The daemon keeps it in memory
and in a file; the classic script in a locked file (:mod:`pbx_sla.agi.pins`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

State = MutableMapping[str, list[float]]
ANONYMOUS = "anonymous"
GLOBAL = "global"


@dataclass(frozen=True)
class PinLimits:
    """Wrong PINs allowed per window, per bucket kind (``[agi] pin_*``)."""

    per_caller: int = 5
    per_tenant: int = 20
    overall: int = 60
    window: float = 900.0


def caller_bucket(caller_e164: str | None) -> str:
    return f"caller:{caller_e164}" if caller_e164 and caller_e164.startswith("+") else f"caller:{ANONYMOUS}"


def buckets(caller_e164: str | None, tenant: str | None, limits: PinLimits) -> list[tuple[str, int]]:
    """(bucket, limit) for one guess by this caller at this tenant's DID."""
    out = [(caller_bucket(caller_e164), limits.per_caller)]
    if tenant:
        out.append((f"tenant:{tenant}", limits.per_tenant))
    out.append((GLOBAL, limits.overall))
    return out


def _recent(state: State, bucket: str, now: float, window: float) -> list[float]:
    stamps = [t for t in state.get(bucket, ()) if now - window < t <= now + window]
    if stamps:
        state[bucket] = stamps
    else:
        state.pop(bucket, None)
    return stamps


def full(state: State, wanted: list[tuple[str, int]], now: float, window: float) -> str | None:
    """The first bucket with no guess left, else None."""
    for bucket, limit in wanted:
        if len(_recent(state, bucket, now, window)) >= limit:
            return bucket
    return None


def reserve(state: State, wanted: list[tuple[str, int]], now: float, window: float) -> str | None:
    """Count one guess in every bucket and return None; or count nothing and return the full bucket."""
    blocked = full(state, wanted, now, window)
    if blocked is None:
        for bucket, _ in wanted:
            state.setdefault(bucket, []).append(now)
    return blocked


def release(state: State, wanted: list[tuple[str, int]], stamp: float) -> None:
    """A correct PIN: the caller's bucket is cleared, the guess given back to the other buckets."""
    for i, (bucket, _) in enumerate(wanted):
        if i == 0:
            state.pop(bucket, None)
            continue
        stamps = state.get(bucket)
        if stamps and stamp in stamps:
            stamps.remove(stamp)
            if not stamps:
                del state[bucket]


def prune(state: State, now: float, window: float) -> None:
    for bucket in list(state):
        _recent(state, bucket, now, window)


def lockouts(state: State, limits: PinLimits, now: float) -> list[dict[str, Any]]:
    """Buckets at their limit now, with when they open again (the oldest guess leaving the window)."""
    out = []
    for bucket in sorted(state):
        stamps = _recent(state, bucket, now, limits.window)
        limit = limit_of(bucket, limits)
        if len(stamps) >= limit:
            until = sorted(stamps)[len(stamps) - limit] + limits.window
            out.append({"bucket": bucket, "failures": len(stamps), "limit": limit, "until": until})
    return out


def limit_of(bucket: str, limits: PinLimits) -> int:
    if bucket == GLOBAL:
        return limits.overall
    if bucket.startswith("tenant:"):
        return limits.per_tenant
    return limits.per_caller


def load(data: Any) -> dict[str, list[float]]:
    """State from untrusted JSON: anything malformed is dropped."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, list[float]] = {}
    for bucket, stamps in data.items():
        if isinstance(bucket, str) and isinstance(stamps, list):
            good = [float(t) for t in stamps if isinstance(t, int | float) and not isinstance(t, bool)]
            if good:
                out[bucket] = good
    return out
