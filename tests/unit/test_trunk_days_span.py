"""The kept-days task's span: last month's days (and the one before them) up to yesterday, never today."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_sla.domain.trunks import Interval
from pbx_sla.features import trunk_days

PRAGUE = ZoneInfo("Europe/Prague")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (at(2026, 4, 10, 12, 30), at(2026, 2, 28), at(2026, 4, 10)),
        (at(2026, 3, 1, 0, 0, 1), at(2026, 1, 31), at(2026, 3, 1)),  # a month just begun: all of last month
        (at(2026, 1, 15), at(2025, 11, 30), at(2026, 1, 15)),  # across the year
        (at(2024, 3, 31, 23, 59), at(2024, 1, 31), at(2024, 3, 31)),  # leap February inside
        (datetime(2026, 4, 1, 1, 0, tzinfo=PRAGUE), at(2026, 1, 31), at(2026, 3, 31)),  # UTC days, not local
    ],
)
def test_span(now: datetime, start: datetime, end: datetime) -> None:
    assert trunk_days.span(now) == Interval(start, end)


def test_the_task_is_a_daemon_feature_run_hourly() -> None:
    from pbx_sla import features

    assert "trunk_days" in features.FEATURES
    assert trunk_days.INTERVAL == 3600 and trunk_days.FIRST_RUN_DELAY < trunk_days.INTERVAL
