"""A month of data for the dashboard and statement tests: the example catalogue, support calls and
trunk-a's observations of the ``sla`` report's tests, and CDRs imported through ``cdr import`` with a known
number of calls per day (bistro above its tier's 100 calls per day on a known set of days)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from test_cdr_import import csv_line, fields
from test_cdr_import import run_cli as cdr_cli
from test_sla_report import apply_example, store_calls, store_trunk_a

PRAGUE = ZoneInfo("Europe/Prague")
#: calls per day of November 2026 (day → calls), per tenant; bistro's tier1 allows 100 a day
DAILY = {
    "acme": {d: (d * 7) % 23 for d in range(1, 31)},
    "bistro": {d: 120 if d in (3, 17) else (d % 5) * 10 for d in range(1, 31)},
}
BISTRO_OVER_DAYS = (3, 17)


def month_csv() -> str:
    lines = []
    for tenant, daily in DAILY.items():
        for day, n in daily.items():
            for i in range(n):
                start = datetime(2026, 11, day, 10, 0, tzinfo=PRAGUE) + timedelta(seconds=37 * i)
                uid = f"{tenant}-{day}-{i}"
                disp = "ANSWERED" if i % 4 else "NO ANSWER"
                lines.append(csv_line(fields(start, acct=tenant, uid=uid, linked=uid, disp=disp,
                                             billsec=60 if disp == "ANSWERED" else 0)))  # fmt: skip
    return "".join(lines)


async def load_month(db, tmp_path: Path) -> None:
    """Everything above into ``db`` (the CLI's environment must point at it: the ``cli_env`` fixture)."""
    await apply_example(db)
    await store_calls(db)
    await store_trunk_a(db)
    path = tmp_path / "Master.csv"
    path.write_text(month_csv(), encoding="utf-8")
    assert await asyncio.to_thread(cdr_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
