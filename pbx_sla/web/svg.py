"""Charts as inline SVG, drawn in Python (pure: strings in, strings out; no script, no CDN).

Every mark carries a class a stylesheet colours and a ``<title>`` a browser shows on hover, so a chart
reads without JavaScript and prints as it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from html import escape

from pbx_sla.domain.trunks import Segment

TIMELINE_WIDTH = 1000
TIMELINE_HEIGHT = 36
_SCALE = 16  # room under the timeline for the day scale
BARS_WIDTH = 1000
BARS_HEIGHT = 220
_AXIS = 30  # room under the bars for day labels, and left for the scale
_TOP = 12


def _num(value: float) -> str:
    """Compact SVG coordinates (3 decimals, no trailing zeros)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def timeline(start: datetime, end: datetime, segments: Sequence[Segment], *, label: str = "", tz: tzinfo = UTC) -> str:
    """One horizontal band from ``start`` to ``end``: one ``rect.seg.seg-<state>`` per segment, proportional
    to its duration (segments cover the period exactly, as :func:`pbx_sla.domain.trunks.classify` cuts it),
    then a day scale (``tz``'s midnights) under the band."""
    total = (end - start).total_seconds()
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {TIMELINE_WIDTH} {TIMELINE_HEIGHT + _SCALE}" '
        f'preserveAspectRatio="none" role="img" aria-label="{escape(label or "timeline")}">'
    ]
    for seg in segments:
        x = (seg.start - start).total_seconds() / total * TIMELINE_WIDTH if total > 0 else 0
        w = (seg.end - seg.start).total_seconds() / total * TIMELINE_WIDTH if total > 0 else 0
        a, b = seg.start.astimezone(tz), seg.end.astimezone(tz)
        title = f"{seg.value}: {a.isoformat(timespec='seconds')} .. {b.isoformat(timespec='seconds')}"
        parts.append(
            f'<rect class="seg seg-{escape(seg.value)}" x="{_num(x)}" y="0" width="{_num(w)}" '
            f'height="{TIMELINE_HEIGHT}"><title>{escape(title)}</title></rect>'
        )
    parts.extend(_day_scale(start, end, tz))
    parts.append("</svg>")
    return "".join(parts)


def _day_scale(start: datetime, end: datetime, tz: tzinfo) -> list[str]:
    """Ticks at local midnights, labelled with the day of the month (every day up to 31 days, else sparser)."""
    total = (end - start).total_seconds()
    if total <= 0:
        return []
    first = start.astimezone(tz).date()
    days = []
    day = first
    while True:
        at = datetime.combine(day, time(0), tzinfo=tz)
        if at >= end:
            break
        if at >= start:
            days.append((day, at))
        day += timedelta(days=1)
    every = max(1, len(days) // 31 + 1) if len(days) > 31 else 1
    out = []
    for i, (day, at) in enumerate(days):
        x = (at - start).total_seconds() / total * TIMELINE_WIDTH
        out.append(
            f'<line class="tick" x1="{_num(x)}" y1="{TIMELINE_HEIGHT}" x2="{_num(x)}" y2="{TIMELINE_HEIGHT + 4}"/>'
        )
        if i % every == 0:
            out.append(f'<text class="day" x="{_num(x + 2)}" y="{TIMELINE_HEIGHT + _SCALE - 2}">{day.day}</text>')
    return out


def _nice_max(value: float) -> int:
    """The smallest of 1, 2, 5 times 10^k at or above ``value`` (at least 1): a readable scale top."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if step * top >= value:
                return step * top
        top *= 10


def daily_bars(daily: Mapping[date, int], threshold: int | None, *, label: str = "") -> str:
    """Calls per day: one ``rect.bar`` per day (``bar over`` above ``threshold``), the threshold as a
    dashed ``line.threshold``, day numbers under the bars and the scale's top at the left."""
    days = list(daily)
    n = max(len(days), 1)
    peak = max([*daily.values(), threshold or 0, 1])
    top = _nice_max(peak)
    plot_w, plot_h = BARS_WIDTH - _AXIS, BARS_HEIGHT - _AXIS - _TOP
    slot = plot_w / n
    gap = min(slot * 0.2, 4)
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {BARS_WIDTH} {BARS_HEIGHT}" role="img" '
        f'aria-label="{escape(label or "calls per day")}">',
        f'<line class="axis" x1="{_AXIS}" y1="{_TOP + plot_h}" x2="{BARS_WIDTH}" y2="{_TOP + plot_h}"/>',
        f'<text class="scale" x="{_AXIS - 4}" y="{_TOP + 4}" text-anchor="end">{top}</text>',
        f'<text class="scale" x="{_AXIS - 4}" y="{_TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, day in enumerate(days):
        calls = daily[day]
        h = calls / top * plot_h
        x = _AXIS + i * slot + gap / 2
        over = threshold is not None and calls > threshold
        parts.append(
            f'<rect class="bar{" over" if over else ""}" data-day="{day.isoformat()}" data-calls="{calls}" '
            f'x="{_num(x)}" y="{_num(_TOP + plot_h - h)}" width="{_num(slot - gap)}" height="{_num(h)}">'
            f"<title>{day.isoformat()}: {calls} calls</title></rect>"
        )
        if n <= 31 or i % max(1, n // 31) == 0:
            parts.append(
                f'<text class="day" x="{_num(x + (slot - gap) / 2)}" y="{BARS_HEIGHT - 10}" '
                f'text-anchor="middle">{day.day}</text>'
            )
    if threshold is not None:
        y = _TOP + plot_h - threshold / top * plot_h
        parts.append(
            f'<line class="threshold" x1="{_AXIS}" y1="{_num(y)}" x2="{BARS_WIDTH}" y2="{_num(y)}">'
            f"<title>tier threshold: {threshold} calls per day</title></line>"
            f'<text class="threshold-label" x="{BARS_WIDTH - 4}" y="{_num(y - 4)}" text-anchor="end">'
            f"tier max {threshold}/day</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def meter(ratio: float | None, target: float | None = None) -> str:
    """A small horizontal gauge of a 0..1 ratio, with the target as a tick; empty frame when None."""
    w, h = 120, 12
    parts = [f'<svg class="meter" viewBox="0 0 {w} {h}" width="{w}" height="{h}" aria-hidden="true">']
    parts.append(f'<rect class="meter-frame" x="0" y="0" width="{w}" height="{h}"/>')
    if ratio is not None:
        ok = target is None or ratio >= target
        parts.append(
            f'<rect class="meter-fill {"ok" if ok else "bad"}" x="0" y="0" width="{_num(ratio * w)}" height="{h}"/>'
        )
    if target is not None:
        parts.append(f'<line class="meter-target" x1="{_num(target * w)}" y1="0" x2="{_num(target * w)}" y2="{h}"/>')
    parts.append("</svg>")
    return "".join(parts)
