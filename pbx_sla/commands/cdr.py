"""``pbx-sla cdr import FILE --server NAME [--timezone ZONE]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbx_sla.config import Settings
from pbx_sla.errors import ConfigError
from pbx_sla.ingest.importer import ImportSummary, import_csv
from pbx_sla.store import partitions
from pbx_sla.store.calls import StoredUnderAnotherZone
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.store.settings import catalogue_timezone


def _zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {name!r}") from None


def _progress(path: Path) -> Callable[[ImportSummary, int], None]:
    total = path.stat().st_size or 1

    def show(summary: ImportSummary, done: int) -> None:
        print(
            f"\r{path.name}: {100 * done / total:5.1f}%  {summary.rows} rows, {summary.imported} imported, "
            f"{summary.rejected} rejected",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return show


async def import_file(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    if not await asyncio.to_thread(path.is_file):
        raise ConfigError(f"{path}: no such file")
    dsn = await resolve_dsn(settings)
    conn = await connect(dsn)
    second_conn = None
    try:
        if args.timezone:
            tz = _zone(args.timezone, "--timezone")
        else:
            configured = next((a.timezone for a in settings.asterisk if a.name == args.server and a.timezone), None)
            if configured:
                tz = _zone(configured, f"[[asterisk]] {args.server} timezone")
            else:
                tz = await catalogue_timezone(conn)
        progress = _progress(path) if sys.stderr.isatty() else None
        second_conn = await connect(dsn)  # half of every batch (one call bucket) is stored on it
        try:
            summary = await import_csv(
                conn,
                path,
                args.server,
                tz,
                progress=progress,
                second_conn=second_conn,
            )
        except StoredUnderAnotherZone as exc:
            if progress is not None:
                print(file=sys.stderr)
            when = "earlier" if exc.shift > 0 else "later"
            print(
                f"{path}: refused: {exc.legs} legs of this file are already stored with start times "
                f"{abs(exc.shift) / 3600:g} h {when} than zone {tz.key} reads them (server {args.server}): "
                "the file was imported before under another time zone (or the daemon stored these legs "
                "from AMI reading another zone). The stored legs are unchanged and none was stored twice; "
                "import again with --timezone set to the zone used the first time.",
                file=sys.stderr,
            )
            return 1
        # the months of the file that had no partition yet: theirs made, the legs moved out of DEFAULT
        await partitions.maintain(conn)
    finally:
        if second_conn is not None:
            await second_conn.close()
        await conn.close()
    if progress is not None:
        print(file=sys.stderr)
    for problem in summary.problems:
        print(problem, file=sys.stderr)
    if summary.recoded:
        print(
            f"{path}: warning: {summary.recoded} rows held bytes that are not UTF-8 (first at line "
            f"{summary.recoded_first}): those bytes were read as CP1252 and the text kept",
            file=sys.stderr,
        )
    if summary.foreign is not None:
        print(
            f"{summary.foreign}: refused: this file is not in a layout of cdr_csv (the module that writes "
            "Master.csv with accountcode first), which is the only one `cdr import` reads. The import stopped "
            "at this line; configure cdr_csv (cdr.conf, see docs/calls.md) or convert the file.",
            file=sys.stderr,
        )
    print(
        f"{path}: {summary.rows} rows read, {summary.imported} imported, "
        f"{summary.present} already present, {summary.rejected} rejected (server {args.server}, zone {tz.key})"
    )
    return 1 if summary.rejected or summary.foreign else 0
