"""``pbx-sla retention apply [--dry-run] [--format table|json]``: the ``[retention]`` ages, applied now."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from pbx_sla.config import Settings
from pbx_sla.errors import ConfigError
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.store.retention import apply_retention


async def apply(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.retention.configured:
        where = settings.config_file or "the configuration"
        raise ConfigError(f"{where}: no [retention] legs_days, support_days or qos_days set: nothing to apply")
    conn = await connect(await resolve_dsn(settings))
    try:
        report = await apply_retention(conn, settings.retention, datetime.now(UTC), dry_run=args.dry_run)
    finally:
        await conn.close()
    if args.format == "json":
        print(json.dumps({"dry_run": args.dry_run, "tables": report}, indent=2))
    else:
        verb = "would pseudonymise" if args.dry_run else "pseudonymised"
        dropped = "would drop" if args.dry_run else "dropped"
        for t in report:
            if t["days"] is None:
                print(f"{t['table']:<14} kept (no age set)")
                continue
            print(f"{t['table']:<14} {verb} {t['rows']} row(s) older than {t['days']} days (before {t['before']})")
            if t["partitions_dropped"]:
                names = ", ".join(t["partitions_dropped"])
                print(f"{'':<14} {dropped} {len(t['partitions_dropped'])} month partition(s) ({names}): "
                      f"{t['rows_dropped']} row(s)")  # fmt: skip
    return 0
