"""``pbx-sla status``: the daemon's AMI sessions and write backlog (from ``status.json``), trunk states (DB).

The daemon rewrites ``<data_dir>/status.json`` every 2 s; a snapshot whose process is gone, that says
``stopped``, or that is older than :data:`STALE_AFTER` seconds is reported as such, never as live.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from pbx_sla.config import Settings
from pbx_sla.log import get_logger
from pbx_sla.reports.render import Table, to_json, to_table
from pbx_sla.service import STATUS_FILE
from pbx_sla.store.pool import connect, resolve_dsn

log = get_logger(__name__)

STALE_AFTER = 10.0


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_daemon_status(path: Path, now: datetime | None = None) -> dict[str, Any]:
    """The snapshot plus a verdict: ``running`` and a human ``message``."""
    now = now or datetime.now(UTC)
    try:
        snap = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"running": False, "message": f"daemon not running (no {path})", "snapshot": None}
    except (OSError, ValueError) as exc:
        return {"running": False, "message": f"cannot read {path}: {exc}", "snapshot": None}
    try:
        updated = datetime.fromisoformat(snap["updated_at"])
        age = (now - updated).total_seconds()
    except (KeyError, TypeError, ValueError):
        return {"running": False, "message": f"{path}: not a pbx-sla status snapshot", "snapshot": None}
    alive = _pid_alive(snap.get("pid"))
    if snap.get("state") == "stopped" or not alive:
        message = f"daemon not running (last snapshot {snap['updated_at']}, {age:.0f} s ago)"
        running = False
    elif age > STALE_AFTER:
        message = f"snapshot stale: pid {snap.get('pid')} alive but silent for {age:.0f} s"
        running = False
    else:
        message = f"daemon running, pid {snap.get('pid')}, since {snap.get('started_at')}"
        running = True
    return {"running": running, "message": message, "age_seconds": round(age, 1), "snapshot": snap}


async def trunk_states(settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
    """Current trunk states from PostgreSQL, or an explanation of why there are none."""
    from pbx_sla.store.trunks import current_states

    try:
        conn = await connect(await resolve_dsn(settings), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return [], f"database unreachable: {exc}"
    try:
        rows = await current_states(conn)
    except asyncpg.UndefinedTableError:
        return [], "database not migrated yet (run 'pbx-sla db upgrade' or start the daemon)"
    finally:
        await conn.close()
    return [dict(r) for r in rows], None


#: Hangup events a server may send before `status` says its voice quality is not collected (a few non-RTP
#: legs, e.g. Local channels, can hang up before the first leg whose handler reports)
QOS_WARN_AFTER_HANGUPS = 20


def qos_warnings(snapshot: dict[str, Any]) -> list[str]:
    """Servers that sent Hangup events but neither source of voice quality: no ``UserEvent: PbxSlaQos`` from
    the dialplan's hangup handler and no RTPAUDIOQOS variable on the Hangups (manager.conf ``channelvars``)."""
    per_server = (snapshot.get("features") or {}).get("qos") or {}
    return [
        f"{server}: {c.get('hangups', 0)} Hangup events but no PbxSlaQos UserEvent and no RTPAUDIOQOS variable: "
        "voice quality is not collected; install the pbx-sla-qos hangup handler of asterisk_conf/extensions.conf "
        "(and grant AMI read class `user`), or set channelvars = RTPAUDIOQOS,RTPAUDIOQOSJITTER,RTPAUDIOQOSLOSS,"
        "RTPAUDIOQOSRTT,RTPAUDIOQOSMES,CHANNEL(audionativeformat) in manager.conf [general] (docs/qos.md)"
        for server, c in sorted(per_server.items())
        if c.get("hangups", 0) >= QOS_WARN_AFTER_HANGUPS
        and c.get("hangups_with_qos", 0) == 0
        and c.get("qos_events", 0) == 0
    ]


async def status(args: argparse.Namespace, settings: Settings) -> int:
    daemon = read_daemon_status(settings.data_dir / STATUS_FILE)
    snap = daemon.pop("snapshot") or {}
    trunks, trunks_error = await trunk_states(settings)
    servers = snap.get("servers", [])
    writer = snap.get("writer", {})
    last_events = [s["last_event_at"] for s in servers if s.get("last_event_at")]
    report: dict[str, Any] = {  # the `status --format json` document
        "daemon": {
            **daemon,
            "pid": snap.get("pid"),
            "state": snap.get("state"),
            "started_at": snap.get("started_at"),
            "updated_at": snap.get("updated_at"),
        },
        "servers": [
            {
                "name": s.get("name"),
                "state": s.get("state") if daemon["running"] else "not-running",
                "connected_since": s.get("connected_since"),
                "last_event_at": s.get("last_event_at"),
                "reconnects": s.get("reconnects"),
                "events": s.get("events"),
                "last_error": s.get("last_error"),
            }
            for s in servers
        ],
        "last_event_at": max(last_events) if last_events else None,
        "input_warnings": snap.get("input_warnings", {"total": 0, "by_kind": {}}),
        "trunks": trunks,
        "trunks_error": trunks_error,
        "agi": (snap.get("features") or {}).get("support") or None,
        "backlog": {
            "memory": writer.get("memory", 0),
            "spooled": writer.get("spooled", 0),
            "dead_letters": writer.get("dead_letters", 0),
            "database": writer.get("database", "unknown"),
            "state": writer.get("state", "ok"),
            "spool_error": writer.get("spool_error"),
        },
        "warnings": qos_warnings(snap) if daemon["running"] else [],
    }
    if args.format == "json":
        print(to_json(report))
        return 0
    print(daemon["message"])
    print()
    print(
        to_table(
            Table(
                ["server", "state", "connected since", "last event", "reconnects", "last error"],
                [
                    [s["name"], s["state"], s["connected_since"], s["last_event_at"], s["reconnects"], s["last_error"]]
                    for s in report["servers"]
                ],
                title="AMI sessions",
            )
        )
    )
    print()
    print(
        to_table(
            Table(
                ["server", "trunk", "state", "since", "rtt ms"],
                [[t.get("server"), t.get("trunk"), t.get("state"), t.get("since"), t.get("rtt_ms")] for t in trunks],
                title="Trunks",
                footer=[f"({trunks_error})"] if trunks_error else [],
            )
        )
    )
    print()
    b = report["backlog"]
    print(
        f"Write backlog: {b['memory']} in memory, {b['spooled']} spooled to disk, "
        f"{b['dead_letters']} dead letters; database {b['database']}"
    )
    if b["state"] == "full":
        print(f"Write backlog FULL: AMI reading paused (back-pressure); spool: {b['spool_error']}")
    elif b["spool_error"]:
        print(f"Spool cannot be written: {b['spool_error']}")
    agi = report["agi"]
    if agi:
        print(
            f"FastAGI: {agi.get('sessions', 0)} sessions, {agi.get('active', 0)} active "
            f"(cap {agi.get('max_sessions')}), {agi.get('rejected_over_cap', 0)} closed over the cap, "
            f"{agi.get('refused_peers', 0)} from peers not allowed, {agi.get('session_deadline', 0)} cut by "
            f"a deadline, {agi.get('accept_resource_errors', 0)} accept failures (no descriptors)"
        )
        pin = agi.get("pin") or {}
        lockouts = pin.get("lockouts") or []
        print(f"PIN lockouts: {len(lockouts)} now, {pin.get('denied', 0)} guesses refused since start")
        for lock in lockouts:
            until = datetime.fromtimestamp(lock["until"], UTC).isoformat(timespec="seconds")
            print(f"  {lock['bucket']}: {lock['failures']}/{lock['limit']} wrong PINs, until {until}")
    for warning in report["warnings"]:
        print(f"WARNING: {warning}")
    counted = report["input_warnings"]
    if counted.get("total"):
        kinds = ", ".join(f"{k} {n}" for k, n in counted.get("by_kind", {}).items())
        print(f"Malformed input (warnings, logged at most 10 per kind per minute): {counted['total']} ({kinds})")
    return 0
