"""Durations as people write them in the catalogue: ``"4h"``, ``"48h"``, ``"30m"``, ``"1h30m"``, ``"90s"``."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)\s*([dhms])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[dhms]\s*)+$")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (units d, h, m, s, combined largest first: ``"1h30m"``); ValueError otherwise."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f'{text!r} is not a duration such as "4h", "48h", "30m" or "1h30m"')
    parts = _PART.findall(text)
    units = [u for _, u in parts]
    if len(set(units)) != len(units) or units != sorted(units, key=lambda u: -_UNIT[u]):
        raise ValueError(f"{text!r}: give each unit once, largest first (d, h, m, s)")
    return sum(int(n) * _UNIT[u] for n, u in parts)


def format_duration(seconds: int) -> str:
    """The shortest text :func:`parse_duration` reads back as ``seconds`` (``14400`` → ``"4h"``)."""
    if seconds == 0:
        return "0s"
    out = []
    for unit in ("h", "m", "s"):
        n, seconds = divmod(seconds, _UNIT[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
