"""``pbx-sla requests PERIOD [--tenant ID] [--server NAME]... [--open] [--now INSTANT] [--format table|csv|json]``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from pbx_sla.commands._period_report import query_period
from pbx_sla.config import Settings
from pbx_sla.errors import ConfigError
from pbx_sla.reports import requests as report
from pbx_sla.reports.render import render


def judged_at(text: str | None) -> datetime:
    """``--now``: an aware ISO 8601 instant, default the current time."""
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--now: {text!r} is not an ISO 8601 date-time") from None
    if at.tzinfo is None:
        raise ConfigError(f"--now: {text!r} has no UTC offset (write e.g. 2026-12-07T10:00:00+01:00)")
    return at


async def requests(args: argparse.Namespace, settings: Settings) -> int:
    now = judged_at(args.now)
    _, data = await query_period(
        args,
        settings,
        lambda conn, period: report.requests_report(conn, period, now, args.tenant, args.open, args.server),
    )
    print(render(data, report.as_table(data), args.format))
    return 0
