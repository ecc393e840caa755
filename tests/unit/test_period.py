"""Report periods in the catalogue's zone, including DST months (real elapsed seconds)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_sla.errors import ConfigError
from pbx_sla.reports.period import parse_period

PRAGUE = ZoneInfo("Europe/Prague")


def test_month_in_prague_is_local_midnight_to_local_midnight() -> None:
    p = parse_period("2026-11", None, None, PRAGUE)
    assert p.start.astimezone(UTC) == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert p.end.astimezone(UTC) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert p.local(p.start).isoformat() == "2026-11-01T00:00:00+01:00"
    assert len(list(p.days())) == 30


@pytest.mark.parametrize(
    ("month", "hours"),
    [("2026-03", 31 * 24 - 1), ("2026-10", 31 * 24 + 1), ("2026-02", 28 * 24), ("2028-02", 29 * 24)],
)
def test_dst_and_leap_months_have_their_real_length(month: str, hours: int) -> None:
    p = parse_period(month, None, None, PRAGUE)
    assert p.seconds == hours * 3600


def test_december_rolls_into_next_year() -> None:
    p = parse_period("2026-12", None, None, PRAGUE)
    assert p.last_day == date(2026, 12, 31)
    assert p.as_json()["to"] == "2027-01-01T00:00:00+01:00"


def test_from_to_is_inclusive_exclusive() -> None:
    p = parse_period(None, "2026-11-01", "2026-11-03", PRAGUE)
    assert [d.isoformat() for d in p.days()] == ["2026-11-01", "2026-11-02"]
    assert p.as_json() == {"from": "2026-11-01T00:00:00+01:00", "to": "2026-11-03T00:00:00+01:00"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("2026-13", None, None), "--period"),
        (("26-11", None, None), "--period"),
        ((None, "2026-11-01", None), "a period is required"),
        ((None, None, None), "a period is required"),
        (("2026-11", "2026-11-01", "2026-11-02"), "either"),
        ((None, "2026-11-31", "2026-12-01"), "--from"),
        ((None, "2026-11-05", "2026-11-01"), "must be after"),
    ],
)
def test_bad_periods_name_the_option(args, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_period(*args, PRAGUE)
