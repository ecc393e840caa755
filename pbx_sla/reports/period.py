"""Report periods: ``--period YYYY-MM`` or ``--from DATE --to DATE`` (from inclusive, to exclusive),
as aware datetimes in the catalogue's time zone, and the calendar days they cover (DST-safe).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pbx_sla.errors import ConfigError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """``[start, end)``; ``first_day``..``last_day`` are the calendar days it covers in ``tz``.

    ``start`` and ``end`` are stored in UTC: Python subtracts two datetimes that share a tzinfo in wall-clock
    time, which is wrong across a DST change. Render them with :meth:`local` or :meth:`as_json`.
    """

    start: datetime
    end: datetime
    tz: ZoneInfo

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    def local(self, at: datetime) -> datetime:
        """``at`` shown in the catalogue's zone (ISO output with the right offset)."""
        return at.astimezone(self.tz)

    @property
    def first_day(self) -> date:
        return self.start.astimezone(self.tz).date()

    @property
    def last_day(self) -> date:
        """The last calendar day with any time inside the period."""
        return (self.end - timedelta(microseconds=1)).astimezone(self.tz).date()

    def days(self) -> Iterator[date]:
        day = self.first_day
        while day <= self.last_day:
            yield day
            day += timedelta(days=1)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def as_json(self) -> dict[str, str]:
        return {"from": self.local(self.start).isoformat(), "to": self.local(self.end).isoformat()}


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of ``day`` as an aware UTC datetime (midnight exists in every IANA zone we serve)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def month_period(year: int, month: int, tz: ZoneInfo) -> Period:
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return Period(day_start(first, tz), day_start(nxt, tz), tz)


def _parse_bound(text: str, tz: ZoneInfo, option: str) -> datetime:
    try:
        if len(text) == 10:
            return day_start(date.fromisoformat(text), tz)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: expected YYYY-MM-DD (or an ISO 8601 time), got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


def parse_period(period: str | None, date_from: str | None, date_to: str | None, tz: ZoneInfo) -> Period:
    """Build the period from the CLI options; a usage error (ConfigError) names the option at fault."""
    if period and (date_from or date_to):
        raise ConfigError("give either --period YYYY-MM or --from/--to, not both")
    if period:
        m = _MONTH.match(period)
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ConfigError(f"--period: expected YYYY-MM, got {period!r}")
        return month_period(int(m.group(1)), int(m.group(2)), tz)
    if not (date_from and date_to):
        raise ConfigError("a period is required: --period YYYY-MM, or --from DATE --to DATE")
    start = _parse_bound(date_from, tz, "--from")
    end = _parse_bound(date_to, tz, "--to")
    if end <= start:
        raise ConfigError(f"--to ({date_to}) must be after --from ({date_from})")
    return Period(start, end, tz)
