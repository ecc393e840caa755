"""Render a report as table, CSV or JSON. JSON conventions (docs/figures.md): ISO 8601 times with offset, ratios as
floats, money as decimal strings. Table and CSV show the rows a report chooses to flatten.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Table:
    """Flat rows for the table and CSV views."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    title: str = ""
    footer: Sequence[str] = ()


def rounded(value: float | None, digits: int = 6) -> float | None:
    """A figure as the JSON reports print it: ratios to 6 decimals (fewer ``digits`` for seconds); None stays."""
    return None if value is None else round(value, digits)


def hours_minutes_seconds(value: float | None, missing: str = "-") -> str:
    """Seconds as ``H:MM:SS`` (hours unbounded), rounded to the second; ``missing`` for no value."""
    if value is None:
        return missing
    hours, rest = divmod(round(value), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, default=_json_default, indent=2, ensure_ascii=False)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def to_table(table: Table) -> str:
    cells = [[cell(v) for v in row] for row in table.rows]
    widths = [len(c) for c in table.columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = []
    if table.title:
        lines.append(table.title)
    lines.append("  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not table.rows:
        lines.append("(no rows)")
    lines.extend(table.footer)
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if v is None else (v.isoformat() if isinstance(v, datetime) else v) for v in row])
    return out.getvalue()


def render(report: Mapping[str, Any], table: Table, fmt: str) -> str:
    """The text to print for ``--format fmt``."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(table).rstrip("\n")
    return to_table(table)
