"""The nearest-rank percentile, the one percentile definition of every report (p95 calls per day, p95
jitter and round-trip time): the ⌈p·n⌉-th smallest of n values, always one of the values. The rank is
computed with an exact fraction, so floating point cannot move it by one."""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import TypeVar

N = TypeVar("N", int, float)


def nearest_rank(values: Iterable[N], percentile: float = 0.95) -> N | None:
    """The ⌈p·n⌉-th smallest of n values; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(Fraction(str(percentile)) * len(ordered)))
    return ordered[rank - 1]
