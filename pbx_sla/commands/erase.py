"""``pbx-sla erase --number N [--dry-run] [--format table|json]``: the right to erasure of one number."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pbx_sla.config import Settings
from pbx_sla.store.erasure import erase_number
from pbx_sla.store.pool import connect, resolve_dsn


def as_text(report: dict[str, Any]) -> str:
    """One line per table: rows changed and the fields changed in them."""
    verb = "would change" if report["dry_run"] else "changed"
    lines = [f"number {report['number']} -> {report['pseudonym']}"]
    for t in report["tables"]:
        fields = ", ".join(f"{k} {v}" for k, v in t["fields"].items()) or "-"
        lines.append(f"{t['table']:<16} {verb} {t['rows']} row(s)  [{fields}]")
    c = report["catalogue"]
    cache = "yes" if c["cache_file_rewritten"] else "no"
    lines.append(
        f"catalogue        inactive requester phones deleted {c['requester_phones_deleted']},"
        f" earlier revisions {c['catalogue_revisions']}, cache file rewritten {cache}"
    )
    return "\n".join(lines)


async def erase(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(await resolve_dsn(settings))
    try:
        report = await erase_number(conn, args.number, data_dir=settings.data_dir, dry_run=args.dry_run)
    finally:
        await conn.close()
    print(json.dumps(report, indent=2) if args.format == "json" else as_text(report))
    return 0
