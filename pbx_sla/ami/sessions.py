"""Storage of AMI sessions (table ``ami_sessions``, sql/0010_ami_trunks.sql).

Each ``ami_session`` record carries the whole known state of one session (server, session_id,
login_at and whichever of resynced_at/last_seen_at/lost_at are known yet); the sink upserts by
(server, session_id) and never moves a known time back to NULL, so replays and reordering are harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from pbx_sla.ami.collector import SESSION_KIND
from pbx_sla.pipeline import DbConnection, record_instant

_TIMES = ("login_at", "resynced_at", "last_seen_at", "lost_at")


class AmiSessionSink:
    """Upserts ``ami_session`` records."""

    kind = SESSION_KIND

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for item in items:
            key = (str(item["server"]), str(item["session_id"]))
            row = merged.setdefault(key, {"lost_reason": None, **dict.fromkeys(_TIMES)})
            for name in _TIMES:
                raw = item.get(name)
                if raw is not None:
                    value = record_instant(raw, SESSION_KIND, name)
                    row[name] = value if row[name] is None else max(row[name], value)
            if item.get("lost_reason"):
                row["lost_reason"] = item["lost_reason"]
        if not merged:
            return
        keys = list(merged)
        rows = [merged[k] for k in keys]
        await conn.execute(
            """
            INSERT INTO ami_sessions AS s
                (server, session_id, login_at, resynced_at, last_seen_at, lost_at, lost_reason)
            SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                                 $5::timestamptz[], $6::timestamptz[], $7::text[])
            ON CONFLICT (server, session_id) DO UPDATE SET
                login_at = LEAST(s.login_at, EXCLUDED.login_at),
                resynced_at = COALESCE(s.resynced_at, EXCLUDED.resynced_at),
                last_seen_at = GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
                lost_at = COALESCE(s.lost_at, EXCLUDED.lost_at),
                lost_reason = COALESCE(s.lost_reason, EXCLUDED.lost_reason)
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [r["login_at"] for r in rows],
            [r["resynced_at"] for r in rows],
            [r["last_seen_at"] for r in rows],
            [r["lost_at"] for r in rows],
            [r["lost_reason"] for r in rows],
        )


async def close_dangling(conn: asyncpg.Connection, servers: Sequence[str]) -> int:
    """Sessions a crashed daemon left open end at their last sign of life; returns how many were closed.

    Run at daemon start, before this daemon's own sessions are written (one daemon per server).
    """
    result = await conn.execute(
        """
        UPDATE ami_sessions
           SET lost_at = COALESCE(last_seen_at, resynced_at, login_at), lost_reason = 'daemon-crashed'
         WHERE lost_at IS NULL AND server = ANY($1::text[])
        """,
        list(servers),
    )
    return int(result.split()[-1])
