"""The daemon's replay of the classic AGI script's spool (``<data_dir>/classic-agi-spool/``).

``agi_scripts/support_route.py`` keeps a ``support_call`` record as one JSON file there when PostgreSQL
does not take it within its budget. The daemon stores those files every :data:`INTERVAL` seconds, so
they no longer wait for the next classic call.

Each batch is written through :class:`~pbx_sla.store.support.SupportCallSink` (idempotent by (server,
uniqueid): a record stored twice, by the daemon and by a classic call racing it, lands once) in one
transaction, and the files are deleted only once it is committed. (Not through the durable writer: its
queue lives in memory until written, so a crash right after handing it a record would lose a record that
was safe on disk.) The database away: the files stay, retried at the next round. A file that is not a
record (unreadable, not JSON, refused by the sink) is renamed ``*.bad`` and logged, never retried.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pbx_sla.agi.record import SPOOL_DIR
from pbx_sla.log import get_logger

log = get_logger(__name__)

INTERVAL = 30.0
#: files per transaction
BATCH = 500

Write = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]


def read_batch(directory: Path, limit: int = BATCH) -> tuple[list[tuple[Path, dict[str, Any]]], list[Path]]:
    """The oldest ``limit`` spooled records (names start with the time in ns) and the files that are not
    records. ``.name.tmp`` files (being written) are not ``*.json``: never read."""
    try:
        paths = sorted(p for p in directory.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
    except FileNotFoundError:
        return [], []
    good: list[tuple[Path, dict[str, Any]]] = []
    bad: list[Path] = []
    for path in paths[:limit]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue  # a classic call stored it meanwhile
        except (OSError, ValueError):
            bad.append(path)
            continue
        if isinstance(data, dict) and isinstance(data.get("uniqueid"), str) and data["uniqueid"]:
            good.append((path, data))
        else:
            bad.append(path)
    return good, bad


def _quarantine(paths: Sequence[Path], why: str) -> None:
    for path in paths:
        try:
            os.replace(path, path.with_suffix(".bad"))
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("cannot set aside a bad classic AGI spool file", file=str(path), error=str(exc))
            continue
        log.warning("classic AGI spool file is not a storable record; renamed .bad", file=str(path), error=why)


def _unlink(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def replay_once(directory: Path, write: Write, limit: int = BATCH) -> int:
    """Store one batch of spooled records and delete their files; the number stored.

    A failure of the whole batch (database away) raises and leaves every file in place; a refused
    record (data error) is retried alone, and only the records refused alone are set aside as ``.bad``.
    """
    good, bad = await asyncio.to_thread(read_batch, directory, limit)
    if bad:
        await asyncio.to_thread(_quarantine, bad, "not a JSON support_call record")
    if not good:
        return 0
    try:
        await write([data for _, data in good])
        stored = [path for path, _ in good]
    except DATA_ERRORS:
        stored = []
        for path, data in good:
            try:
                await write([data])
            except DATA_ERRORS as exc:
                await asyncio.to_thread(_quarantine, [path], f"{type(exc).__name__}: {exc}")
                continue
            stored.append(path)
    await asyncio.to_thread(_unlink, stored)
    return len(stored)


def db_writer(dsn: str, timeout: float = 5.0) -> Write:
    """Write records with :class:`SupportCallSink` in one transaction on a short-lived connection."""

    async def write(items: Sequence[dict[str, Any]]) -> None:
        import asyncpg

        from pbx_sla.store.support import SupportCallSink

        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            async with conn.transaction():
                await SupportCallSink().write(conn, items)
        finally:
            await conn.close(timeout=timeout)

    return write


async def replay_forever(directory: Path, write: Write, interval: float = INTERVAL) -> None:
    """Replay the spool now and every ``interval`` seconds until cancelled; never raises otherwise."""
    failing = False
    while True:
        total = 0
        try:
            while (n := await replay_once(directory, write)) > 0:
                total += n
                if n < BATCH:
                    break
            if total:
                log.info("classic AGI spool stored", records=total, directory=str(directory))
            if failing:
                log.info("classic AGI spool replay works again")
            failing = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away, permissions...: keep the files, try again later
            if not failing:
                log.warning("classic AGI spool not stored yet; retrying", directory=str(directory),
                            error=f"{type(exc).__name__}: {exc}", every_s=interval)  # fmt: skip
            failing = True
        await asyncio.sleep(interval)


def spool_directory(data_dir: Path) -> Path:
    return data_dir / SPOOL_DIR


def _data_errors() -> tuple[type[BaseException], ...]:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return (ValueError, TypeError, KeyError)
    return (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, TypeError, KeyError)


#: "this record is refused" (retried alone, then set aside), not "the database is away"
DATA_ERRORS = _data_errors()
